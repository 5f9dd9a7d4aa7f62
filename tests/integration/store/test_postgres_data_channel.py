"""The data channel store on a real PostgreSQL cluster (tests/helpers/postgres): the same contract as SQLite's,
its migrations, and one database seen by two stores (two nodes)."""

from __future__ import annotations

import pytest

from opendots.store.data_records import Changes
from opendots.store.postgres_data import PostgresDataChannelStore
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
