"""The SQLite data channel store's migration 2 (RFC 9244 §8.1.6 vendor attack mappings) on a version 1 database; what
every backend does with a mapping is in tests/helpers/data_store_contract.py."""

from __future__ import annotations

from opendots.store.data_channel import MIGRATIONS, Changes, SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.data_store_contract import MAPPING


def test_a_version_1_database_keeps_its_clients_through_the_migration(tmp_path):
    database = SqliteDatabase(tmp_path / "old.sqlite")
    database.migrate("data_channel", MIGRATIONS[:1])
    database.connection.execute("INSERT INTO data_clients VALUES ('c', NULL, 0, 0)")
    store = SqliteDataChannelStore(database)
    assert store.get_client("c") is not None and store.get_vendor_mapping("c") is None
    store.apply(Changes("c", vendor_mapping=MAPPING), 1.0)
    assert store.get_vendor_mapping("c") == MAPPING
    database.close()
