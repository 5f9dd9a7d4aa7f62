"""Target prefixes as PostgreSQL `cidr` with a GiST index (opendots.store.postgres_targets), on a throwaway cluster:
the same overlap answers as SQLite (the shared contract), rows stored before the migration converted by
`opendots db upgrade`, and the search an index scan on a table of many rows (read from EXPLAIN, not timed)."""

from __future__ import annotations

import ipaddress
import json

from opendots.store import postgres_targets
from opendots.store.postgres import _MIGRATIONS, PostgresSignalStore, connect_pool, migrate, upgrade
from tests.helpers import signal_store_contract as contract


def test_overlap_candidates_are_the_mitigations_whose_prefixes_nest_with_the_query(open_signal_store):
    contract.overlap_candidates_are_the_mitigations_whose_prefixes_nest_with_the_query(open_signal_store)


async def test_mitigations_stored_before_the_migration_are_converted_by_db_upgrade(postgres_url: str):
    pool = await connect_pool(postgres_url)
    try:
        await migrate(pool, "signal", _MIGRATIONS)  # a database of the version before cidr
        async with pool.acquire() as connection:
            for mid, prefix in ((1, "192.0.2.0/24"), (2, "2001:db8::/32")):
                await connection.execute(
                    "INSERT INTO signal_mitigations (cuid, mid, client, request, lifetime, status, started_at)"
                    " VALUES ('c', $1, 'alpha', $2, 60, 2, 0)",
                    mid,
                    json.dumps({"target-prefix": [prefix]}),
                )
    finally:
        await pool.close()
    assert (await upgrade(postgres_url))[postgres_targets.COMPONENT] == len(postgres_targets.MIGRATIONS)
    store = await PostgresSignalStore.open(postgres_url)
    try:
        assert await store.overlapping_keys([ipaddress.ip_network("192.0.2.128/25")]) == [("c", 1)]
        assert await store.overlapping_keys([ipaddress.ip_network("2001:db8:1::/48")]) == [("c", 2)]
    finally:
        await store.close()


def _plan_nodes(plan: dict) -> list[tuple[str, str | None]]:
    nodes = [(plan["Node Type"], plan.get("Index Name"))]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


async def test_the_overlap_search_is_an_index_scan_of_the_gist_index_on_many_rows(postgres_url: str):
    store = await PostgresSignalStore.open(postgres_url)
    try:
        async with store.pool.acquire() as connection:
            # 20,000 mitigations on distinct /32s of 10.0.0.0/8 (the trigger fills the prefix table), then statistics.
            await connection.execute(
                "INSERT INTO signal_mitigations (cuid, mid, client, request, lifetime, status, started_at)"
                " SELECT 'c', n, 'alpha', json_build_object('target-prefix',"
                " json_build_array(host('10.0.0.0'::inet + n) || '/32')), 60, 2, 0 FROM generate_series(1, 20000) n"
            )
            await connection.execute("ANALYZE signal_mitigation_prefixes")
            query = [ipaddress.ip_network("10.0.1.0/28")]
            explained = await connection.fetchval("EXPLAIN (FORMAT JSON) " + postgres_targets.OVERLAPPING, query)
            nodes = _plan_nodes(json.loads(explained)[0]["Plan"])
            scans = [node for node in nodes if node[0] in ("Index Scan", "Bitmap Index Scan", "Index Only Scan")]
            assert "signal_mitigation_prefixes_overlap" in {name for _, name in scans}, nodes
            assert not any(node == "Seq Scan" for node, _ in nodes), nodes
            # And the answer: the 16 addresses of 10.0.1.0/28 are mitigations 256..271.
            assert await store.overlapping_keys(query) == [("c", mid) for mid in range(256, 272)]
    finally:
        await store.close()


async def test_a_stored_request_whose_prefixes_cannot_be_read_is_a_candidate_everywhere(postgres_url: str):
    store = await PostgresSignalStore.open(postgres_url)
    try:
        async with store.pool.acquire() as connection:
            await connection.execute(
                "INSERT INTO signal_mitigations (cuid, mid, client, request, lifetime, status, started_at)"
                " VALUES ('c', 1, 'alpha', '{\"target-prefix\": [\"no\"]}', 60, 2, 0)"
            )
            rows = await connection.fetch("SELECT prefix FROM signal_mitigation_prefixes ORDER BY prefix")
        assert [str(row["prefix"]) for row in rows] == ["0.0.0.0/0", "::/0"]
    finally:
        await store.close()
