"""The data channel store on a real PostgreSQL cluster (tests/helpers/postgres): the same contract as SQLite's,
its migrations, and one database seen by two stores (two nodes)."""

from __future__ import annotations

import pytest

from opendots.store.data_records import Changes
from opendots.store.postgres_data import DATA_CHANNEL, PostgresDataChannelStore
from opendots.store.records import StoreError
from tests.helpers.data_store_contract import CONTRACT, acl


@pytest.fixture
def store(postgres_url):
    opened = PostgresDataChannelStore.open(postgres_url)
    yield opened
    opened.close()


@pytest.mark.parametrize("behaviour", CONTRACT, ids=lambda f: f.__name__)
def test_the_postgresql_data_channel_store_keeps_the_contract(store, behaviour):
    behaviour(store)


def test_two_nodes_on_one_database_see_each_others_acls_and_migrate_once(postgres_url, store):
    store.apply(Changes("c", register=("d",), acl_puts=[acl("a", 0.0)]), 0.0)
    other = PostgresDataChannelStore.open(postgres_url)  # migrations already applied: nothing is redone
    try:
        assert [e.name for e in other.list_acls("c", now=1.0)] == ["a"]
        other.apply(Changes("c", acl_deletes=["a"]), 1.0)
        assert store.list_acls("c", now=1.0) == []
    finally:
        other.close()


def test_an_unreachable_database_is_a_store_error_naming_it_without_the_password():
    with pytest.raises(StoreError, match=r"postgres:\*\*\*@127\.0\.0\.1:1/"):
        PostgresDataChannelStore.open("postgresql://postgres:secret@127.0.0.1:1/x?sslmode=disable", timeout=2)


async def test_a_data_channel_commit_is_announced_to_the_other_nodes_with_its_cuid(postgres_url):
    """Several nodes: the lease holder re-reads the client's ACLs to enforce them (RFC 8783 §7.3)."""
    import asyncio

    import asyncpg

    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres_url)
    store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url)
    try:
        await listener.add_listener(DATA_CHANNEL, lambda _c, _p, _ch, payload: heard.put_nowait(payload))
        await asyncio.to_thread(store.apply, Changes("c7", register=(None,), acl_puts=[acl("a", 0.0)]), 0.0)
        assert await asyncio.wait_for(heard.get(), 10) == "c7"
        assert await asyncio.to_thread(store.set_acl_activation, "c7", "a", "deactivate", None, 1.0)
        assert await asyncio.wait_for(heard.get(), 10) == "c7"
    finally:
        await asyncio.to_thread(store.close)
        await listener.close()
