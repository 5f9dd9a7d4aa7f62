"""The signal store: atomic changes, migration, restart recovery (surviving SIGKILL: tests/integration/store).

Tests taking `open_signal_store` are about any store: they run here on SQLite and, imported by
tests/integration/store/test_postgres_signal.py, on PostgreSQL (the fixture differs per folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from opendots.signal.server.core import MitigationActivated
from opendots.store.signal import _MIGRATIONS, MitigationRecord, SignalChanges, SignalStore, SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers.signal_harness import CONFIG, SCOPE, T0, figure, make_harness, scope_body


def test_changes_are_atomic(open_signal_store: Callable[[], SignalStore]):
    store = open_signal_store()
    record = MitigationRecord("alpha", "c", 1, {"lifetime": 1}, 1, 1, T0, T0 + 1)
    store.apply(SignalChanges(put_mitigations=[record]))
    before = store.dump()
    broken = MitigationRecord("alpha", "c", 2, {"x": {1, 2}}, 1, 1, T0, T0 + 1)  # a set is not JSON
    with pytest.raises(TypeError):
        store.apply(SignalChanges(put_mitigations=[broken], delete_mitigations=[("c", 1)]))
    assert store.dump() == before


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
    h = make_harness(tmp_path, open_signal_store)
    assert h.put(1, scope_body(target_prefix=["2001:db8:6401::1/128"], lifetime=1000)).code == "2.01"
    assert h.put(2, scope_body(target_prefix=["192.0.2.0/28"], trigger_mitigation=False, lifetime=-1)).code == "2.01"
    assert h.put(3, scope_body(target_prefix=["192.0.2.64/28"])).code == "2.01"
    assert h.delete(3).code == "2.02"
    assert h.request("PUT", ("config", "sid=9"), body=figure("figure23")).code == "2.01"
    h.now += 400
    h.restart()
    scopes = {e["mid"]: e for e in h.get().body[SCOPE]["scope"]}
    assert scopes[1]["lifetime"] == 600
    assert scopes[2]["lifetime"] == -1 and scopes[2]["status"] == "attack-mitigation-signal-loss"
    assert scopes[3]["status"] == "dots-client-withdrawn-mitigation"
    assert h.request("GET", ("config", "sid=9")).body[CONFIG]["idle-config"]["heartbeat-interval"]["current-value"] == 0
    restored = h.server.restore_events()
    assert sorted(e.mid for e in restored if isinstance(e, MitigationActivated)) == [1, 3]
