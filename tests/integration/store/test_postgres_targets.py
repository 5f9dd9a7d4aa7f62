"""The `signal_targets` schema component (opendots.store.postgres_targets) on a throwaway cluster: its GiST search of
target prefixes was never used by decisions, so `opendots db upgrade` drops what migration 1 made (table, trigger,
functions) from a database that has it, rows and all, and the mitigations stay; writes then touch no second table."""

from __future__ import annotations

import json

import asyncpg

from opendots.store import postgres_targets
from opendots.store.postgres import _MIGRATIONS, PostgresSignalStore, connect_pool, migrate, upgrade
from opendots.store.records import MitigationRecord, SignalChanges


async def _leftovers(connection: asyncpg.Connection) -> list[str]:
    return [
        row[0]
        for row in await connection.fetch(
            "SELECT relname FROM pg_class WHERE relname LIKE 'signal_mitigation_prefixes%'"
            " UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE 'signal_mitigation_prefixes%'"
            " UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE 'signal_mitigation_prefixes%'"
        )
    ]


async def test_db_upgrade_drops_the_unused_prefix_table_of_a_database_that_has_it_and_keeps_the_mitigations(
    postgres_url: str,
):
    pool = await connect_pool(postgres_url)
    try:
        await migrate(pool, "signal", _MIGRATIONS)
        await migrate(pool, postgres_targets.COMPONENT, postgres_targets.MIGRATIONS[:1])  # as it shipped first
        async with pool.acquire() as connection:
            for mid, prefix in ((1, "192.0.2.0/24"), (2, "2001:db8::/32")):
                await connection.execute(
                    "INSERT INTO signal_mitigations (cuid, mid, client, request, lifetime, status, started_at)"
                    " VALUES ('c', $1, 'alpha', $2, 60, 2, 0)",
                    mid,
                    json.dumps({"target-prefix": [prefix]}),
                )
            assert await connection.fetchval("SELECT count(*) FROM signal_mitigation_prefixes") == 2
    finally:
        await pool.close()

    assert (await upgrade(postgres_url))[postgres_targets.COMPONENT] == len(postgres_targets.MIGRATIONS) == 2
    store = await PostgresSignalStore.open(postgres_url)
    try:
        assert [(m.cuid, m.mid) for m in store.load().mitigations] == [("c", 1), ("c", 2)]
        record = MitigationRecord("alpha", "c", 3, {"target-prefix": ["198.51.100.0/24"]}, 60, 2, 0.0, 60.0)
        await store.apply(SignalChanges(put_mitigations=[record]))  # no trigger left to fill a dropped table
        async with store.pool.acquire() as connection:
            assert await _leftovers(connection) == []
    finally:
        await store.close()


async def test_a_new_database_ends_without_the_prefix_table(postgres_url: str):
    store = await PostgresSignalStore.open(postgres_url)
    try:
        async with store.pool.acquire() as connection:
            assert await _leftovers(connection) == []
    finally:
        await store.close()
