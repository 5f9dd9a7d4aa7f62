"""Refreshes written behind (ServerSettings.renewal_slack): a refresh whose renewed expiry the store already covers
stores nothing, a renewal that is written stores its expiry the slack later, and whatever the store holds when the
server stops, a restart never brings a mitigation back shorter than granted, nor more than the slack longer
(RFC 9132 §4.4.1: a refresh renews the lifetime; an acknowledged request is never lost)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.model import encode_signal
from opendots.signal.server.core import MitigationExpired, Request, Status
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, SCOPE, T0, Harness, make_harness, mitigate_path, scope_body

SLACK = 30.0
LIFETIME = 600
BODY = scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=LIFETIME)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, renewal_slack=SLACK)


def _stored_expiry(harness: Harness, mid: int = 1) -> float | None:
    rows = [row for row in harness.dump()["signal_mitigations"] if row[1] == mid]
    assert len(rows) == 1
    return rows[0][8]  # expires_at (opendots.store.signal's column order)


def _held_expiry(harness: Harness, mid: int = 1) -> float | None:
    held = harness.server.table.get((ALPHA_CUID, mid))
    assert held is not None
    return held.record.expires_at


def test_a_refresh_within_the_slack_stores_nothing_and_still_renews_the_lifetime(harness: Harness):
    assert harness.put(1, BODY).code == "2.01"
    created = _stored_expiry(harness)
    assert created == T0 + LIFETIME  # a new mitigation is stored exactly
    harness.now += 5
    first = harness.put(1, BODY)
    assert first.code == "2.04" and first.body[SCOPE]["scope"][0]["lifetime"] == LIFETIME
    assert _stored_expiry(harness) == harness.now + LIFETIME + SLACK  # written, ahead by the slack
    before = harness.dump()
    for _ in range(int(SLACK) - 1):
        harness.now += 1
        decision = harness.server.handle(harness_request(harness), harness.now)
        assert not decision.changes  # covered by what the store holds: nothing to write
        response, _ = harness.settle(decision)
        assert response is not None and response.body[SCOPE]["scope"][0]["lifetime"] == LIFETIME
        assert _held_expiry(harness) == harness.now + LIFETIME  # memory is exact
    assert harness.dump() == before
    harness.now += 2  # past the slack: the store no longer covers the renewal
    assert harness.put(1, BODY).code == "2.04"
    assert _stored_expiry(harness) == harness.now + LIFETIME + SLACK


def harness_request(harness: Harness) -> Request:
    return Request("PUT", mitigate_path(ALPHA_CUID, 1), peer=ALPHA.cuid, payload=encode_signal(BODY, validate=False))


@pytest.mark.parametrize("steps", [[1, 1, 1], [5, 20, 4, 1, 29, 2], [31, 31], [0.5] * 70])
def test_a_restart_after_any_refresh_never_shortens_a_mitigation_nor_lengthens_it_past_the_slack(
    tmp_path: Path, steps: list[float]
):
    harness = make_harness(tmp_path, renewal_slack=SLACK)
    assert harness.put(1, BODY).code == "2.01"
    for step in steps:
        harness.now += step
        assert harness.put(1, BODY).code == "2.04"
        granted = harness.now + LIFETIME
        stored = _stored_expiry(harness)  # what a server killed right now, after the answer, comes back with
        assert stored is not None and granted <= stored <= granted + SLACK
    harness.restart()
    held = _held_expiry(harness)
    assert held is not None and harness.now + LIFETIME <= held <= harness.now + LIFETIME + SLACK


def test_a_status_change_stored_whole_is_not_taken_for_a_written_ahead_expiry(harness: Harness):
    """A mitigator's report stores the record with its exact expiry: the next refresh must be written, although it
    falls within the slack of the renewal written before."""
    assert harness.put(1, BODY).code == "2.01"
    harness.now += 1
    assert harness.put(1, BODY).code == "2.04"  # stored ahead: T0 + 1 + LIFETIME + SLACK
    harness.now += 1
    harness.report_status(f"{ALPHA_CUID}/1", Status.ATTACK_SUCCESSFULLY_MITIGATED)
    assert _stored_expiry(harness) == T0 + 1 + LIFETIME  # the record as held, whole
    harness.now += 1
    assert harness.put(1, BODY).code == "2.04"
    assert _stored_expiry(harness) == harness.now + LIFETIME + SLACK
    harness.restart()
    assert _held_expiry(harness) == harness.now + LIFETIME + SLACK


def test_a_refresh_changing_the_lifetime_is_written_at_once(harness: Harness):
    assert harness.put(1, BODY).code == "2.01"
    harness.now += 1
    assert harness.put(1, BODY).code == "2.04"
    harness.now += 1
    shorter = scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=60)
    assert harness.put(1, shorter).code == "2.04"
    assert _stored_expiry(harness) == harness.now + 60  # another request body: the whole row, exact
    assert harness.get(1).body[SCOPE]["scope"][0]["lifetime"] == 60


def test_a_mitigation_written_ahead_still_ends_at_its_exact_expiry_rfc9132_4_4_1(harness: Harness):
    assert harness.put(1, BODY).code == "2.01"
    harness.now += 1
    assert harness.put(1, BODY).code == "2.04"
    events = harness.advance(LIFETIME - 0.5)
    assert not [e for e in events if isinstance(e, MitigationExpired)]
    events = harness.advance(0.5)
    assert [e.mid for e in events if isinstance(e, MitigationExpired)] == [1]
    assert harness.dump()["signal_mitigations"] == []


def test_with_no_slack_every_renewal_is_written_exactly(tmp_path: Path):
    harness = make_harness(tmp_path)
    assert harness.put(1, BODY).code == "2.01"
    for _ in range(3):
        harness.now += 1
        assert harness.put(1, BODY).code == "2.04"
        assert _stored_expiry(harness) == harness.now + LIFETIME


def test_a_short_lifetime_is_written_ahead_by_a_quarter_of_it_at_most(harness: Harness):
    short = scope_body(target_prefix=["2001:db8:6401:1::/64"], lifetime=40)
    assert harness.put(2, short).code == "2.01"
    harness.now += 1
    assert harness.put(2, short).code == "2.04"
    assert _stored_expiry(harness, 2) == harness.now + 40 + 10  # not + SLACK: a crash adds 10 s to 40 at most
