"""Session configuration and heartbeat liveness with a fake clock (RFC 9132 §4.5, §4.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.domain.defaults import HEARTBEAT_INTERVAL, MISSING_HB_ALLOWED
from opendots.signal.server.core import (
    HeartbeatDue,
    MitigationActivated,
    MitigationChanged,
    MitigationWithdrawn,
    PeerBack,
    PeerLost,
    SessionConfigChanged,
    Status,
)
from tests.helpers.signal_harness import (
    ALPHA,
    BRAVO,
    BRAVO_CUID,
    CONFIG,
    SCOPE,
    Harness,
    figure,
    make_harness,
    scope_body,
)

HB = {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}}
LOSS = HEARTBEAT_INTERVAL * MISSING_HB_ALLOWED  # 450 s with the Appendix C defaults


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


def config(set_name: str, **values: int) -> dict:
    return {CONFIG: {set_name: {k.replace("_", "-"): {"current-value": v} for k, v in values.items()}}}


def test_sid_ordering(harness: Harness):
    assert harness.request("PUT", ("config", "sid=5"), body=config("idle-config", heartbeat_interval=60)).code == "2.01"
    assert harness.request("PUT", ("config", "sid=5"), body=config("idle-config", heartbeat_interval=90)).code == "2.04"
    assert harness.request("PUT", ("config", "sid=4"), body=config("idle-config", heartbeat_interval=20)).code == "4.00"
    assert harness.request("PUT", ("config", "sid=6"), body=config("idle-config", heartbeat_interval=20)).code == "2.01"
    assert [type(e) for e in harness.events] == [SessionConfigChanged]
    assert harness.request("GET", ("config", "sid=5")).code == "4.04"  # the lower sid is gone
    current = harness.request("GET", ("config", "sid=6")).body[CONFIG]["idle-config"]["heartbeat-interval"]
    assert current == {"max-value": 240, "min-value": 15, "current-value": 20}
    # DELETE without sid (client reboot) resets to defaults.
    assert harness.request("DELETE", ("config",)).code == "2.02"
    assert harness.request("GET", ("config", "sid=6")).code == "4.04"


def test_heartbeat_zero_disables_the_mechanism(harness: Harness):
    response = harness.request("PUT", ("config", "sid=1"), body=config("idle-config", heartbeat_interval=0))
    assert response.code == "2.01"
    assert harness.server.next_timer() is None
    assert harness.advance(10 * LOSS) == []


def test_server_sends_heartbeats_and_reports_peer_hb_status(harness: Harness):
    assert harness.request("PUT", ("hb",), body=HB).code == "2.04"
    events = harness.advance(HEARTBEAT_INTERVAL)
    assert events == [HeartbeatDue("alpha", True)]
    events = harness.advance(2 * HEARTBEAT_INTERVAL + 1)  # no client heartbeat for > 2 intervals
    assert events[-1] == HeartbeatDue("alpha", False)


def test_client_saying_it_hears_nothing_gets_a_heartbeat_at_once(harness: Harness):
    body = {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": False}}
    assert harness.request("PUT", ("hb",), body=body).code == "2.04"
    assert harness.events == [HeartbeatDue("alpha", True)]


def test_session_loss_triggers_preconfigured_mitigations_only_after_silence(harness: Harness):
    pre = scope_body(target_prefix=["2001:db8:6401::/64"], trigger_mitigation=False, lifetime=-1)
    immediate = scope_body(target_prefix=["2001:db8:6401::1/128"])
    assert harness.put(1, pre).code == "2.01"
    assert harness.put(2, immediate).code == "2.01"
    # Traffic keeps the session alive, whatever heartbeats the server missed.
    for _ in range(3):
        events = harness.advance(LOSS - 10)
        assert not [e for e in events if isinstance(e, PeerLost)]
        assert harness.request("PUT", ("hb",), body=HB).code == "2.04"
    # Silence: after heartbeat-interval x missing-hb-allowed the session is lost.
    events = harness.advance(LOSS)
    lost = [e for e in events if isinstance(e, PeerLost)]
    assert lost == [PeerLost("alpha")]
    activated = [e.mid for e in events if isinstance(e, MitigationActivated)]
    withdrawn = [(e.mid, e.reason) for e in events if isinstance(e, MitigationWithdrawn)]
    assert activated == [1] and withdrawn == [(2, "server")]
    assert not [e for e in events if isinstance(e, HeartbeatDue) and events.index(e) > events.index(lost[0])]
    # Recovery does not stop the mitigation (§4.4.4).
    assert harness.request("PUT", ("hb",), body=HB).code == "2.04"
    assert harness.events == [PeerBack("alpha")]
    assert harness.get(1).body[SCOPE]["scope"][0]["status"] == "attack-mitigation-in-progress"


def test_other_clients_are_not_affected_by_one_clients_loss(harness: Harness):
    pre = scope_body(target_prefix=["198.51.100.0/28"], trigger_mitigation=False)
    assert harness.put(1, pre, cuid=BRAVO_CUID, peer=BRAVO).code == "2.01"
    assert harness.request("PUT", ("hb",), peer=ALPHA, body=HB).code == "2.04"
    events = []
    for _ in range(int(LOSS / 10) + 1):
        harness.now += 10
        harness.request("PUT", ("hb",), peer=ALPHA, body=HB)
        events += harness.settle(harness.server.handle_timer(harness.now))[1]
    assert PeerLost("bravo") in events and PeerLost("alpha") not in events
    assert [e.client for e in events if isinstance(e, MitigationActivated)] == ["bravo"]
    assert harness.get(1, cuid=BRAVO_CUID, peer=BRAVO).body[SCOPE]["scope"][0]["status"] == (
        "attack-mitigation-in-progress"
    )


def test_mitigating_config_applies_while_a_mitigation_is_active(harness: Harness):
    body = {
        CONFIG: {
            "mitigating-config": {"heartbeat-interval": {"current-value": 15}},
            "idle-config": {"heartbeat-interval": {"current-value": 0}},
        }
    }
    assert harness.request("PUT", ("config", "sid=1"), body=body).code == "2.01"
    assert harness.server.next_timer() is None  # idle: heartbeats off
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::1/128"], lifetime=100)).code == "2.01"
    events = harness.advance(15)
    assert [e for e in events if isinstance(e, HeartbeatDue)] == [HeartbeatDue("alpha", False)]


def test_config_figure23_then_get_shows_limits_and_values(harness: Harness):
    assert harness.request("PUT", ("config", "sid=123"), body=figure("figure23")).code == "2.01"
    response = harness.request("GET", ("config",))
    assert response.max_age == 3600
    mitigating = response.body[CONFIG]["mitigating-config"]
    assert mitigating["probing-rate"] == {"max-value": 20, "min-value": 5, "current-value": 15}
    assert mitigating["ack-random-factor"] == {
        "max-value-decimal": "4.00",
        "min-value-decimal": "1.10",
        "current-value-decimal": "1.50",
    }


def test_preconfigured_mitigation_returns_to_waiting_when_the_attack_stops(harness: Harness):
    pre = scope_body(target_prefix=["2001:db8:6401::/64"], trigger_mitigation=False, lifetime=-1)
    assert harness.put(1, pre).code == "2.01"
    assert [e.mid for e in harness.advance(LOSS) if isinstance(e, MitigationActivated)] == [1]
    events = harness.report_status(f"{harness.server.mitigations()[0].mitigator_key}", Status.ATTACK_STOPPED)
    statuses = [e.snapshot[SCOPE]["scope"][0]["status"] for e in events if isinstance(e, MitigationChanged)]
    assert statuses == ["attack-stopped"]  # three more times, then 8 (test_signal_mitigation: Table 3 repeats)
    assert [(e.mid, e.reason) for e in events if isinstance(e, MitigationWithdrawn)] == [(1, "server")]
    assert harness.get(1).body[SCOPE]["scope"][0]["status"] == "attack-mitigation-signal-loss"


def _brute_force_next_peer_deadline(server) -> float | None:
    """What the timer table must agree with: the earliest heartbeat or loss deadline over every peer."""
    deadlines = []
    for name in list(server.peers._peers):
        peer, parameters = server.peers._peers[name], server._parameters(name)
        deadlines += [d for d in (peer.loss_deadline(parameters), peer.heartbeat_deadline(parameters)) if d is not None]
    return min(deadlines, default=None)


def test_peer_timers_stay_exact_with_many_clients(tmp_path: Path):
    """Peer timers live in a heap (no walk over every client on each look): after any mix of traffic, config
    changes, mitigations starting and ending, heartbeats and losses, the next deadline is the true earliest one,
    and every due heartbeat and loss still fires."""
    import ipaddress
    import random

    from opendots.config import ClientAuthorization
    from opendots.signal.server.core import ServerSettings
    from opendots.signal.server.core.sessionconfig import Limits
    from tests.helpers.signal_harness import Harness

    clients = [
        ClientAuthorization(f"c{i}", f"cuid-{i:03d}", prefixes=(ipaddress.ip_network(f"2001:db8:{i + 1:x}::/48"),))
        for i in range(60)
    ]
    h = Harness(tmp_path / "s.db", ServerSettings(clients=clients, limits=Limits(heartbeat_interval=(1, 240))))
    rng = random.Random(7)
    fired: list = []
    for step in range(400):
        client = rng.choice(clients)
        action = rng.random()
        if action < 0.4:
            h.request("PUT", ("hb",), peer=client.cuid, body=HB)
        elif action < 0.55:
            interval = rng.choice([1, 5, 15, 30])
            body = config(rng.choice(["idle-config", "mitigating-config"]), heartbeat_interval=interval)
            h.request("PUT", ("config", f"sid={step + 1}"), peer=client.cuid, body=body)
        elif action < 0.75:
            index = clients.index(client)
            body = scope_body(target_prefix=[f"2001:db8:{index + 1:x}:{step:x}::/64"], lifetime=rng.choice([5, 60]))
            h.request("PUT", ("mitigate", f"cuid={client.cuid}", f"mid={step}"), peer=client.cuid, body=body)
        else:
            fired += h.advance(rng.choice([0.5, 2, 7]))
        expected = _brute_force_next_peer_deadline(h.server)
        actual = h.server.peers.next_due()
        assert actual == expected, f"step {step}: heap says {actual}, the peers say {expected}"
    assert any(isinstance(e, HeartbeatDue) for e in fired) and any(isinstance(e, PeerLost) for e in fired)


def test_timer_table_stays_exact_and_small_when_deadlines_keep_moving():
    """Every request pushes its client's loss deadline back: the heap must not grow by one entry per request
    (it used to, until each stale entry's time came), and the earliest deadline must stay exact, also when
    deadlines move earlier (a shorter heartbeat interval) or go away."""
    import random

    from opendots.signal.server.core.heartbeat import TimerTable

    rng = random.Random(11)
    for moving_earlier in (0.02, 0.4):  # realistic traffic, then an adversarial mix (exactness only)
        table = TimerTable()
        due: dict[str, float] = {}
        interval = {f"c{i}": rng.choice([30.0, 60.0, 450.0]) for i in range(10)}
        now = 0.0
        for step in range(20_000):
            name = f"c{rng.randrange(10)}"
            choice = rng.random()
            now += rng.uniform(0, 0.01)
            if choice < moving_earlier:
                interval[name] = rng.choice([1.0, 30.0, 60.0, 450.0])  # a new session configuration
            if choice < 0.95:
                due[name] = now + interval[name]  # traffic from the client
            else:
                due.pop(name, None)
            table.set(name, due.get(name))
            expected = min(((d, n) for n, d in due.items()), default=None)
            assert table.earliest() == expected, f"step {step}"
        if moving_earlier < 0.1:
            # Entries stay behind only when a deadline moved earlier: dozens here, not one per request (thousands).
            assert len(table) < 200
