"""The SQLite signal store: atomic changes, restart recovery, and surviving SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opendots.signal.server.core import MitigationActivated
from opendots.store.signal import _MIGRATIONS, MitigationRecord, SignalChanges, SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from tests.helpers import REPOSITORY
from tests.helpers.signal_harness import ALPHA_CUID, CONFIG, SCOPE, T0, figure, make_harness, scope_body

ROOT = REPOSITORY


def test_changes_are_atomic(tmp_path: Path):
    store = SqliteSignalStore.open(tmp_path / "s.db")
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


def test_restart_recovers_mitigations_configs_and_cuid_owners(tmp_path: Path):
    h = make_harness(tmp_path)
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


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from tests.helpers.signal_harness import make_harness, scope_body
    from pathlib import Path
    h = make_harness(Path(sys.argv[1]))
    h.now = float(sys.argv[2])
    for mid in range(1, 51):
        prefix = f"2001:db8:6401::{mid:x}/128"
        response = h.put(mid, scope_body(target_prefix=[prefix], lifetime=1000 + mid))
        assert response.code == "2.01", response
        print(mid, flush=True)   # acknowledged: the response exists only after the commit
    time.sleep(60)
    """
)


def test_acknowledged_mitigations_survive_sigkill(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), str(T0)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = []
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) == 50:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    assert acknowledged == list(range(1, 51))
    h = make_harness(tmp_path)
    h.now = T0 + 100
    h.restart()
    scopes = h.get().body[SCOPE]["scope"]
    assert [e["mid"] for e in scopes] == acknowledged
    assert [e["lifetime"] for e in scopes] == [1000 + mid - 100 for mid in acknowledged]
    assert h.get(1, cuid=ALPHA_CUID).code == "2.05"
