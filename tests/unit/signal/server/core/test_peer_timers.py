"""A live client's traffic moves its session-loss deadline later without rescheduling its timer on every message
(RFC 9132 §4.7: any traffic proves the client alive): the timer, firing at the old deadline, finds the session
alive and reschedules it, so a session is declared lost exactly missing-hb-allowed x heartbeat-interval after the
client's last message, never before."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.domain import defaults
from opendots.model import encode_signal
from opendots.signal.server.core import PeerLost
from opendots.signal.server.core.peers import Peers
from tests.helpers.signal_harness import make_harness

HEARTBEAT = encode_signal({"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}})
WINDOW = defaults.HEARTBEAT_INTERVAL * defaults.MISSING_HB_ALLOWED


def test_messages_from_a_live_client_do_not_resync_its_timer_rfc9132_4_7(tmp_path: Path, monkeypatch):
    harness = make_harness(tmp_path)
    assert harness.request("PUT", ("hb",), payload=HEARTBEAT).code == "2.04"  # the first: its clock is armed
    synced: list[str] = []
    real = Peers._sync
    monkeypatch.setattr(Peers, "_sync", lambda self, client, now: (synced.append(client), real(self, client, now)))
    for _ in range(10):
        harness.now += 1
        assert harness.request("PUT", ("hb",), payload=HEARTBEAT).code == "2.04"
    assert synced == []


@pytest.mark.parametrize("gap", [1, defaults.HEARTBEAT_INTERVAL * 2])
def test_a_session_is_lost_a_whole_window_after_the_last_message_however_often_it_spoke_rfc9132_4_7(
    tmp_path: Path, gap: int
):
    harness = make_harness(tmp_path)
    events = []
    for _ in range(3 * WINDOW // gap):  # talking for three loss windows: never lost meanwhile
        assert harness.request("PUT", ("hb",), payload=HEARTBEAT).code == "2.04"
        events += harness.advance(gap)
    assert PeerLost("alpha") not in events
    last = harness.now
    assert harness.request("PUT", ("hb",), payload=HEARTBEAT).code == "2.04"
    assert PeerLost("alpha") not in harness.advance(WINDOW - 1)
    assert harness.now == last + WINDOW - 1
    assert PeerLost("alpha") in harness.advance(1)
