"""The server's operator terminates a mitigation (RFC 9132 §4.4.2 status 6, "attack-mitigation-terminated"): the
core decides it like any other change, stored first, then applied; the actuator is told to withdraw, observers get
the final status, and a restart does not bring it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.signal.server.core import MitigationChanged, MitigationWithdrawn, Status
from opendots.signal.server.core.transitions import TRANSITIONS, Trigger
from tests.helpers.signal_harness import ALPHA_CUID, SCOPE, Harness, make_harness, scope_body


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


def _final_statuses(events) -> list[str]:
    return [e.snapshot[SCOPE]["scope"][0]["status"] for e in events if isinstance(e, MitigationChanged)]


def test_an_enforced_mitigation_terminated_by_the_operator_ends_with_status_6_and_is_withdrawn(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    decision = harness.server.terminate(f"{ALPHA_CUID}/1", harness.now)
    assert decision.changes.delete_mitigations == [(ALPHA_CUID, 1)]
    assert len(harness.server.mitigations()) == 1  # decided, not yet stored: memory untouched
    _, events = harness.settle(decision)
    assert harness.server.mitigations() == []
    assert [(e.mid, e.reason) for e in events if isinstance(e, MitigationWithdrawn)] == [(1, "operator")]
    assert _final_statuses(events) == ["attack-mitigation-terminated"]
    assert harness.dump()["signal_mitigations"] == []
    assert harness.get(1).code == "4.04"
    harness.restart()  # durable: a restarted server does not enforce it again
    assert harness.server.mitigations() == []


def test_a_mitigation_in_active_but_terminating_is_withdrawn_at_once_when_terminated(harness: Harness):
    """§4.4.4: after a DELETE the server keeps enforcing for a while; the operator's termination cuts that short."""
    assert harness.put(2, scope_body(target_prefix=["192.0.2.16/28"])).code == "2.01"
    assert harness.delete(2).code == "2.02"
    assert harness.server.mitigations()[0].terminating
    _, events = harness.settle(harness.server.terminate(f"{ALPHA_CUID}/2", harness.now))
    assert [(e.mid, e.reason) for e in events if isinstance(e, MitigationWithdrawn)] == [(2, "operator")]
    assert harness.server.mitigations() == []


def test_a_waiting_preconfigured_request_is_terminated_without_asking_the_actuator_to_withdraw(harness: Harness):
    """§4.4.1.3: a preconfigured request (status 8) enforces nothing: nothing to withdraw, observers still told."""
    pre = scope_body(target_prefix=["192.0.2.32/28"], trigger_mitigation=False, lifetime=-1)
    assert harness.put(3, pre).code == "2.01"
    _, events = harness.settle(harness.server.terminate(f"{ALPHA_CUID}/3", harness.now))
    assert not [e for e in events if isinstance(e, MitigationWithdrawn)]
    assert _final_statuses(events) == ["attack-mitigation-terminated"]
    assert harness.server.mitigations() == []


def test_terminating_what_is_not_held_decides_nothing_and_leaves_the_core_free(harness: Harness):
    decision = harness.server.terminate(f"{ALPHA_CUID}/9", harness.now)
    assert not decision.pending and decision.events == [] and decision.response is None
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"  # no decision left pending


def test_a_failed_write_keeps_the_mitigation_as_it_was(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    decision = harness.server.terminate(f"{ALPHA_CUID}/1", harness.now)
    assert harness.server.write_failed(decision, harness.now) is None  # nobody to answer; retried by the operator
    assert [m.status for m in harness.server.mitigations()] == [Status.ATTACK_MITIGATION_IN_PROGRESS]


def test_every_held_status_may_be_terminated_by_the_operator():
    """Table 3: status 6 is reachable from every status a mitigation can be held in."""
    held = {(kind, status) for kind, status, _trigger in TRANSITIONS if status is not None}
    for kind, status in held:
        assert TRANSITIONS[(kind, status, Trigger.TERMINATED_BY_OPERATOR)] == Status.ATTACK_MITIGATION_TERMINATED
