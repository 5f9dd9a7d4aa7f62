"""What every signal store must do, whatever its database: each function takes `open_signal_store` (a callable that
opens the store under test on the same database each time) and is run by a thin test in tests/unit/store (SQLite)
and in tests/integration/store (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from opendots.signal.server.core import MitigationActivated
from opendots.store.records import (
    CuidRecord,
    MitigationRecord,
    SignalChanges,
    SignalStore,
    TelemetryReportRecord,
    TelemetrySetupRecord,
)
from tests.helpers.signal_harness import CONFIG, SCOPE, T0, figure, make_harness, scope_body

PIPE = {"total-pipe-capacity": [{"link-id": "link1", "capacity": "500", "unit": "megabit-ps"}]}
TM_CONFIG = {"current-config": {"low-percentile": "5.00"}}
ENTRY = {"target": {"target-prefix": ["2001:db8::1/128"]}, "total-attack-traffic": [{"unit": "megabit-ps"}]}


def changes_are_atomic(open_signal_store: Callable[[], SignalStore]):
    store = open_signal_store()
    record = MitigationRecord("alpha", "c", 1, {"lifetime": 1}, 1, 1, T0, T0 + 1)
    store.apply(SignalChanges(put_mitigations=[record]))
    before = store.dump()
    broken = MitigationRecord("alpha", "c", 2, {"x": {1, 2}}, 1, 1, T0, T0 + 1)  # a set is not JSON
    with pytest.raises(TypeError):
        store.apply(SignalChanges(put_mitigations=[broken], delete_mitigations=[("c", 1)]))
    assert store.dump() == before


def restart_recovers_mitigations_configs_and_cuid_owners(tmp_path: Path, open_signal_store: Callable[[], SignalStore]):
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


def telemetry_setups_are_put_replaced_deleted_and_loaded(open_signal_store: Callable[[], SignalStore]):
    """Any store (tests/integration/store runs it on PostgreSQL)."""
    store = open_signal_store()
    store.apply(
        SignalChanges(
            put_cuids=[CuidRecord("c", "alpha", T0)],
            put_telemetry_setups=[
                TelemetrySetupRecord("alpha", "c", 1, TM_CONFIG),
                TelemetrySetupRecord("alpha", "c", 2, PIPE),
            ],
        )
    )
    # One decision both replaces (a newer tsid) and deletes (the older one it overrides).
    store.apply(
        SignalChanges(
            put_telemetry_setups=[TelemetrySetupRecord("alpha", "c", 3, TM_CONFIG)], delete_telemetry_setups=[("c", 1)]
        )
    )
    store.close()
    state = open_signal_store().load()
    assert state.telemetry_setups == [
        TelemetrySetupRecord("alpha", "c", 2, PIPE),
        TelemetrySetupRecord("alpha", "c", 3, TM_CONFIG),
    ]
    assert [c.cuid for c in state.cuids] == ["c"]


def telemetry_reports_are_put_replaced_deleted_and_loaded(open_signal_store: Callable[[], SignalStore]) -> None:
    """Any store (tests/integration/store runs it on PostgreSQL)."""
    store = open_signal_store()
    store.apply(
        SignalChanges(
            put_telemetry_reports=[
                TelemetryReportRecord("alpha", "c", 1, [ENTRY]),
                TelemetryReportRecord("alpha", "c", 2, [ENTRY, ENTRY]),
            ]
        )
    )
    # One decision both puts a newer tmid and deletes the older one it overrides (RFC 9244 §8.2).
    store.apply(
        SignalChanges(
            put_telemetry_reports=[TelemetryReportRecord("alpha", "c", 3, [ENTRY])], delete_telemetry_reports=[("c", 1)]
        )
    )
    store.close()
    assert open_signal_store().load().telemetry_reports == [
        TelemetryReportRecord("alpha", "c", 2, [ENTRY, ENTRY]),
        TelemetryReportRecord("alpha", "c", 3, [ENTRY]),
    ]
