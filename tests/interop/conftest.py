"""A signal server (DTLS and TLS on a free loopback port, real SQLite) for libcoap to talk to with its config."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.config import ServerConfig
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port


@pytest.fixture
async def signal_server(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    yield running, config
    await running.stop()
