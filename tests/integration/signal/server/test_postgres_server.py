"""`opendots server --db postgresql://...` as a real process on a throwaway PostgreSQL cluster: mitigation requests
over DTLS are answered once PostgreSQL holds them (RFC 9132 §4.4.1), survive a restart, and nothing acknowledged is
lost when the process is killed (SIGKILL) mid-way."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import aiocoap
import asyncpg
import pytest

from opendots.cli.certs import init_pki
from opendots.config import ServerConfig, TlsFiles
from opendots.model import decode_signal, encode_signal
from opendots.store.postgres import signal_components
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers.cluster import start_server_process

SCOPE = "ietf-dots-signal-channel:mitigation-scope"


async def _start(config: Path, port: int, url: str) -> asyncio.subprocess.Process:
    return await start_server_process(config, port, url)


class _Client:
    def __init__(self, context: Any, port: int, cuid: str) -> None:
        self.context, self.base = context, f"coaps://127.0.0.1:{port}/.well-known/dots/mitigate/cuid={cuid}"

    async def request(self, code: aiocoap.Code, mid: int | None = None, body: Any = None) -> aiocoap.Message:
        uri = self.base if mid is None else f"{self.base}/mid={mid}"
        message = aiocoap.Message(code=code, uri=uri)
        if body is not None:
            message.payload, message.opt.content_format = encode_signal(body), 271
        return await asyncio.wait_for(self.context.request(message).response, 15)

    async def put(self, mid: int, prefix: str, lifetime: int = 3600) -> aiocoap.Message:
        body = {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": lifetime}]}}
        return await self.request(aiocoap.PUT, mid, body)

    async def mids(self) -> list[int]:
        response = await self.request(aiocoap.GET)
        assert response.code == aiocoap.CONTENT, response
        return [entry["mid"] for entry in decode_signal(response.payload)[SCOPE]["scope"]]


async def _stored_mids(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        return [row["mid"] for row in await connection.fetch("SELECT mid FROM signal_mitigations ORDER BY mid")]
    finally:
        await connection.close()


async def _components(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        return [row[0] for row in await connection.fetch("SELECT component FROM schema_versions ORDER BY 1")]
    finally:
        await connection.close()


async def test_a_server_on_postgresql_serves_mitigations_that_survive_a_restart_and_a_sigkill(
    tmp_path: Path, postgres_url: str
):
    port = free_port()
    init_pki(tmp_path)
    config = tmp_path / "server.toml"
    cuid = next(c.cuid for c in ServerConfig.load(config).clients if c.name == "client")
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")

    async def session() -> _Client:
        return _Client(await create_client_context(tls, server_name="localhost"), port, cuid)

    process = await _start(config, port, postgres_url)
    try:
        client = await session()
        created = await client.put(1, "203.0.113.0/28")
        assert created.code == aiocoap.CREATED, created
        assert decode_signal(created.payload) == {SCOPE: {"scope": [{"mid": 1, "lifetime": 3600}]}}
        assert (await client.put(2, "203.0.113.16/28")).code == aiocoap.CREATED
        got = await client.request(aiocoap.GET, 1)
        assert got.code == aiocoap.CONTENT
        assert decode_signal(got.payload)[SCOPE]["scope"][0]["target-prefix"] == ["203.0.113.0/28"]
        observe = aiocoap.Message(code=aiocoap.GET, uri=f"{client.base}/mid=1", observe=0)  # aiocoap's render path
        observed = await asyncio.wait_for(client.context.request(observe).response, 15)
        assert observed.code == aiocoap.CONTENT and observed.opt.observe is not None
        assert (await client.request(aiocoap.DELETE, 2)).code == aiocoap.DELETED
        assert await _stored_mids(postgres_url) == [1, 2]  # 2 is kept while it terminates (§4.4.4)
        await client.context.shutdown()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0
    # The data channel's tables are in the same PostgreSQL database, so every node sees one set of aliases and ACLs.
    assert await _components(postgres_url) == sorted(["data_channel", *(name for name, _ in signal_components())])

    process = await _start(config, port, postgres_url)  # a restart reads the mitigations back from PostgreSQL
    acknowledged: list[int] = []
    try:
        client = await session()
        assert 1 in await client.mids()
        for mid in range(3, 23):
            # Clear of mid 1's 203.0.113.0/28: an overlapping request of the same client would replace it (§4.4.1).
            if (await client.put(mid, f"203.0.113.{64 + mid * 4}/30")).code == aiocoap.CREATED:
                acknowledged.append(mid)
        # One more request in flight when the process dies: it may or may not be kept, but never half.
        asyncio.get_running_loop().create_task(client.put(23, "203.0.113.156/30"))
        await asyncio.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 20)
        await client.context.shutdown()
    assert acknowledged == list(range(3, 23))

    process = await _start(config, port, postgres_url)
    try:
        client = await session()
        served = await client.mids()
        assert set(acknowledged) | {1} <= set(served), served
        assert set(await _stored_mids(postgres_url)) == set(served) | {2}
        await client.context.shutdown()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0


async def test_block_wise_requests_and_answers_are_served_once_postgresql_has_the_write(
    pki_dir: Path, tmp_path: Path, postgres_url: str
):
    """RFC 7959 Block1 upload and Block2 answer (RFC 9132 §4.4.2) over DTLS and TLS, with the store awaited."""
    from opendots.signal.server.shell.run import start_signal_server
    from opendots.store.postgres import PostgresSignalStore
    from tests.helpers import tls_files

    config = ServerConfig.load(pki_dir / "server.toml")
    config.db, config.db_url = tmp_path / "data.db", postgres_url
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    context = await create_client_context(tls_files(pki_dir, "client"), server_name="localhost")
    try:
        assert isinstance(running.store, PostgresSignalStore) and running.service.awaited
        cuid = next(c.cuid for c in config.clients if c.name == "client")
        for mid, (host, port) in enumerate((running.endpoint.dtls_addresses[0], running.endpoint.tls_addresses[0])):
            scheme = "coaps" if mid == 0 else "coaps+tcp"
            # Apart for each mid: an overlapping request of the same client would replace the other (§4.4.1).
            prefixes = [f"2001:db8:{mid}::{i:x}/128" for i in range(1, 121)]
            body = encode_signal({SCOPE: {"scope": [{"target-prefix": prefixes, "lifetime": 3600}]}})
            assert len(body) > 1024  # more than one block over DTLS
            uri = f"{scheme}://{host}:{port}/.well-known/dots/mitigate/cuid={cuid}/mid={mid + 1}"
            put = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=body, content_format=271)
            created = await asyncio.wait_for(context.request(put).response, 15)
            assert created.code == aiocoap.CREATED, created
            got = await asyncio.wait_for(context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 15)
            assert got.code == aiocoap.CONTENT
            assert bool(got.opt.etag) == (scheme == "coaps")  # over DTLS: reassembled from Block2 blocks, one ETag
            assert decode_signal(got.payload)[SCOPE]["scope"][0]["target-prefix"] == prefixes
        assert [row[1] for row in (await running.store.dump())["signal_mitigations"]] == [1, 2]
    finally:
        await context.shutdown()
        await running.stop()


def test_a_server_whose_postgresql_database_is_unreachable_stops_with_one_line_without_the_password(tmp_path: Path):
    from tests.helpers.cli import EX_CONFIG, invoke, one_line_error

    init_pki(tmp_path)
    url = "postgresql://dots:secret@127.0.0.1:1/dots?sslmode=disable"
    result = invoke("server", "-c", str(tmp_path / "server.toml"), "--listen", "127.0.0.1", "--db", url)
    one_line_error(result, EX_CONFIG, "db: PostgreSQL postgresql://dots:***@127.0.0.1:1/dots")
    assert "secret" not in result.output


async def test_a_start_that_cannot_listen_closes_the_postgresql_pool_it_opened(
    pki_dir: Path, tmp_path: Path, postgres_url: str
):
    from opendots.signal.server.shell.run import start_signal_server

    config = ServerConfig.load(pki_dir / "server.toml")
    config.db, config.db_url = tmp_path / "data.db", postgres_url
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(OSError):
            await start_signal_server(config, bind=[taken.getsockname()], tls=False)
    finally:
        taken.close()
    connection = await asyncpg.connect(postgres_url)
    try:
        others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        assert await connection.fetchval(others) == 0
    finally:
        await connection.close()
