"""An RFC 9133 §3.2.1 activation change on the PostgreSQL data channel store (signal-channel filter control): one
statement, one round trip, counted in the server's own statement log (`log_statement = 'all'` for this test's
database only). The signal channel writes it while its decision lock is held, so each round trip there holds every
other client's decision (opendots.signal.server.shell.durable); the change itself stays whole: the other members of
the body kept, the lifetime restarted, a vanished ACL not written."""

from __future__ import annotations

import asyncio
import re

import asyncpg

from opendots.store.data_records import AclWrite, Changes
from opendots.store.postgres_data import PostgresDataChannelStore
from tests.helpers.data_store_contract import acl
from tests.helpers.postgres import Cluster

ACES = {"ace": [{"name": "x", "matches": {"ipv4": {"protocol": 17}}, "actions": {"forwarding": "drop"}}]}
LOGGED = re.compile(r"LOG:\s+(statement|execute [^:]*):")


def _statements_logged(cluster: Cluster, since: int) -> list[str]:
    with (cluster.directory / "log").open("rb") as log:
        log.seek(since)
        return [line for line in log.read().decode(errors="replace").splitlines() if LOGGED.search(line)]


def test_an_acl_activation_change_is_one_statement_and_keeps_the_rest_of_the_acl(postgres_cluster: Cluster):
    url = postgres_cluster.fresh_database()
    database = url.rsplit("/", 1)[1].split("?")[0]

    async def log_statements() -> None:
        connection = await asyncpg.connect(postgres_cluster.url())
        try:
            await connection.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
        finally:
            await connection.close()

    asyncio.run(log_statements())  # for the sessions opened from now on
    store = PostgresDataChannelStore.open(url)
    try:
        store.apply(
            Changes(
                "c",
                register=(None,),
                acl_puts=[AclWrite("a", {"name": "a", "aces": ACES}, "immediate", 100.0, 0.0), acl("b", 1.0)],
            ),
            0.0,
        )
        before = store.get_acl("c", "a", 1.0)
        assert before is not None
        assert store.set_acl_activation("c", "b", "immediate", None, 1.0)  # the pool's connections warmed up

        since = (postgres_cluster.directory / "log").stat().st_size
        assert store.set_acl_activation("c", "a", "deactivate", 5000.0, 2.0)
        logged = _statements_logged(postgres_cluster, since)
        assert len(logged) == 1, logged

        after = store.get_acl("c", "a", 3.0)
        assert after is not None and after.expires == 5000.0
        assert after.body == {"name": "a", "aces": ACES, "activation-type": "deactivate"}
        assert [e.name for e in store.list_acls("c", 3.0, "deactivate")] == ["a"]  # the column follows the body
        assert store.set_acl_activation("c", "a", "immediate", None, 3.0)
        kept = store.get_acl("c", "a", 4.0)
        assert kept is not None and kept.expires == 5000.0  # no new lifetime asked: the old one stays
        assert not store.set_acl_activation("c", "gone", "immediate", None, 4.0)
        assert not store.set_acl_activation("c", "a", "immediate", None, 6000.0)  # expired: vanished
    finally:
        store.close()
