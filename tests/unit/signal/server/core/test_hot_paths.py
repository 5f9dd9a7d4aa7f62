"""The messages every session repeats (heartbeats, refresh PUTs, GETs) take the cheapest path the core has, and that
path answers exactly what the full one does (RFC 9132 §4.4.1, §4.4.2, §4.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.model import EncodedSignal, decode_signal, encode_signal
from opendots.signal.server.core import HeartbeatDue, MitigationExpired, bodies
from tests.helpers.signal_harness import Harness, make_harness, scope_body

HEARTBEAT = "ietf-dots-signal-channel:heartbeat"


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


@pytest.fixture
def decodings(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The payloads the core ran through the CBOR decoder and the data model."""
    seen: list[bytes] = []
    real = bodies.decode_signal

    def counting(payload: bytes) -> Any:
        seen.append(payload)
        return real(payload)

    monkeypatch.setattr(bodies, "decode_signal", counting)
    return seen


def _heartbeat(harness: Harness, payload: bytes):
    return harness.request("PUT", ("hb",), payload=payload)


@pytest.mark.parametrize("heard", [True, False])
def test_a_heartbeat_in_its_usual_encoding_is_answered_without_decoding_rfc9132_4_7(harness, decodings, heard):
    response = _heartbeat(harness, encode_signal({HEARTBEAT: {"peer-hb-status": heard}}))
    assert response.code == "2.04"
    assert decodings == []
    # peer-hb-status false: the client hears nothing from us, so a heartbeat goes out at once (§4.7).
    assert harness.events == ([] if heard else [HeartbeatDue("alpha", True)])


def test_a_heartbeat_in_another_encoding_is_decoded_and_means_the_same_rfc9132_4_7(harness, decodings):
    usual = encode_signal({HEARTBEAT: {"peer-hb-status": False}})
    content = cbor2.loads(usual)
    indefinite = bytes([0xBF]) + cbor2.dumps(next(iter(content)))[0:] + cbor2.dumps(next(iter(content.values())))
    indefinite += bytes([0xFF])  # the same map, written with an indefinite length
    assert indefinite != usual and cbor2.loads(indefinite) == content
    assert _heartbeat(harness, indefinite).code == "2.04"
    assert decodings == [indefinite]
    assert harness.events == [HeartbeatDue("alpha", True)]


def test_a_heartbeat_body_with_more_than_peer_hb_status_is_still_refused_rfc9132_4_7(harness):
    key, inner = next(iter(cbor2.loads(encode_signal({HEARTBEAT: {"peer-hb-status": True}})).items()))
    ((status_key, _),) = inner.items()
    wrong = cbor2.dumps({key: {status_key: 1}})  # an integer where a boolean belongs
    assert _heartbeat(harness, wrong).code == "4.00"
    assert harness.request("PUT", ("hb",)).code == "4.00"  # no body at all
    assert harness.request("GET", ("hb",), payload=encode_signal({HEARTBEAT: {"peer-hb-status": True}})).code == "4.05"


def test_refreshes_do_not_pile_up_lifetime_timers_and_the_last_one_still_counts_rfc9132_4_4_1(harness):
    """Each refresh moves the mitigation's end later; the lifetime heap keeps about one entry per mitigation however
    often clients refresh (they repeat their requests during an attack), and the mitigation ends when the last
    refresh says."""
    bodies = {mid: scope_body(target_prefix=[f"2001:db8:6401::{mid:x}/128"], lifetime=600) for mid in (1, 2, 3)}
    for mid, body in bodies.items():
        assert harness.put(mid, body).code == "2.01"
    for _ in range(300):
        harness.now += 1
        for mid, body in bodies.items():
            assert harness.put(mid, body).code == "2.04"
    assert len(harness.server.table.deadlines) <= 2 * len(bodies)
    ended = [e.mid for e in harness.advance(599) if isinstance(e, MitigationExpired)]
    assert ended == []
    assert len(harness.server.table.deadlines) <= 2 * len(bodies)
    ended = [e.mid for e in harness.advance(1) if isinstance(e, MitigationExpired)]
    assert sorted(ended) == [1, 2, 3]
    assert harness.server.next_timer() is None or harness.server.table.next_deadline() is None


def test_a_refresh_is_answered_with_bytes_encoded_once_that_show_its_mid_and_lifetime_rfc9132_4_4_1(harness):
    body = scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600)
    assert harness.put(7, body).code == "2.01"
    answers = [harness.put(7, body).body for _ in range(3)]
    assert all(isinstance(answer, EncodedSignal) and answer is answers[0] for answer in answers)
    shown = decode_signal(encode_signal(answers[0], validate=False))
    assert shown == {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": 7, "lifetime": 600}]}}
    harness.now += 1
    shorter = scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=30)
    answer = harness.put(7, shorter).body
    assert decode_signal(encode_signal(answer, validate=False))["ietf-dots-signal-channel:mitigation-scope"] == {
        "scope": [{"mid": 7, "lifetime": 30}]
    }
