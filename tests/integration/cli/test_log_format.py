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


def test_the_gateway_logs_json_lines_with_log_format_json(tmp_path: Path) -> None:
    """The gateway's upstream server is not running: its agent's first log line is a JSON object all the same."""
    from opendots.config import ClientConfig, ServerConfig

    init_pki(tmp_path)
    downstream = ServerConfig.load(tmp_path / "server.toml")
    downstream.signal_port, downstream.listen = free_port(), ["127.0.0.1"]
    downstream.save(tmp_path / "downstream.toml")
    upstream = ClientConfig.load(tmp_path / "client.toml")
    upstream.signal_port = free_port()  # nobody listens there
    upstream.save(tmp_path / "upstream.toml")
    (tmp_path / "gw.toml").write_text(
        '[gateway]\nkind = "server-domain"\nidentity = "gw1"\ndownstream = "downstream.toml"\n'
        'upstream = "upstream.toml"\nstate = "gw.db"\n'
    )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "opendots", "-v", "gateway", "--config", str(tmp_path / "gw.toml"),
         "--log-format", "json"],
        cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gateway.stderr is not None
        lines = [gateway.stderr.readline() for _ in range(3)]
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=20)
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert logged and all({"time", "level", "logger", "message"} <= set(line) for line in logged), lines
