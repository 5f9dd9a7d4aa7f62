"""The signal store: atomic changes, migration, restart recovery (surviving SIGKILL: tests/integration/store).

Tests taking `open_signal_store` are about any store: they run here on SQLite and, imported by
tests/integration/store/test_postgres_signal.py, on PostgreSQL (the fixture differs per folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opendots.store.signal import _MIGRATIONS, MitigationRecord, SignalChanges, SignalStore, SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers import signal_store_contract as contract


def test_changes_are_atomic(open_signal_store: Callable[[], SignalStore]):
    contract.changes_are_atomic(open_signal_store)


def test_a_version_1_database_keeps_its_mitigations_through_the_migration(tmp_path: Path):
    """Migration 2 rebuilds signal_mitigations as one WITHOUT ROWID B-tree; rows written by version 1 survive."""
    path = tmp_path / "s.db"
    database = SqliteDatabase(path)
    database.migrate("signal", _MIGRATIONS[:1])
    database.connection.execute(
        "INSERT INTO signal_mitigations VALUES ('c', 7, 'alpha', 'gw', '{\"lifetime\": 60}', 60, 2, 1.0, 61.0, NULL, 3)"
    )
    database.close()
    store = SqliteSignalStore.open(path)
    assert store.dump()["signal_mitigations"] == [
        ("c", 7, "alpha", "gw", '{"lifetime": 60}', 60, 2, 1.0, 61.0, None, 3)
    ]
    (schema,) = store.database.connection.execute("SELECT sql FROM sqlite_master WHERE name = 'signal_mitigations'")
    assert "WITHOUT ROWID" in schema[0]
    assert not list(store.database.connection.execute("SELECT name FROM sqlite_master WHERE name LIKE '%_client'"))
    record = MitigationRecord("alpha", "c", 7, {"lifetime": 30}, 30, 2, 2.0, 32.0)
    store.apply(SignalChanges(put_mitigations=[record]))  # the primary key still replaces
    assert [row[:2] for row in store.dump()["signal_mitigations"]] == [("c", 7)]


def test_restart_recovers_mitigations_configs_and_cuid_owners(
    tmp_path: Path, open_signal_store: Callable[[], SignalStore]
):
    contract.restart_recovers_mitigations_configs_and_cuid_owners(tmp_path, open_signal_store)
