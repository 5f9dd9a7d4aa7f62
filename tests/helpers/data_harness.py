"""Shared harness for the data channel tests: a real server (mutual TLS, free loopback port, real SQLite).

Other test_data_* modules import the fixtures from here.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from opendots.config import ServerConfig
from opendots.data.core import DataChannelSettings
from opendots.data.shell.server import start_data_server
from opendots.pki import cuid_from_certificate
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from tests.conftest import free_port
from tests.helpers.data_figures import Figure, bare_identities, load_figure, with_cuid, without  # noqa: F401 (re-exported)

JSON = "application/yang-data+json"
ROOT = "/restconf/data/ietf-dots-data-channel:dots-data"


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    text: str


@dataclass
class Peer:
    """One TLS client (a certificate) talking to the server."""

    base: str
    session: aiohttp.ClientSession
    cuid: str

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = JSON,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None and content_type:
            all_headers["Content-Type"] = content_type
        async with self.session.request(method, self.base + path, data=data, headers=all_headers) as response:
            text = await response.text()
            parsed = json.loads(text) if text and "json" in response.headers.get("Content-Type", "") else None
            return Reply(response.status, parsed, dict(response.headers), text)


@dataclass
class Harness:
    base: str
    store: SqliteDataChannelStore
    clock: Clock
    client: Peer
    other: Peer
    settings: DataChannelSettings
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)


def client_ssl(pki_dir: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.load_cert_chain(pki_dir / f"{name}.crt", pki_dir / f"{name}.key")
    return context


def cuid_of(pki_dir: Path, name: str) -> str:
    return cuid_from_certificate((pki_dir / f"{name}.crt").read_bytes())


async def make_harness(
    pki_dir: Path, server_config: ServerConfig, tmp_path: Path, settings: DataChannelSettings | None = None
):
    database = SqliteDatabase(tmp_path / "data.sqlite")
    store = SqliteDataChannelStore(database)
    clock = Clock()
    settings = settings or DataChannelSettings()
    port = free_port(socket.SOCK_STREAM)
    runner = await start_data_server(server_config, store, "127.0.0.1", port, settings, clock)
    base = f"https://127.0.0.1:{port}"
    peers = []
    for name in ("client", "other"):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(pki_dir, name)))
        peers.append(Peer(base, session, cuid_of(pki_dir, name)))
    harness = Harness(base, store, clock, peers[0], peers[1], settings)

    async def close() -> None:
        for peer in peers:
            await peer.session.close()
        await runner.cleanup()
        database.close()

    return harness, close


@pytest.fixture
async def harness(pki_dir: Path, server_config: ServerConfig, tmp_path: Path):
    result, close = await make_harness(pki_dir, server_config, tmp_path)
    yield result
    await close()


async def register(peer: Peer) -> None:
    reply = await peer.request("POST", ROOT, {"ietf-dots-data-channel:dots-client": [{"cuid": peer.cuid}]})
    assert reply.status == 201, reply.text


def post_to_core(core: Any, cuid: str, path: str, body: dict[str, Any]) -> None:
    """POST BODY to the data channel CORE (a DataChannelCore, no HTTPS) under /dots-data PATH as CUID; 201 asserted.
    Blocks on the core's store: call it in a worker thread from a loop."""
    import time

    from opendots.data.core import RestconfRequest

    request = RestconfRequest(
        "POST",
        "/ietf-dots-data-channel:dots-data" + path,
        cuid,
        body=json.dumps(body).encode(),
        content_type="application/yang-data+json",
    )
    assert core.handle(request, time.time()).status == 201
