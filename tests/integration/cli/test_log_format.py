"""`opendots server --log-format json`: every log line the running server writes is one JSON object (journald,
Loki, ELK), in DOTS terms; the line scripts wait for still says where it listens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from opendots.pki.setup import init_pki
from tests.conftest import free_port
from tests.helpers import REPOSITORY
from tests.helpers.processes import opendots_server


def test_the_server_logs_json_lines_with_log_format_json(tmp_path: Path) -> None:
    init_pki(tmp_path)
    flags = ["--signal-port", str(free_port()), "--listen", "127.0.0.1", "--no-data", "--no-tls"]
    process = opendots_server(tmp_path / "server.toml", *flags, "--log-format", "json")
    try:
        assert process.stderr is not None
        assert "listening" in process.stderr.readline()
        assert process.stderr.readline().startswith("warning: no [[mitigators]]")
        process.send_signal(signal.SIGHUP)  # reload [[clients]]: a warning-level log line
        line = json.loads(process.stderr.readline())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert line["level"] == "warning" and line["logger"] == "opendots.signal.server.shell.run"
    assert line["message"] == "reloaded [[clients]]: added none; removed none; changed none"
    assert process.returncode == 0


def test_the_client_agent_logs_json_lines_with_log_format_json(tmp_path: Path) -> None:
    init_pki(tmp_path)
    agent = subprocess.Popen(
        [sys.executable, "-m", "opendots", "-v", "client", "run", "-c", str(tmp_path / "client.toml"),
         "--log-format", "json"],
        cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert agent.stderr is not None
        line = json.loads(agent.stderr.readline())
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)
    assert line["level"] == "info" and line["logger"] == "opendots.signal.client.shell.agent"
    assert line["message"].startswith("DOTS client agent started: cuid ")
