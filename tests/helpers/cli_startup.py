"""What an `opendots` process imports: the command run in a child interpreter that writes, at exit, the top-level
packages it imported (start-up cost is mostly imports; see opendots.cli.lazy). Also a DOTS server and a client
agent as real processes on loopback, for the FastNetMon hook's path to the agent."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from opendots.config import ClientConfig, ServerConfig
from opendots.pki.setup import init_pki
from tests.conftest import free_port
from tests.helpers import REPOSITORY

# Heavy packages only some verbs need (the list): none may be imported by --help or the hook's agent path.
HEAVY = ("aiocoap", "OpenSSL", "aiohttp", "asyncpg", "yangson", "prometheus_client", "cryptography", "elementpath")

_PROBE = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted({m.split(".")[0] for m in sys.modules}))))
sys.argv[0] = "opendots"
from opendots.cli.main import main
main()
"""


def imported_by(out: Path, *args: str, stdin: bytes = b"") -> tuple[set[str], subprocess.CompletedProcess[bytes]]:
    """(top-level packages `opendots ARGS` imported, the finished process)."""
    process = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    return set(json.loads(out.read_text())), process


def _opendots(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "opendots", "-v", *args],
            cwd=REPOSITORY,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _wait_log(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in {log}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


@contextlib.contextmanager
def server_and_agent(directory: Path) -> Iterator[Path]:
    """`opendots server` (DTLS, no data channel) and `opendots client run` with a session up; yields client.toml."""
    init_pki(directory)
    server = ServerConfig.load(directory / "server.toml")
    server.listen, server.signal_port = ["127.0.0.1"], free_port()
    server.save(directory / "server.toml")
    client = ClientConfig.load(directory / "client.toml")
    client.server_addresses, client.signal_port, client.transport = ["127.0.0.1"], server.signal_port, "dtls"
    client.save(directory / "client.toml")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_opendots("server", "-c", str(directory / "server.toml"), "--no-data", "--no-tls",
                                   log=directory / "server.log"))  # fmt: skip
        _wait_log(directory / "server.log", "listening", processes[0])
        processes.append(_opendots("client", "run", "-c", str(directory / "client.toml"), log=directory / "agent.log"))
        _wait_log(directory / "agent.log", "signal channel session up", processes[1])
        yield directory / "client.toml"
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
