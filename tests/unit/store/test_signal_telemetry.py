"""The SQLite signal store's RFC 9244 telemetry setups: migration 3 on a version 2 database, puts, deletes and
what load() gives back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opendots.store.signal import (
    _MIGRATIONS,
    MitigationRecord,
    SignalChanges,
    SignalStore,
    SqliteSignalStore,
)
from opendots.store.sqlite import SqliteDatabase
from tests.helpers import signal_store_contract as contract
from tests.helpers.signal_harness import T0

PIPE = {"total-pipe-capacity": [{"link-id": "link1", "capacity": "500", "unit": "megabit-ps"}]}
CONFIG = {"current-config": {"low-percentile": "5.00"}}


def test_a_version_2_database_gains_the_telemetry_table_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "s.db"
    store = SqliteSignalStore(SqliteDatabase(path))
    store.database.connection.execute("UPDATE schema_versions SET version = 2 WHERE component = 'signal'")
    store.database.connection.execute("DROP TABLE signal_telemetry_setups")
    store.database.connection.execute("DROP TABLE signal_telemetry_reports")  # migration 4's
    store.apply(SignalChanges(put_mitigations=[MitigationRecord("alpha", "c", 1, {"lifetime": 60}, 60, 2, T0, None)]))
    store.close()
    assert len(_MIGRATIONS) == 4
    store = SqliteSignalStore.open(path)
    assert [row[:2] for row in store.dump()["signal_mitigations"]] == [("c", 1)]
    assert store.dump()["signal_telemetry_setups"] == []


def test_telemetry_setups_are_put_replaced_deleted_and_loaded(open_signal_store: Callable[[], SignalStore]):
    contract.telemetry_setups_are_put_replaced_deleted_and_loaded(open_signal_store)
