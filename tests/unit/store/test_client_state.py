"""Durable client state (real SQLite files): mids never go backwards, even across restarts (across killed processes:
tests/integration/store/test_client_state.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.signal.client.core.scope import MitigationScope, ScopeError
from opendots.store.client_state import MID_ROLLOVER, ClientStateStore, StoredMitigation, next_mid

CUID = "dz6pHjaADkaFTbjr0JGBpw"


def test_mids_increase_and_survive_a_restart(tmp_path: Path) -> None:
    store = ClientStateStore(tmp_path / "state.db", CUID)
    assert [store.allocate_mid() for _ in range(3)] == [0, 1, 2]
    store.close()
    reopened = ClientStateStore(tmp_path / "state.db", CUID)
    assert reopened.allocate_mid() == 3
    assert reopened.allocate_mid(100) == 100
    assert reopened.allocate_mid() == 101
    with pytest.raises(ScopeError, match="monotonically"):
        reopened.allocate_mid(50)


def test_refresh_of_an_active_mid_reuses_it(tmp_path: Path) -> None:
    store = ClientStateStore(tmp_path / "state.db", CUID)
    mid = store.allocate_mid()
    scope = MitigationScope(target_prefixes=("192.0.2.0/24",))
    store.save_mitigation(StoredMitigation(mid, scope, 123.0))
    store.allocate_mid()
    assert store.allocate_mid(mid) == mid  # refresh
    assert store.load_mitigations() == [StoredMitigation(mid, scope, 123.0)]
    store.delete_mitigation(mid)
    assert store.load_mitigations() == []


def test_cuids_have_separate_counters(tmp_path: Path) -> None:
    a = ClientStateStore(tmp_path / "state.db", "a" * 22)
    b = ClientStateStore(tmp_path / "state.db", "b" * 22)
    assert (a.allocate_mid(), a.allocate_mid(), b.allocate_mid()) == (0, 1, 0)
    assert (a.allocate_sid(), a.allocate_sid(), b.allocate_sid()) == (1, 2, 1)


def test_mid_rollover_only_without_attack() -> None:
    assert next_mid(MID_ROLLOVER + 1, None, rollover_allowed=True, active=set()) == (0, 1)
    assert next_mid(MID_ROLLOVER + 1, None, rollover_allowed=True, active={0, 1}) == (2, 3)
    assert next_mid(MID_ROLLOVER + 1, None, rollover_allowed=False, active=set()) == (
        MID_ROLLOVER + 1,
        MID_ROLLOVER + 2,
    )
    with pytest.raises(ScopeError, match="exhausted"):
        next_mid(2**32, None, rollover_allowed=False, active=set())


def test_session_config_is_kept(tmp_path: Path) -> None:
    store = ClientStateStore(tmp_path / "state.db", CUID)
    assert store.load_session_config() is None
    store.save_session_config(3, {"k": 1})
    assert ClientStateStore(tmp_path / "state.db", CUID).load_session_config() == (3, {"k": 1})
    store.delete_session_config()
    assert store.load_session_config() is None
