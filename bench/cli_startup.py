"""`opendots` command start-up (issue 20): wall time of one process, from spawn to exit.

    .venv/bin/python bench/cli_startup.py [--runs 21]

Each round runs, interleaved so they share the machine's load:

  python -c pass          the interpreter alone (the reference: the floor no `opendots` call can go below)
  opendots --help         the top level (verbs imported lazily: opendots.cli.lazy)
  fastnetmon-hook ban     FastNetMon's notify script asking the running client agent for a mitigation (its control
                          socket; a DOTS server and the agent run beside, started once, over DTLS on loopback),
                          then `unban` withdrawing it (each a process, as FastNetMon runs them)

Goals (issue 20): --help < 100 ms, the hook's path to the agent < 150 ms. Prints median and p90 of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT))

from _common import print_table  # noqa: E402

from tests.helpers.cli_startup import server_and_agent  # noqa: E402


def timed(argv: list[str]) -> float:
    """Seconds from spawn to exit of ARGV (which must succeed)."""
    started = time.perf_counter()
    process = subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}: {process.stderr.decode()[-2000:]}")
    return elapsed


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(ordered) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21, help="rounds (each runs every command once)")
    arguments = parser.parse_args()
    python = sys.executable
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="od-cli-startup-") as directory, server_and_agent(Path(directory)) as toml:
        hook = [python, "-m", "opendots", "fastnetmon-hook", "-c", str(toml), "--log-file", f"{directory}/hook.log"]
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "opendots --help": [python, "-m", "opendots", "--help"],
            "fastnetmon-hook ban (via the agent)": [*hook, "203.0.113.5", "incoming", "50000", "ban"],
            "fastnetmon-hook unban (via the agent)": [*hook, "203.0.113.5", "incoming", "0", "unban"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(arguments.runs):
            for name, argv in commands.items():
                samples[name].append(timed(argv))
        assert "via agent" in Path(directory, "hook.log").read_text()
    reference = statistics.median(samples["python -c pass"])
    rows = [("python -c pass", summary(samples["python -c pass"]), "the reference")]
    for name in list(commands)[1:]:
        extra = (statistics.median(samples[name]) - reference) * 1000
        rows.append((name, summary(samples[name]), f"+{extra:.0f} ms over the interpreter alone"))
    print_table(rows)


if __name__ == "__main__":
    main()
