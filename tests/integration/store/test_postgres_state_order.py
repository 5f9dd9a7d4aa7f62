"""A client's session configuration written through two nodes at once (RFC 9132 §4.5.2, issue #18): the write of
the higher 'sid' wins whatever the commit order, and an update to a lower one that commits later is dropped with a
notification every node hears (its writer too), so each reads the row again (opendots.store.postgres_state)."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from opendots.store import postgres_state
from opendots.store.postgres import PostgresSignalStore
from opendots.store.records import SessionConfigRecord, SignalChanges


@pytest.fixture
async def store(postgres_url):
    opened = await PostgresSignalStore.open(postgres_url)
    yield opened
    await opened.close()


def config(sid: int, interval: int) -> SessionConfigRecord:
    parameters = {"heartbeat-interval": interval}
    return SessionConfigRecord("client", {"sid": sid, "mitigating-config": parameters, "idle-config": parameters})


async def test_a_lower_sid_committed_after_a_higher_one_is_dropped_and_announced_to_every_node(store, postgres_url):
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres_url)
    try:
        await listener.add_listener(postgres_state.CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        await store.apply(SignalChanges(put_session_configs=[config(6, 90)]))
        assert postgres_state.changed_by(await asyncio.wait_for(heard.get(), 10))[1] == "client"

        await store.apply(SignalChanges(put_session_configs=[config(5, 30)]))  # decided before sid 6 was known

        assert postgres_state.changed_by(await asyncio.wait_for(heard.get(), 10)) == ("", "client")
        found = await postgres_state.read_clients(store, ["client"])
        assert found["client"][0] == config(6, 90)

        await store.apply(SignalChanges(put_session_configs=[config(6, 60)]))  # the same sid again: it replaces
        found = await postgres_state.read_clients(store, ["client"])
        assert found["client"][0] == config(6, 60)
        async with store.pool.acquire() as connection:
            stored = await connection.fetchval("SELECT config FROM signal_session_configs WHERE client = 'client'")
        assert json.loads(stored)["sid"] == 6
    finally:
        await listener.close()
