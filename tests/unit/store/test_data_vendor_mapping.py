"""The data channel store's RFC 9244 §8.1.6 vendor attack mappings on real SQLite: migration 2 on a version 1
database, a mapping written in the same transaction as the rest of a change, replaced, cleared, gone with its
client."""

from __future__ import annotations

import pytest

from opendots.store.data_channel import MIGRATIONS, Changes, SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase

MAPPING = {
    "vendor": [{"vendor-id": 345, "last-updated": "1", "attack-mapping": [{"attack-id": 1, "attack-description": "x"}]}]
}


@pytest.fixture
def store(tmp_path):
    database = SqliteDatabase(tmp_path / "store.sqlite")
    yield SqliteDataChannelStore(database)
    database.close()


def test_a_version_1_database_keeps_its_clients_through_the_migration(tmp_path):
    database = SqliteDatabase(tmp_path / "old.sqlite")
    database.migrate("data_channel", MIGRATIONS[:1])
    database.connection.execute("INSERT INTO data_clients VALUES ('c', NULL, 0, 0)")
    store = SqliteDataChannelStore(database)
    assert store.get_client("c") is not None and store.get_vendor_mapping("c") is None
    store.apply(Changes("c", vendor_mapping=MAPPING), 1.0)
    assert store.get_vendor_mapping("c") == MAPPING
    database.close()


def test_a_mapping_is_replaced_cleared_and_goes_with_its_client(store):
    store.apply(Changes("c", register=(None,), vendor_mapping=MAPPING), 0.0)
    store.apply(Changes("other", register=(None,), vendor_mapping={"vendor": []}), 0.0)
    assert store.get_vendor_mapping("c") == MAPPING
    store.apply(Changes("c", vendor_mapping={"vendor": []}), 0.0)
    assert store.get_vendor_mapping("c") == {"vendor": []}
    store.apply(Changes("c", clear_vendor_mapping=True), 0.0)
    assert store.get_vendor_mapping("c") is None
    assert Changes("c").empty() and not Changes("c", clear_vendor_mapping=True).empty()
    store.apply(Changes("other", unregister=True), 0.0)
    assert store.get_vendor_mapping("other") is None


def test_a_failing_change_leaves_the_mapping_as_it_was(store):
    store.apply(Changes("c", register=(None,), vendor_mapping=MAPPING), 0.0)
    with pytest.raises(TypeError):
        store.apply(Changes("c", vendor_mapping={"vendor": [object()]}), 0.0)
    assert store.get_vendor_mapping("c") == MAPPING
