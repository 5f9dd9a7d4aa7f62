"""The mitigator lease's holder as operators and tests look it up (opendots.store.postgres_cluster.lease_holder_pid):
advisory locks belong to one database, pg_locks lists those of every database on the server, so two clusters of
nodes on one PostgreSQL server (or the test suite's databases on its one throwaway server) each see their own."""

from __future__ import annotations

import asyncio

import asyncpg

from opendots.store.postgres_cluster import lease_holder_pid, try_lease
from tests.helpers.postgres import Cluster


async def test_the_lease_holder_is_the_one_of_this_database_not_of_another_on_the_same_server(
    postgres_cluster: Cluster, postgres_url: str
) -> None:
    here, there = postgres_url, await asyncio.to_thread(postgres_cluster.fresh_database)
    elsewhere, looking, holder = [await asyncpg.connect(url) for url in (there, here, here)]
    try:
        assert await try_lease(elsewhere)  # the other database's lease: its own lock, taken
        assert await lease_holder_pid(looking) is None
        assert await try_lease(holder)  # not excluded by the other database's
        assert await lease_holder_pid(looking) == holder.get_server_pid()
        await elsewhere.close()
        assert await lease_holder_pid(looking) == holder.get_server_pid()
    finally:
        for connection in (elsewhere, looking, holder):
            await connection.close()
