"""A signal server as `opendots server` runs it (DTLS and TLS on a free loopback port, real SQLite), per test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.raw_coap import RawDtlsCoap


@pytest.fixture
async def server(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    running.config = config
    yield running
    await running.stop()


@pytest.fixture
async def raw(pki_dir: Path, server):
    port = server.endpoint.dtls_addresses[0][1]
    loop = asyncio.get_running_loop()
    client = await loop.run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), port)

    async def exchange(message: bytes) -> list[aiocoap.Message]:
        answers = await loop.run_in_executor(None, client.exchange, message)
        return [aiocoap.Message.decode(answer) for answer in answers]

    yield exchange
    client.close()


@pytest.fixture
async def nodes(pki_dir: Path, tmp_path: Path, postgres_url: str):
    """Two cluster nodes in this process on one PostgreSQL database, deaf to NOTIFY (tests.helpers.cluster_nodes),
    and the clients' cuids by name."""
    from tests.helpers.cluster_nodes import make_deaf, start_node

    a = await start_node(pki_dir, tmp_path, "a", postgres_url)
    b = await start_node(pki_dir, tmp_path, "b", postgres_url)
    await make_deaf(a)
    await make_deaf(b)
    cuids = {c.name: c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients}
    try:
        yield a, b, cuids
    finally:
        await a.stop()
        await b.stop()
