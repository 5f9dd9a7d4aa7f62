"""The sans-I/O DOTS client core with a fake clock: heartbeats, loss, config refresh, re-creation, redirection."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.signal.client.core import events as ev
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsResponse, RequestKind
from opendots.signal.client.core.scope import MitigationScope, ScopeError
from opendots.store.client_state import ClientStateStore

CUID = "dz6pHjaADkaFTbjr0JGBpw"
SCOPE = MitigationScope(target_prefixes=("192.0.2.0/24",), target_protocols=(17,), lifetime=600)
T0 = 1_700_000_000.0


def events(core: DotsClientCore) -> list:
    drained = []
    while (event := core.next_event()) is not None:
        drained.append(event)
    return drained


def config_body(idle_hb: int, missing: int, mitigating_hb: int | None = None) -> dict:
    def one(hb: int) -> dict:
        return {"heartbeat-interval": {"current-value": hb}, "missing-hb-allowed": {"current-value": missing}}

    return {
        "ietf-dots-signal-channel:signal-config": {
            "idle-config": one(idle_hb),
            "mitigating-config": one(mitigating_hb if mitigating_hb is not None else idle_hb),
        }
    }


@pytest.fixture
def store(tmp_path: Path) -> ClientStateStore:
    return ClientStateStore(tmp_path / "client-state.db", CUID)


def connected_core(store: ClientStateStore, idle_hb: int = 30, missing: int = 3, mitigating_hb: int | None = None):
    core = DotsClientCore(CUID, store, now=T0)
    core.connected(T0, reliable=False, server="dots.example")
    sent = events(core)
    config_get = next(e.request for e in sent if e.request.kind is RequestKind.CONFIG_GET)
    core.handle_response(config_get, DotsResponse("2.05", config_body(idle_hb, missing, mitigating_hb), 3600), T0)
    assert any(isinstance(e, ev.ConfigUpdated) for e in events(core))
    return core


def grant(core: DotsClientCore, now: float, lifetime: int = 600) -> int:
    request = core.mitigate(SCOPE, now)
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": request.mid, "lifetime": lifetime}]}}
    core.handle_response(request, DotsResponse("2.01", body), now)
    return request.mid


def test_heartbeats_follow_the_config_and_carry_peer_hb_status(store: ClientStateStore) -> None:
    core = connected_core(store, idle_hb=30, missing=3)
    assert core.next_timer() == T0 + 30
    core.handle_timer(T0 + 29.9)
    assert events(core) == []
    core.handle_timer(T0 + 30)
    (sent,) = events(core)
    assert isinstance(sent, ev.SendRequest) and sent.request.kind is RequestKind.HEARTBEAT
    assert sent.request.body["ietf-dots-signal-channel:heartbeat"]["peer-hb-status"] is True
    core.handle_response(sent.request, DotsResponse("2.04"), T0 + 30.01)
    assert core.next_timer() == T0 + 60
    # No server heartbeat for more than 2 * interval: our next heartbeat says so.
    core.handle_timer(T0 + 90)
    core.handle_timer(T0 + 90)
    (sent,) = [e for e in events(core) if isinstance(e, ev.SendRequest)]
    assert sent.request.body["ietf-dots-signal-channel:heartbeat"]["peer-hb-status"] is False
    assert core.handle_peer_heartbeat({"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}}, T0 + 95) == (
        "2.04",
        None,
    )
    assert core.peer_hb_status(T0 + 95)
    code, diagnostic = core.handle_peer_heartbeat({"ietf-dots-signal-channel:heartbeat": {}}, T0 + 96)
    assert code == "4.00" and "peer-hb-status" in diagnostic


def test_missing_heartbeats_lose_the_idle_session(store: ClientStateStore) -> None:
    core = connected_core(store, idle_hb=15, missing=3)
    lost = []
    for beat in range(1, 6):
        core.handle_timer(T0 + 15 * beat)
        lost += [e for e in events(core) if isinstance(e, ev.SessionLost)]
        if lost:
            break
    # Heartbeats at 15, 30, 45 go unanswered; at 60 the third miss is counted and the session is declared lost.
    assert beat == 4 and lost == [ev.SessionLost(3)]
    assert not core.connected_session and core.next_timer() is None


def test_under_attack_the_session_is_kept_and_degraded_is_reported(store: ClientStateStore) -> None:
    core = connected_core(store, idle_hb=60, missing=3, mitigating_hb=15)
    grant(core, T0)
    events(core)
    assert core.mitigating
    assert core.next_timer() == T0 + 15  # switched to mitigating-config
    seen = []
    for beat in range(1, 8):
        core.handle_timer(T0 + 15 * beat)
        seen += events(core)
    assert [e for e in seen if isinstance(e, ev.SessionDegraded)] == [ev.SessionDegraded(3)]
    assert not any(isinstance(e, ev.SessionLost) for e in seen)
    assert sum(isinstance(e, ev.SendRequest) and e.request.kind is RequestKind.HEARTBEAT for e in seen) == 7
    assert core.connected_session


def test_config_refresh_follows_max_age_but_not_during_an_attack(store: ClientStateStore) -> None:
    core = DotsClientCore(CUID, store, now=T0)
    core.connected(T0, reliable=True)
    get = next(e.request for e in events(core) if e.request.kind is RequestKind.CONFIG_GET)
    core.handle_response(get, DotsResponse("2.05", config_body(240, 3), max_age=100), T0)
    events(core)
    assert core.next_timer() == T0 + 90  # 90 % of Max-Age
    core.handle_timer(T0 + 90)
    (refresh,) = events(core)
    assert refresh.reason == "config-refresh" and refresh.request.kind is RequestKind.CONFIG_GET
    core.handle_response(refresh.request, DotsResponse("2.05", config_body(240, 3), max_age=100), T0 + 91)
    grant(core, T0 + 92)
    events(core)
    core.handle_timer(T0 + 181)
    assert not [e for e in events(core) if isinstance(e, ev.SendRequest) and e.reason == "config-refresh"]


def test_mitigation_lifecycle_status_and_withdraw(store: ClientStateStore) -> None:
    core = connected_core(store)
    mid = grant(core, T0, lifetime=500)
    updated = events(core)
    assert updated == [ev.MitigationUpdated(mid, None, {"mid": mid, "lifetime": 500})]
    record = core.mitigations[mid]
    assert record.granted and record.expires_at == T0 + 500
    notification = {
        "ietf-dots-signal-channel:mitigation-scope": {
            "scope": [{"mid": mid, "status": "attack-successfully-mitigated", "lifetime": 400, "bytes-dropped": "7"}]
        }
    }
    core.handle_response(core.status(mid, observe=0), DotsResponse("2.05", notification, observe=3), T0 + 100)
    assert record.status == "attack-successfully-mitigated" and record.expires_at == T0 + 500
    assert record.last_entry["bytes-dropped"] == "7"
    efficacy = core.efficacy(mid, "attack-successfully-mitigated")
    assert efficacy.if_match_empty and efficacy.scope == SCOPE
    withdraw = core.withdraw(mid)
    assert not core.mitigating
    core.handle_response(withdraw, DotsResponse("2.02"), T0 + 101)
    assert mid not in core.mitigations and store.load_mitigations() == []
    assert ev.MitigationGone(mid, "withdrawn") in events(core)
    with pytest.raises(ScopeError, match="not one of"):
        core.efficacy(mid, "under-attack")


def test_refused_and_conflicting_requests(store: ClientStateStore) -> None:
    core = connected_core(store)
    first = core.mitigate(SCOPE, T0)
    core.handle_response(first, DotsResponse("4.00", diagnostic="bad"), T0)
    assert first.mid not in core.mitigations
    second = core.mitigate(SCOPE, T0)
    assert second.mid == first.mid + 1  # a refused mid is never reused
    conflict = {"conflict-cause": "overlapping-targets", "retry-timer": 30}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"conflict-information": conflict}]}}
    core.handle_response(second, DotsResponse("4.09", body), T0)
    assert ev.MitigationConflict(second.mid, conflict, 30) in events(core)
    third = core.mitigate(SCOPE, T0)
    collision = {"conflict-information": {"conflict-cause": "cuid-collision"}}
    core.handle_response(
        third, DotsResponse("4.09", {"ietf-dots-signal-channel:mitigation-scope": {"scope": [collision]}}), T0
    )
    assert ev.CuidCollision(third.mid) in events(core)


def test_lifetime_expiry_forgets_the_mitigation(store: ClientStateStore) -> None:
    core = connected_core(store, idle_hb=0)  # heartbeats disabled: only the lifetime clock runs
    mid = grant(core, T0, lifetime=50)
    events(core)
    assert core.next_timer() == T0 + 50
    core.handle_timer(T0 + 50)
    assert ev.MitigationGone(mid, "lifetime expired") in events(core)
    assert store.load_mitigations() == []


def test_reconnect_recreates_mitigations_config_and_observations(store: ClientStateStore) -> None:
    core = connected_core(store)
    mid = grant(core, T0, lifetime=600)
    config_put = core.config_set(mitigating={"heartbeat_interval": 20})
    core.handle_response(config_put, DotsResponse("2.01"), T0)
    events(core)
    core.disconnected()
    # A fresh core over the same store is a restarted agent: it must re-create the same state.
    restarted = DotsClientCore(CUID, store, now=T0 + 100)
    restarted.connected(T0 + 100, reliable=False)
    sent = [e for e in events(restarted) if isinstance(e, ev.SendRequest)]
    kinds = [(e.reason, e.request.kind) for e in sent]
    assert kinds == [
        ("recreate", RequestKind.CONFIG_PUT),
        ("config", RequestKind.CONFIG_GET),
        ("recreate", RequestKind.MITIGATE),
        ("observe", RequestKind.STATUS),
    ]
    assert sent[0].request.sid == config_put.sid and sent[1].request.path[-1] == f"sid={config_put.sid}"
    recreate = sent[2].request
    assert recreate.mid == mid and recreate.scope == SCOPE.with_lifetime(500)  # what remains of the grant
    assert sent[3].request.observe == 0 and sent[3].request.mid == mid
    # The server answers a status GET with 4.04: it lost the mitigation, so it is created again.
    restarted.handle_response(sent[3].request, DotsResponse("4.04"), T0 + 101)
    (again,) = events(restarted)
    assert again.reason == "recreate" and again.request.mid == mid
    # New requests after the restart continue above the old mids.
    assert restarted.mitigate(SCOPE, T0 + 102).mid == mid + 1


def test_redirection_ttl_loops_and_expiry(store: ClientStateStore) -> None:
    core = connected_core(store)
    request = core.mitigate(SCOPE, T0)
    redirect = {
        "ietf-dots-signal-channel:redirected-signal": {
            "alt-server": "alt.example",
            "alt-server-record": ["2001:db8::9"],
        }
    }
    core.handle_response(request, DotsResponse("5.03", redirect, max_age=120), T0)
    assert events(core) == [ev.Redirected("alt.example", ("2001:db8::9",), 120, request)]
    core.handle_timer(T0 + 120)
    assert ev.RedirectExpired("alt.example") in events(core)
    # Redirected back to a server contacted within five minutes: a loop, ignored.
    core.server_contacted("alt.example", T0 + 130)
    core.handle_response(request, DotsResponse("5.03", redirect, max_age=120), T0 + 200)
    assert events(core) == [ev.RedirectIgnored("alt.example")]
    forever = {"ietf-dots-signal-channel:redirected-signal": {"alt-server": "other.example"}}
    core.handle_response(request, DotsResponse("5.03", forever, max_age=2**32 - 1), T0 + 500)
    assert events(core) == [ev.Redirected("other.example", (), None, request)]


def test_refresh_must_repeat_the_scope(store: ClientStateStore) -> None:
    core = connected_core(store)
    mid = grant(core, T0)
    assert core.mitigate(SCOPE.with_lifetime(100), T0, mid=mid).mid == mid
    other = MitigationScope(target_prefixes=("198.51.100.0/24",))
    with pytest.raises(ScopeError, match="refresh must repeat"):
        core.mitigate(other, T0, mid=mid)


def test_preconfigured_mitigation_is_not_an_attack_until_triggered(store: ClientStateStore) -> None:
    core = connected_core(store, idle_hb=60, missing=3, mitigating_hb=15)
    preconfigured = MitigationScope(target_prefixes=("192.0.2.0/24",), lifetime=-1, trigger_mitigation=False)
    request = core.mitigate(preconfigured, T0)
    core.handle_response(request, DotsResponse("2.01"), T0)
    assert core.mitigations[request.mid].expires_at is None  # indefinite
    assert not core.mitigating and core.next_timer() == T0 + 60  # still idle-config
    triggered = {"mid": request.mid, "status": "attack-mitigation-in-progress", "lifetime": -1}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [triggered]}}
    core.handle_response(core.status(request.mid, observe=0), DotsResponse("2.05", body), T0 + 1)
    assert core.mitigating and core.next_timer() == T0 + 16  # switched to mitigating-config
    signal_loss = {**triggered, "status": "attack-mitigation-signal-loss"}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [signal_loss]}}
    core.handle_response(core.status(request.mid, observe=0), DotsResponse("2.05", body), T0 + 2)
    assert not core.mitigating and request.mid in core.mitigations
