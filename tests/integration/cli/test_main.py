"""The `opendots` command as an operator meets it, on real sockets and processes: a second agent on a control socket
in use, a server built by the composition root (opendots.app) that says when nothing is enforced, and admin verbs
that take a client's name or its CUID (the argument and configuration errors: tests/unit/cli/test_main.py)."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from pathlib import Path

from opendots.config import ClientConfig
from opendots.data.shell.server import CORE_KEY
from opendots.pki.setup import init_pki
from tests.conftest import free_port
from tests.helpers import REPOSITORY
from tests.helpers.cli import EX_DATAERR, invoke, one_line_error
from tests.helpers.processes import opendots_server

ROOT = REPOSITORY


def test_a_second_agent_on_the_same_control_socket_says_so_in_one_line(pki_dir: Path, tmp_path: Path) -> None:
    config = ClientConfig.load(pki_dir / "client.toml")
    config.control_socket = Path("/tmp") / f"od-wiring-{uuid.uuid4().hex[:10]}.sock"
    config.agent = {"state_file": str(tmp_path / "state.db")}
    config.save(tmp_path / "client.toml")
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # the first agent's socket, answering
    first.bind(str(config.control_socket))
    first.listen()
    try:
        result = invoke("client", "run", "-c", str(tmp_path / "client.toml"), "--event-loop", "asyncio")
        one_line_error(result, EX_DATAERR, "already listening", str(config.control_socket))
    finally:
        first.close()
        config.control_socket.unlink()


async def test_the_composition_root_gives_both_channels_one_database(app_server) -> None:
    running, _ = app_server
    data_store = running.data.app[CORE_KEY].store
    assert data_store.database is running.signal.store.database  # one connection, no second one behind it


async def test_client_verbs_take_the_servers_ports_from_flags_and_admin_takes_names_or_cuids(app_server) -> None:
    running, directory = app_server
    ports = ["--signal-port", str(running.config.signal_port), "--data-port", str(running.config.data_port)]
    client_toml, server_toml = str(directory / "client.toml"), str(directory / "server.toml")

    async def run(*args: str):
        return await asyncio.to_thread(invoke, *args)

    placed = await run("client", "mitigate", "-c", client_toml, *ports, "--target-prefix", "203.0.113.7/32")
    assert placed.exit_code == 0 and placed.output.startswith("mid ") and ": 2.01" in placed.output, placed.output
    mid = placed.output.split()[1].rstrip(":")
    unreachable = await run("client", "status", "-c", client_toml)  # client.toml still says 4646
    assert unreachable.exit_code == 69, unreachable.output
    cuid = next(c.cuid for c in running.config.clients if c.name == "client")
    by_cuid = await run("admin", "mitigations", "-c", server_toml, "--client", cuid)
    by_name = await run("admin", "mitigations", "-c", server_toml, "--client", "client")
    assert "203.0.113.7/32" in by_cuid.output and by_cuid.output == by_name.output
    reported = await run(
        "admin", "report-status", "-c", server_toml, "--client", "client", "--mid", mid, "--status", "attack-stopped"
    )
    assert reported.exit_code == 0, reported.output
    assert next(iter(running.signal.service.core.mitigations())).status.label == "attack-stopped"
    status = await run("admin", "status", "-c", server_toml)
    assert status.exit_code == 0 and "\nnot enforced: only the logging mitigator runs" in status.output
    row = next(line for line in status.output.splitlines() if line.startswith("client ") and "last traffic" not in line)
    assert "not enforced" in row, status.output
    refused = await run("admin", "report-status", "-c", server_toml, "--cuid", "nobody", "--mid", "1", "--status",
                        "attack-stopped")  # fmt: skip
    one_line_error(refused, EX_DATAERR, "no mitigation")


def test_the_server_warns_at_start_up_when_nothing_is_enforced(tmp_path: Path) -> None:
    config, _ = init_pki(tmp_path)
    flags = ["--signal-port", str(free_port()), "--listen", "127.0.0.1", "--no-data", "--no-tls"]
    process = opendots_server(tmp_path / "server.toml", *flags)
    try:
        assert process.stderr is not None
        assert "listening" in process.stderr.readline()
        warning = process.stderr.readline()
        assert warning.startswith("warning: no [[mitigators]] entry enforces anything"), warning
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0
    assert config.mitigators == []
