"""What nodes sharing one PostgreSQL database read of each other (opendots.store.postgres_cluster), on a throwaway
cluster: every write to a mitigation, whoever makes it, is logged in commit order and NOTIFYed with its writer and
key; a node reads each changed key once with the row as it is now (None: deleted); the lock is held until the
decision commits; old log entries are pruned."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from opendots.store import postgres_cluster as db
from opendots.store.postgres import PostgresSignalStore, application_name
from opendots.store.records import MitigationRecord, SignalChanges
from tests.helpers.signal_harness import T0


def record(mid: int, lifetime: int = 60) -> MitigationRecord:
    return MitigationRecord(
        "alpha", "c", mid, {"lifetime": 60}, lifetime, 2, T0, T0 + lifetime
    )  # a renewal keeps the request


@pytest.fixture
async def store(postgres_url):
    opened = await PostgresSignalStore.open(postgres_url)
    yield opened
    await opened.close()


async def test_a_node_reads_each_changed_key_once_as_it_is_now(store):
    seen = store.seen
    await store.apply(SignalChanges(put_mitigations=[record(1), record(2)]))
    await store.apply(SignalChanges(renewed_mitigations=[record(1, 90)]))
    await store.apply(SignalChanges(delete_mitigations=[("c", 2)]))
    seen, changed = await db.read_changes(store, seen)
    # In the order of each key's last change: 1 renewed, then 2 deleted.
    assert changed == [(("c", 1), record(1, 90)), (("c", 2), None)]
    assert await db.read_changes(store, seen) == (seen, [])  # nothing new after what was read


async def test_every_write_is_notified_with_its_writer_and_key(store, postgres_url):
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres_url)
    try:
        await listener.add_listener(db.MITIGATIONS_CHANNEL, lambda _c, _p, _ch, payload: heard.put_nowait(payload))
        await store.apply(SignalChanges(put_mitigations=[record(3)]))
        assert await asyncio.wait_for(heard.get(), 10) == f"{application_name()} c/3"
    finally:
        await listener.close()


async def test_log_entries_older_than_kept_are_pruned(store):
    await store.apply(SignalChanges(put_mitigations=[record(5)]))
    async with store.pool.acquire() as connection:
        await connection.execute("UPDATE signal_mitigation_changes SET at = now() - interval '1 hour'")
    await store.apply(SignalChanges(put_mitigations=[record(6)]))
    assert await db.prune(store) == 1
    _, changed = await db.read_changes(store, 0)
    assert [key for key, _ in changed] == [("c", 6)]
