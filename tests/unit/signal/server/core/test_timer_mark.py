"""SignalServer.timer_mark changes whenever next_timer() may have moved earlier, and only then: the shell skips the
look at every deadline after the requests every session repeats (refreshes, heartbeats, GETs: RFC 9132 §4.4.1,
§4.7), which only move deadlines later."""

from __future__ import annotations

from pathlib import Path

from opendots.store.records import SignalChanges
from tests.helpers.signal_harness import ALPHA_CUID, make_harness, scope_body


def test_refreshes_heartbeats_and_gets_leave_the_timer_mark_as_it_was_rfc9132_4_4_1(tmp_path: Path):
    harness = make_harness(tmp_path)
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600)).code == "2.01"
    harness.server.next_timer()
    mark, due = harness.server.timer_mark(), harness.server.next_timer()
    for _ in range(5):
        harness.now += 1
        assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600)).code == "2.04"
        assert harness.request("GET", ("mitigate", f"cuid={ALPHA_CUID}", "mid=1")).code == "2.05"
    assert harness.server.timer_mark() == mark
    assert harness.server.next_timer() >= due


def test_a_sooner_deadline_or_a_cleared_retry_changes_the_timer_mark(tmp_path: Path):
    harness = make_harness(tmp_path)
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600)).code == "2.01"
    mark = harness.server.timer_mark()
    assert harness.put(2, scope_body(target_prefix=["2001:db8:6401:1::/64"], lifetime=10)).code == "2.01"
    assert harness.server.timer_mark() != mark
    # A failed timer write delays the timers (STORE_RETRY_DELAY); the next write that succeeds lifts the delay.
    server = harness.server
    decision = server.handle_timer(harness.now)
    decision.changes = SignalChanges(put_mitigations=[])
    server.write_failed(decision, harness.now)
    mark = server.timer_mark()
    server.apply(server.handle_timer(harness.now))
    assert server.timer_mark() != mark
