"""Observers are told the same thing whichever node a change was made on (RFC 9132 §4.4.2.1: a notification
"whenever the status of the attack mitigation changes"). Node A makes each kind of change itself; node B is fed the
rows A stored (`SignalServer.changed_elsewhere`, as after a NOTIFY or a worker's poke); the MitigationChanged events
of both (what observers hear: which mitigation, the status told, the body) must be the same."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opendots.signal.server.core import MitigationChanged
from opendots.signal.server.core.events import Event
from opendots.signal.server.core.messages import Status
from tests.helpers.signal_harness import ALPHA_CUID, Harness, make_harness, scope_body

BODY = scope_body(target_prefix=["192.0.2.0/28"], lifetime=100)


@pytest.fixture
def nodes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return make_harness(tmp_path / "a"), make_harness(tmp_path / "b")


def follow(a: Harness, b: Harness) -> list[Event]:
    """B reads every row A's store holds now, and the end of every row it held that A's store no longer has."""
    stored = {m.key: m for m in a.store.load().mitigations}
    keys = sorted(stored.keys() | {m.key for m in b.server.table})
    events: list[Event] = []
    for key in keys:
        events += b.server.changed_elsewhere(key, stored.get(key), b.now)
    return events


def told(events: list[Event]) -> list[tuple]:
    """What observers hear: the mitigation, the status told and the notification body."""
    return [(e.client, e.cuid, e.mid, e.status, e.snapshot) for e in events if isinstance(e, MitigationChanged)]


def one_active(nodes) -> tuple[Harness, Harness]:
    a, b = nodes
    assert a.put(1, BODY).code == "2.01"
    follow(a, b)
    a.now = b.now = a.now + 30
    return a, b


def refresh(a: Harness) -> list[Event]:
    assert a.put(1, BODY).code == "2.04"
    return a.events


def refresh_with_another_lifetime(a: Harness) -> list[Event]:
    assert a.put(1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=500)).code == "2.04"
    return a.events


def efficacy_update(a: Harness) -> list[Event]:
    """§4.4.3: a PUT with an empty If-Match, the request's parameters and an 'attack-status'."""
    body = scope_body(target_prefix=["192.0.2.0/28"], lifetime=100, attack_status="under-attack")
    assert a.put(1, body, if_match_empty=True).code == "2.04"
    return a.events


def status_reported(a: Harness) -> list[Event]:
    return a.report_status(f"{ALPHA_CUID}/1", Status.ATTACK_SUCCESSFULLY_MITIGATED)


def create(a: Harness) -> list[Event]:
    assert a.put(2, scope_body(target_prefix=["192.0.2.64/28"])).code == "2.01"
    return a.events


def withdraw(a: Harness) -> list[Event]:
    """§4.4.4: DELETE of an enforced mitigation, kept active-but-terminating (status 5)."""
    assert a.delete(1).code == "2.02"
    return a.events


def supersede(a: Harness) -> list[Event]:
    """§4.4.1: a higher 'mid' of the same client overlapping mid 1 ends it."""
    assert a.put(2, scope_body(target_prefix=["192.0.2.0/27"])).code == "2.01"
    return a.events


def terminate(a: Harness) -> list[Event]:
    """§4.4.2 status 6: the server's operator ends it."""
    return a.settle(a.server.terminate(f"{ALPHA_CUID}/1", a.now))[1]


def expire(a: Harness) -> list[Event]:
    return a.advance(100)


CHANGES: dict[str, tuple[Callable[[Harness], list[Event]], list[str]]] = {
    # each change, and the statuses its own node tells observers
    "refresh": (refresh, []),
    "refresh with another lifetime": (refresh_with_another_lifetime, []),
    "efficacy update": (efficacy_update, []),
    "status reported": (status_reported, ["attack-successfully-mitigated"]),
    "create": (create, ["attack-mitigation-in-progress"]),
    "withdraw": (withdraw, ["dots-client-withdrawn-mitigation"]),
    "supersede": (supersede, ["attack-mitigation-terminated", "attack-mitigation-in-progress"]),
    "terminate": (terminate, ["attack-mitigation-terminated"]),
    "expire": (expire, ["attack-mitigation-terminated"]),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_observers_elsewhere_are_told_what_observers_here_are_told_rfc9132_s4_4_2_1(nodes, change):
    make, statuses = CHANGES[change]
    a, b = one_active(nodes)
    here = told(make(a))
    assert sorted(status for *_, status, _ in here) == sorted(statuses)
    b.now = a.now
    assert sorted(told(follow(a, b)), key=repr) == sorted(here, key=repr)


def test_a_pure_refresh_is_notified_on_neither_node_a_withdrawal_and_its_revival_on_both_rfc9132_s4_4_2_1(nodes):
    a, b = one_active(nodes)
    assert told(refresh(a)) == told(follow(a, b)) == []
    here = told(withdraw(a))
    assert [status for *_, status, _ in here] == ["dots-client-withdrawn-mitigation"]
    assert told(follow(a, b)) == here
    a.now = b.now = a.now + 5
    here = told(refresh(a))  # asked again while active-but-terminating: active again (Table 3), a status change
    assert [status for *_, status, _ in here] == ["attack-mitigation-in-progress"]
    assert told(follow(a, b)) == here


def test_a_withdrawal_elsewhere_ends_as_on_its_own_node_when_its_terminating_period_is_over_rfc9132_s4_4_4(nodes):
    a, b = one_active(nodes)
    withdraw(a)
    follow(a, b)
    here = told(a.advance(3600))
    assert [status for *_, status, _ in here] == ["attack-mitigation-terminated"]
    b.now = a.now
    assert told(follow(a, b)) == here
