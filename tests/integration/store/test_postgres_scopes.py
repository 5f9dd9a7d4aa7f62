"""Per-scope locks of mitigation writes on a throwaway PostgreSQL cluster (opendots.store.postgres_scopes): writes
of different clients on disjoint targets hold their locks at the same time (counted in pg_locks, not timed); a
write overlapping one in progress, of another client (RFC 9132 §4.4.1.3) or of the same client (§4.4.1), waits
for it; a write needing the whole table waits for every scoped one; change-log entries commit in `seq` order."""

from __future__ import annotations

import asyncio
import ipaddress
from contextlib import AsyncExitStack

import asyncpg
import pytest

from opendots.store.postgres import PostgresSignalStore
from opendots.store.postgres_scopes import GLOBAL, LOG_LOCK, WriteScope, scoped
from opendots.store.records import MitigationRecord, SignalChanges, StoreError
from tests.helpers.signal_harness import T0

pytestmark = pytest.mark.timeout(60)


def _scope(owner: str, *prefixes: str) -> WriteScope:
    return WriteScope((f"peer {owner}", f"cuid {owner}"), tuple(ipaddress.ip_network(p) for p in prefixes))


@pytest.fixture
async def store(postgres_url):
    opened = await PostgresSignalStore.open(postgres_url, max_size=6)
    yield opened
    await opened.close()


async def _advisory(url: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            "SELECT pid, classid::bigint << 32 | objid::bigint AS key, mode, granted FROM pg_locks"
            " WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )  # this test's database only: the suite's other databases share the server
    finally:
        await connection.close()


async def _waiting(url: str) -> int:
    for _ in range(200):
        waiting = [row for row in await _advisory(url) if not row["granted"]]
        if waiting:
            return len(waiting)
        await asyncio.sleep(0.02)
    return 0


class _Holder:
    """A write that entered its scope and stays in it until told to leave."""

    def __init__(self, store: PostgresSignalStore, scope: WriteScope | None) -> None:
        self.entered = asyncio.Event()
        self.leave = asyncio.Event()
        self.task = asyncio.create_task(self._run(store, scope))

    async def _run(self, store: PostgresSignalStore, scope: WriteScope | None) -> None:
        async with scoped(store, store.seen, scope):
            self.entered.set()
            await self.leave.wait()


async def test_different_clients_on_disjoint_targets_hold_their_locks_at_once(store, postgres_url):
    async with AsyncExitStack() as stack:
        first = _Holder(store, _scope("alpha", "192.0.2.0/28", "2001:db8::/64"))
        second = _Holder(store, _scope("bravo", "198.51.100.0/24"))
        stack.callback(first.leave.set)
        stack.callback(second.leave.set)
        await asyncio.wait_for(asyncio.gather(first.entered.wait(), second.entered.wait()), 10)
        held = await _advisory(postgres_url)
        assert all(row["granted"] for row in held)
        holders = {row["pid"] for row in held}
        assert len(holders) == 2  # two sessions hold their scopes at the same time
        shared_global = [row for row in held if row["key"] == GLOBAL & 0xFFFFFFFFFFFFFFFF]
        assert len(shared_global) == 2 and {row["mode"] for row in shared_global} == {"ShareLock"}
        first.leave.set()
        second.leave.set()
        await asyncio.gather(first.task, second.task)
    assert await _advisory(postgres_url) == []  # released on the way out


@pytest.mark.parametrize(
    "blocked",
    [
        _scope("bravo", "192.0.2.8/29"),  # another client, nested in the first's /28 (§4.4.1.3)
        _scope("bravo", "192.0.0.0/16"),  # another client, holding it (a level above)
        _scope("alpha", "203.0.113.0/24"),  # the same client, elsewhere ('mid' rules, §4.4.1)
        None,  # the whole table (an expiry, an alias)
    ],
)
async def test_a_write_that_could_change_another_in_progress_waits_for_it(store, postgres_url, blocked):
    first = _Holder(store, _scope("alpha", "192.0.2.0/28"))
    await asyncio.wait_for(first.entered.wait(), 10)
    second = _Holder(store, blocked)
    try:
        assert await _waiting(postgres_url) == 1  # its lock request queued behind the first's
        assert not second.entered.is_set()
        first.leave.set()
        await asyncio.wait_for(second.entered.wait(), 10)  # and it goes on once the first is done
    finally:
        first.leave.set()
        second.leave.set()
        await asyncio.gather(first.task, second.task)


async def test_a_decision_stored_under_its_scope_is_committed_and_its_locks_released(store, postgres_url):
    record = MitigationRecord("alpha", "a", 1, {"target-prefix": ["192.0.2.0/28"]}, 60, 2, T0, T0 + 60)
    async with scoped(store, store.seen, _scope("alpha", "192.0.2.0/28")) as write:
        await write.apply(SignalChanges(put_mitigations=[record]))
        assert write.committed and not write.locked
        assert await _advisory(postgres_url) == []
    assert (await store.dump())["signal_mitigations"][0][:2] == ("a", 1)


@pytest.mark.parametrize("scope", [_scope("alpha", "192.0.2.0/28"), None], ids=["scoped", "whole-table"])
async def test_the_locks_are_released_whatever_the_decision(store, postgres_url, scope):
    """A refusal (nothing to store) and a write the database rejects both let the other nodes go on: no session lock
    outlives its decision."""
    async with scoped(store, store.seen, scope):
        pass
    assert await _advisory(postgres_url) == []
    async with scoped(store, store.seen, scope) as write:
        broken = MitigationRecord(None, "c", 9, {}, 60, 2, T0, T0 + 60)  # type: ignore[arg-type]  # NOT NULL client
        with pytest.raises(StoreError):
            await write.apply(SignalChanges(put_mitigations=[broken]))
    assert await _advisory(postgres_url) == []


async def test_change_log_entries_commit_in_the_order_of_their_seq(store, postgres_url):
    """A write waits for LOG_LOCK while another write's transaction is open: no reader can see a later entry of
    the log while an earlier one may still commit."""
    first = await asyncpg.connect(postgres_url)
    try:
        transaction = first.transaction()
        await transaction.start()
        await first.execute(
            "INSERT INTO signal_mitigations (cuid, mid, client, request, lifetime, status, started_at)"
            " VALUES ('a', 1, 'alpha', '{}', 60, 2, 0)"
        )
        record = MitigationRecord("bravo", "b", 1, {}, 60, 2, T0, T0 + 60)
        later = asyncio.create_task(store.apply(SignalChanges(put_mitigations=[record])))
        assert await _waiting(postgres_url) == 1
        waiting = [row for row in await _advisory(postgres_url) if not row["granted"]]
        assert waiting[0]["key"] == LOG_LOCK
        await transaction.commit()
        await asyncio.wait_for(later, 10)
        rows = await first.fetch("SELECT cuid FROM signal_mitigation_changes ORDER BY seq")
        assert [row["cuid"] for row in rows] == ["a", "b"]
    finally:
        await first.close()
