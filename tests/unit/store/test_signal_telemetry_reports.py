"""The signal store's RFC 9244 §8.2 pre-or-ongoing-mitigation telemetry: migration 4 on a version 3
database, puts, deletes and what load() gives back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opendots.store.records import SignalStore
from opendots.store.signal import (
    _MIGRATIONS,
    SignalChanges,
    SqliteSignalStore,
    TelemetrySetupRecord,
)
from opendots.store.sqlite import SqliteDatabase
from tests.helpers import signal_store_contract as contract

ENTRY = {"target": {"target-prefix": ["2001:db8::1/128"]}, "total-attack-traffic": [{"unit": "megabit-ps"}]}
CONFIG = {"current-config": {"low-percentile": "5.00"}}


def test_a_version_3_database_gains_the_telemetry_reports_table_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteSignalStore(SqliteDatabase(path))
    store.database.connection.execute("UPDATE schema_versions SET version = 3 WHERE component = 'signal'")
    store.database.connection.execute("DROP TABLE signal_telemetry_reports")
    store.apply(SignalChanges(put_telemetry_setups=[TelemetrySetupRecord("alpha", "c", 1, CONFIG)]))
    store.close()
    assert len(_MIGRATIONS) == 4
    store = SqliteSignalStore.open(path)
    assert store.load().telemetry_setups == [TelemetrySetupRecord("alpha", "c", 1, CONFIG)]
    assert store.dump()["signal_telemetry_reports"] == []


def test_telemetry_reports_are_put_replaced_deleted_and_loaded(open_signal_store: Callable[[], SignalStore]):
    contract.telemetry_reports_are_put_replaced_deleted_and_loaded(open_signal_store)
