"""Where the server's memory per idle DTLS session goes: N sessions on one `opendots server` process, broken down.

    .venv/bin/python bench/session_memory.py [--sessions 2000] [--top 25] [--no-heartbeat] [--plain]

The server runs with PYTHONMALLOC=malloc and tracemalloc on, so every byte Python allocates goes through glibc's
malloc and is traced; glibc's in-use bytes (mallinfo2) minus the traced ones minus tracemalloc's own tables are then
the native allocations (OpenSSL's SSL objects, BIOs, session cache). Snapshots before the first session and with N
sessions up (idle, their handshake and one heartbeat done, 3 s settled; --no-heartbeat: right after the handshakes),
per session: RSS (also after malloc_trim), malloc in use, Python (traced), native; the Python delta by file:line;
object counts by type. --plain: no tracemalloc and Python's own allocator, as in production (RSS and malloc only).
The load generator is bench/scale_sessions.py's (its own process, a certificate per client). Not a test: nothing is
asserted. For native allocations by OpenSSL call stack, run the server under heaptrack (see the issue 20 note).
OPENDOTS_DTLS_RECORD_LAYER=openssl in the environment measures the server with OpenSSL's record layer kept after the
handshake (the behaviour before opendots/transport/dtls_records.py), for a before/after in one sitting.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import collections
import ctypes
import gc
import json
import os
import signal
import subprocess
import tempfile
import time

from bench._common import free_port, rss_kib
from opendots.domain.defaults import HEARTBEAT_INTERVAL


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _malloc_in_use() -> int:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def _measure(out: Path, state: dict) -> None:
    """SIGUSR1 in the server: the first records a baseline, the second writes the breakdown to OUT."""
    import tracemalloc

    gc.collect()
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    figures = {
        "malloc": _malloc_in_use(),
        "traced": tracemalloc.get_traced_memory()[0],
        "tracemalloc_tables": tracemalloc.get_tracemalloc_memory(),
        "rss": rss_kib(os.getpid()) * 1024,
    }
    # glibc keeps freed pages inside its heap (the read buffers released after each session's first record): what
    # RSS would be if the server gave them back (malloc_trim), measured after the figures above.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    figures["rss_trimmed"] = rss_kib(os.getpid()) * 1024
    snapshot = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None  # None: --plain
    if "base" not in state:
        state["base"] = (figures, counts, snapshot)
        out.with_suffix(".base").write_text("{}")
        return
    base_figures, base_counts, base_snapshot = state["base"]
    lines = [
        (str(stat.traceback[0]), stat.size_diff, stat.count_diff)
        for stat in (snapshot.compare_to(base_snapshot, "lineno") if snapshot else [])
        if stat.size_diff > 0
    ]
    types = [(name, counts[name] - base_counts.get(name, 0)) for name in counts]
    out.write_text(
        json.dumps(
            {
                "delta": {k: figures[k] - base_figures[k] for k in figures},
                "lines": sorted(lines, key=lambda x: -x[1])[:200],
                "types": sorted((t for t in types if t[1] > 0), key=lambda x: -x[1])[:200],
            }
        )
    )


def server(out: str, argv: list[str]) -> None:
    import tracemalloc

    if os.environ.get("PYTHONMALLOC") == "malloc":  # not --plain
        tracemalloc.start(1)
    state: dict = {}
    signal.signal(signal.SIGUSR1, lambda *_: _measure(Path(out), state))
    from opendots.cli.main import main as opendots_main

    sys.argv = ["opendots", *argv]
    opendots_main()


def run(sessions: int, top: int, heartbeat: bool, plain: bool) -> None:
    from bench.scale_sessions import write_pki

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="od-sessmem-") as directory:
        pki = Path(directory)
        config = write_pki(pki, sessions, sessions)
        out = pki / "breakdown.json"
        port = free_port()
        environment = {**os.environ, "PYTHONPATH": str(root), "PYTHONMALLOC": "pymalloc" if plain else "malloc"}
        flags = ["--no-tls", "--no-data", "--listen", "127.0.0.1", "--signal-port", str(port)]
        process = subprocess.Popen(
            [sys.executable, __file__, "--server", str(out), "server", "-c", str(config), *flags],
            cwd=root, env=environment, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        while "listening" not in (line := process.stderr.readline()):
            if not line:
                raise RuntimeError("the server exited")
        subprocess.Popen(["cat"], stdin=process.stderr, stdout=subprocess.DEVNULL)
        time.sleep(1)
        process.send_signal(signal.SIGUSR1)
        while not out.with_suffix(".base").exists():
            time.sleep(0.2)
        generator = subprocess.Popen(
            [sys.executable, str(root / "bench" / "scale_sessions.py"), "--generator", str(pki), str(port), "0",
             str(sessions), str(HEARTBEAT_INTERVAL + 30)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)},
        )  # fmt: skip
        ready = json.loads(generator.stdout.readline())  # type: ignore[union-attr]
        if heartbeat:  # "go": every session sends its first heartbeat within one interval
            generator.stdin.write("go\n")  # type: ignore[union-attr]
            generator.stdin.flush()  # type: ignore[union-attr]
            time.sleep(HEARTBEAT_INTERVAL + 2)
        time.sleep(3)
        process.send_signal(signal.SIGUSR1)
        while not out.exists():
            time.sleep(0.2)
        result = json.loads(out.read_text())
        generator.kill()
        process.terminate()
        process.wait(30)
    up = ready["ready"]
    delta = result["delta"]
    native = delta["malloc"] - delta["traced"] - delta["tracemalloc_tables"]  # --plain: Python's big blocks too
    print(f"{up} sessions up ({ready['failed']} failed); bytes per session:")
    for name, value in [
        ("RSS (tracemalloc's tables in it unless --plain)", delta["rss"]),
        ("RSS after malloc_trim(0)", delta["rss_trimmed"]),
        ("malloc in use", delta["malloc"]),
        ("  tracemalloc's own tables", delta["tracemalloc_tables"]),
        ("  Python objects (traced)", delta["traced"]),
        ("  native (OpenSSL, C)", native),
    ]:
        print(f"  {name:40s} {value / up:10,.0f}")
    print("Python by file:line (bytes per session, objects per session):")
    for where, size, count in result["lines"][:top]:
        print(f"  {size / up:8,.0f} {count / up:6.1f}  {where}")
    print("objects by type (per session):")
    for name, count in result["types"][:top]:
        print(f"  {count / up:6.2f}  {name}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--server":
        server(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--plain", action="store_true", help="no tracemalloc, Python's own allocator: RSS only")
    parser.add_argument("--no-heartbeat", action="store_true", help="measure right after the handshakes")
    args = parser.parse_args()
    run(args.sessions, args.top, not args.no_heartbeat, args.plain)


if __name__ == "__main__":
    main()
