"""The data channel store's SQLite migrations (its behaviour: test_data_channel_contract.py)."""

from __future__ import annotations

from opendots.store.data_channel import Changes, SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase


def test_migrations_are_idempotent(tmp_path):
    database = SqliteDatabase(tmp_path / "twice.sqlite")
    SqliteDataChannelStore(database).apply(Changes("c", register=(None,)), 0.0)
    again = SqliteDataChannelStore(database)
    assert again.get_client("c") is not None
    database.close()
