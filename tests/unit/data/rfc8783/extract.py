"""Extract the request/response figures of RFC 8783 into one file per figure (run once; outputs are committed).

Usage: python extract.py /path/to/rfc8783.txt
Each fig-NN.txt holds the figure exactly as printed (page furniture removed); the tests parse the HTTP
request line, the headers and the JSON body from it, joining lines that end with a backslash (RFC 8783 §2).
"""

import re
import sys
from pathlib import Path

FIGURES = (11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38)
HTTP = re.compile(
    r"^\s*(POST|GET|PUT|DELETE|HTTP/1\.1|Host:|Content-Type:|Accept:|Server:|Date:|Cache-Control|Content-Length|Connection)"
)
PROSE = re.compile(r"^   [A-Za-z*].*$")


def main(rfc: Path, out: Path) -> None:
    lines = rfc.read_text(encoding="utf-8-sig").splitlines()
    for number in FIGURES:
        caption = next(i for i, line in enumerate(lines) if re.match(rf"^\s+Figure {number}:", line))
        start = caption - 1
        while start > 0:
            line = lines[start - 1]
            if (PROSE.match(line) and not HTTP.match(line) and lines[start - 2].strip() == "") or "Figure" in line:
                break
            start -= 1
        while not (HTTP.match(lines[start]) or lines[start].strip().startswith("{")):
            start += 1
        block = "\n".join(lines[start:caption]).strip("\n")
        (out / f"fig-{number:02d}.txt").write_text(block + "\n" + lines[caption].strip() + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent)
