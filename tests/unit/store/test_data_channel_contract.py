"""The data channel store's backend-independent behaviour (tests/helpers/data_store_contract) on real SQLite;
tests/integration/store/test_postgres_data_channel.py runs the same on PostgreSQL."""

from __future__ import annotations

import pytest

from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.data_store_contract import CONTRACT


@pytest.mark.parametrize("behaviour", CONTRACT, ids=lambda f: f.__name__)
def test_the_sqlite_data_channel_store_keeps_the_contract(tmp_path, behaviour):
    database = SqliteDatabase(tmp_path / "store.sqlite")
    try:
        behaviour(SqliteDataChannelStore(database))
    finally:
        database.close()
