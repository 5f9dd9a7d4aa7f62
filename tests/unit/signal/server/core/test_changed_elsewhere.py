"""Several nodes on one database: a change another node stored is fed into this node's core
(`SignalServer.changed_elsewhere`), which then holds what the database holds and says what follows. Two harnesses
stand for two nodes; B is fed the rows A stored, as the PostgreSQL shell does after a NOTIFY."""

from __future__ import annotations

import pytest

from opendots.signal.server.core import MitigationActivated, MitigationChanged, MitigationWithdrawn, PeerLost
from opendots.store.records import SignalChanges
from tests.helpers.signal_harness import ALPHA_CUID, BRAVO, BRAVO_CUID, SCOPE, make_harness, scope_body

KEY = (ALPHA_CUID, 1)


@pytest.fixture
def nodes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return make_harness(tmp_path / "a"), make_harness(tmp_path / "b")


def stored(node, key=KEY):
    """The row NODE's store holds for KEY now (what the other node reads back after a NOTIFY)."""
    return next((m for m in node.store.load().mitigations if m.key == key), None)


def kinds(events):
    return [type(event) for event in events]


def test_a_mitigation_created_on_another_node_is_held_enforced_and_notified(nodes):
    a, b = nodes
    assert a.put(1, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    events = b.server.changed_elsewhere(KEY, stored(a), b.now)
    assert kinds(events) == [MitigationActivated, MitigationChanged]  # the lease holder applies it, observers hear
    assert events[1].snapshot[SCOPE]["scope"][0]["target-prefix"] == ["192.0.2.0/28"]
    assert [e["mid"] for e in b.get().body[SCOPE]["scope"]] == [1]
    assert b.server.changed_elsewhere(KEY, stored(a), b.now) == []  # read twice (an echo): nothing more


def test_a_refresh_elsewhere_is_held_without_reapplying_or_notifying_and_a_removal_withdraws(nodes):
    """RFC 9132 §4.4.2.1: a refresh keeps the status, so it is not notified (nor on the node it was made on)."""
    a, b = nodes
    a.put(1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=100))
    b.server.changed_elsewhere(KEY, stored(a), b.now)
    a.now = b.now = a.now + 50
    assert a.put(1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=100)).code == "2.04"
    assert b.server.changed_elsewhere(KEY, stored(a), b.now) == []
    assert b.get(1).body[SCOPE]["scope"][0]["lifetime"] == 100
    a.store.apply(SignalChanges(delete_mitigations=[KEY]))  # A's DELETE, withdrawn at once
    events = b.server.changed_elsewhere(KEY, None, b.now)
    assert kinds(events) == [MitigationWithdrawn, MitigationChanged]
    assert b.get(1).code == "4.04"


def test_a_conflict_with_a_mitigation_held_elsewhere_is_detected(nodes):
    """RFC 9132 §4.4.1: the conflict check sees another client's mitigation stored through the other node."""
    a, b = nodes
    a.put(1, scope_body(target_prefix=["192.0.2.0/28"]))
    b.server.changed_elsewhere(KEY, stored(a), b.now)
    response = b.put(5, scope_body(target_prefix=["192.0.2.0/28"]), cuid=BRAVO_CUID, peer=BRAVO)
    assert response.code == "4.09"
    conflict = response.body[SCOPE]["scope"][0]["conflict-information"]
    assert conflict["conflict-status"] == "request-inactive-other-active"


def test_a_lower_mid_is_refused_after_a_higher_one_stored_elsewhere(nodes):
    """RFC 9132 §4.4.1: 'mid' rules hold across nodes once the other node's rows are read."""
    a, b = nodes
    a.put(20, scope_body(target_prefix=["192.0.2.0/28"]))
    b.server.changed_elsewhere((ALPHA_CUID, 20), stored(a, (ALPHA_CUID, 20)), b.now)
    assert b.put(19, scope_body(target_prefix=["192.0.2.0/28"])).code == "4.09"


def test_a_client_whose_session_moved_to_another_node_is_not_declared_lost_here(nodes):
    """RFC 9132 §4.7: liveness is judged where the session is; the node it left stops counting missed heartbeats."""
    a, b = nodes
    for node in (a, b):
        node.put(1, scope_body(target_prefix=["192.0.2.0/28"]))  # traffic: a liveness clock starts on each node
    b.server.peer_elsewhere("alpha")
    assert PeerLost("alpha") in a.advance(3600)
    assert PeerLost("alpha") not in b.advance(3600)
