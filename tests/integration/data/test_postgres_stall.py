"""The data channel on a PostgreSQL that stops answering: the request that needs it waits in a worker thread and gets
a 503 (RFC 8040 §7 operation-failed) once the store's timeout passes, nothing stored; meanwhile the event loop keeps
serving every other request (no input may stall the server)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from opendots.config import ServerConfig
from opendots.data.core import DataChannelSettings
from opendots.data.shell import server as server_module
from opendots.data.shell.server import start_data_server
from opendots.store.postgres_data import PostgresDataChannelStore
from tests.conftest import free_port
from tests.helpers.data_harness import ROOT, Peer, client_ssl, cuid_of, register

STORE_TIMEOUT = 3.0  # the stalled request's wait; the loop's other answers take milliseconds
WAITING_ON_ALIASES = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'data_aliases'::regclass"


async def test_a_stalled_database_delays_only_its_own_request_which_gets_503_and_stores_nothing(
    pki_dir: Path, server_config: ServerConfig, postgres_url: str
):
    store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url, timeout=STORE_TIMEOUT)
    port = free_port(socket.SOCK_STREAM)
    runner = await start_data_server(server_config, store, "127.0.0.1", port, DataChannelSettings())
    sessions: list[aiohttp.ClientSession] = []
    holder = await asyncpg.connect(postgres_url)
    try:

        def peer(name: str) -> Peer:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(pki_dir, name)))
            sessions.append(session)
            return Peer(f"https://127.0.0.1:{port}", session, cuid_of(pki_dir, name))

        client, other = peer("client"), peer("other")
        await register(client)
        before = await asyncio.to_thread(store.dump)
        alias = {"ietf-dots-data-channel:alias": [{"name": "web", "target-prefix": ["192.0.2.1/32"]}]}
        put = f"{ROOT}/dots-client={client.cuid}/aliases/alias=web"

        # A real stall: another session holds a lock every read of the aliases waits for.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_aliases IN ACCESS EXCLUSIVE MODE")
        stalled = asyncio.create_task(client.request("PUT", put, alias))
        waiting = 0
        while not waiting and not stalled.done():
            await asyncio.sleep(0.01)
            waiting = await holder.fetchval(WAITING_ON_ALIASES)
        assert waiting, "the PUT never waited for the database while the loop ran"

        # The loop serves the other client (and a second request of the same one) while that PUT waits.
        host_meta = await other.request("GET", "/.well-known/host-meta")
        assert host_meta.status == 200
        version = await client.request("GET", "/restconf/yang-library-version")
        assert version.status == 200
        assert await holder.fetchval(WAITING_ON_ALIASES) == 1, "answered only after the stalled read gave up"
        assert not stalled.done()

        reply = await stalled
        assert reply.status == 503, reply.text
        [error] = reply.body["ietf-restconf:errors"]["error"]
        assert error["error-tag"] == "operation-failed"
        assert "data store did not answer" in error["error-message"]
        await transaction.rollback()
        assert await asyncio.to_thread(store.dump) == before

        # The database answers again: so does the data channel.
        assert (await client.request("PUT", put, alias)).status == 201
        assert (await client.request("GET", put)).status == 200
    finally:
        await holder.close()
        for session in sessions:
            await session.close()
        await runner.cleanup()
        await asyncio.to_thread(store.close)


async def test_the_expiry_purge_waits_for_a_stalled_database_off_the_loop_and_survives_its_timeout(
    pki_dir: Path,
    server_config: ServerConfig,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    """RFC 8783 §7.1/§7.2 lifetimes: expired entries are purged by a timer; on PostgreSQL its DELETE runs in a
    worker thread, and a purge the database did not answer is logged and tried again at the next round."""
    monkeypatch.setattr(server_module, "PURGE_INTERVAL", 0.05)
    now = [time.time()]
    store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url, timeout=STORE_TIMEOUT)
    port = free_port(socket.SOCK_STREAM)
    settings = DataChannelSettings()
    runner = await start_data_server(server_config, store, "127.0.0.1", port, settings, clock=lambda: now[0])
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(pki_dir, "client")))
    holder = await asyncpg.connect(postgres_url)
    try:
        client = Peer(f"https://127.0.0.1:{port}", session, cuid_of(pki_dir, "client"))
        await register(client)
        alias = {"ietf-dots-data-channel:alias": [{"name": "web", "target-prefix": ["192.0.2.1/32"]}]}
        put = f"{ROOT}/dots-client={client.cuid}/aliases/alias=web"
        assert (await client.request("PUT", put, alias)).status == 201

        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE data_aliases IN ACCESS EXCLUSIVE MODE")
        now[0] += settings.lifetime + 1  # the alias has expired: the next purge deletes it
        waiting = 0
        for _ in range(1000):  # ~10 s at most; the purge's DELETE waits within ~50 ms
            await asyncio.sleep(0.01)  # this loop turns only while the purge waits elsewhere
            waiting = await holder.fetchval(WAITING_ON_ALIASES)
            if waiting:
                break
        assert waiting, "the purge never waited for the database while the loop ran"
        assert (await client.request("GET", "/.well-known/host-meta")).status == 200
        assert "could not purge expired" not in caplog.text, "answered only after the stalled purge gave up"
        while "could not purge expired" not in caplog.text:  # the store's timeout passes
            await asyncio.sleep(0.05)
        await transaction.rollback()

        while any(line.startswith("data_aliases") for line in (await asyncio.to_thread(store.dump)).splitlines()):
            await asyncio.sleep(0.05)  # a later round purges it: the timer survived the failure
    finally:
        await holder.close()
        await session.close()
        await runner.cleanup()
        await asyncio.to_thread(store.close)
