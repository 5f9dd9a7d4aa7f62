"""The server as `opendots server` builds it, for the CLI's integration tests."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from opendots.app import start_server
from opendots.config import ClientConfig
from opendots.pki.setup import init_pki
from tests.conftest import free_port


@pytest.fixture
async def app_server(tmp_path: Path):
    """A server as `opendots server` builds it (signal and data channel, operator socket), on ports that are NOT
    those of client.toml."""
    server_config, _ = init_pki(tmp_path, client_names=["other"])
    server_config.listen = ["127.0.0.1"]
    server_config.signal_port = free_port()
    server_config.data_port = free_port(socket.SOCK_STREAM)
    server_config.admin_socket = Path("/tmp") / f"od-wiring-{uuid.uuid4().hex[:10]}.sock"
    server_config.save(tmp_path / "server.toml")
    client = ClientConfig.load(tmp_path / "client.toml")
    client.server_addresses = ["127.0.0.1"]
    client.transport = "dtls"
    client.control_socket = tmp_path / "no-agent.sock"
    client.agent = {"connect_timeout": 5.0, "request_timeout": 5.0}
    client.save(tmp_path / "client.toml")
    running = await start_server(server_config, config_path=tmp_path / "server.toml")
    try:
        yield running, tmp_path
    finally:
        await running.stop()
