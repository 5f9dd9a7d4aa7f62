"""A GET of one mitigation is rendered and encoded once while what it shows holds, and never shows anything stale or
another client's: a new status, counters, a lifetime a second shorter, a refresh, a DELETE are seen at once (RFC 9132
§4.4.2: 'lifetime' is the remaining lifetime; §4.4.1.3: no client sees another's mitigation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.domain import Counters
from opendots.model import EncodedSignal, ModelError, decode_signal, encode_signal
from opendots.signal.server.core import Status
from opendots.signal.server.core.mitigations import Mitigation
from tests.helpers.signal_harness import ALPHA_CUID, BRAVO, SCOPE, Harness, make_harness, scope_body

BODY = scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=600)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    made = make_harness(tmp_path)
    assert made.put(1, BODY).code == "2.01"
    return made


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    real = Mitigation.render

    def render(self: Mitigation, *args, **kwargs):
        counted.append(self.record.mid)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Mitigation, "render", render)
    return counted


def _shown(harness: Harness, *query: str) -> dict:
    response = harness.get(1, query=query)
    assert response.code == "2.05", response
    (entry,) = decode_signal(encode_signal(response.body, validate=False))[SCOPE]["scope"]  # what goes on the wire
    return entry


def test_repeated_gets_within_a_second_are_rendered_once_and_encoded_once(harness: Harness, renders: list[int]):
    first = harness.get(1)
    for _ in range(5):
        again = harness.get(1)
        assert again.body is first.body and isinstance(again.body, EncodedSignal)
    assert renders == [1]


def test_the_remaining_lifetime_shown_falls_with_each_second_rfc9132_4_4_2(harness: Harness):
    assert _shown(harness)["lifetime"] == 600
    harness.now += 0.5
    assert _shown(harness)["lifetime"] == 600
    harness.now += 1
    assert _shown(harness)["lifetime"] == 599
    harness.now += 100
    assert _shown(harness)["lifetime"] == 499


def test_a_status_reported_by_the_mitigator_is_shown_at_once(harness: Harness):
    assert _shown(harness)["status"] == "attack-mitigation-in-progress"
    harness.report_status(f"{ALPHA_CUID}/1", Status.ATTACK_SUCCESSFULLY_MITIGATED)
    assert _shown(harness)["status"] == "attack-successfully-mitigated"


def test_new_counters_are_shown_at_once_rfc9132_4_4_2(harness: Harness):
    assert "bytes-dropped" not in _shown(harness)
    harness.report_counters(f"{ALPHA_CUID}/1", Counters(1000, 10, 8, 1))
    assert _shown(harness)["bytes-dropped"] == "1000"
    harness.report_counters(f"{ALPHA_CUID}/1", Counters(2000, 10, 8, 1))
    assert _shown(harness)["bytes-dropped"] == "2000"


def test_a_refresh_and_a_changed_lifetime_are_shown_at_once_rfc9132_4_4_1(harness: Harness):
    harness.now += 10
    assert _shown(harness)["lifetime"] == 590
    assert harness.put(1, BODY).code == "2.04"
    assert _shown(harness)["lifetime"] == 600
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::/64"], lifetime=60)).code == "2.04"
    assert _shown(harness)["lifetime"] == 60


def test_a_withdrawn_mitigation_is_shown_withdrawn_then_gone_rfc9132_4_4_4(harness: Harness):
    assert _shown(harness)["status"] == "attack-mitigation-in-progress"
    assert harness.delete(1).code == "2.02"
    assert _shown(harness)["status"] == "dots-client-withdrawn-mitigation"
    harness.advance(harness.server.settings.active_but_terminating + 1)
    assert harness.get(1).code == "4.04"


def test_another_client_never_gets_the_body_kept_for_the_owner_rfc9132_4_4_1_3(harness: Harness):
    assert harness.get(1).code == "2.05"  # kept for alpha
    other = harness.get(1, cuid=ALPHA_CUID, peer=BRAVO)
    assert other.code == "4.04" and other.body is None


def test_each_uri_query_gets_its_own_body_rfc9132_4_4_2(harness: Harness):
    everything = _shown(harness)
    configuration = _shown(harness, "c=c")
    state = _shown(harness, "c=n")
    assert "status" in everything and "target-prefix" in everything
    assert "status" not in configuration and configuration["target-prefix"] == ["2001:db8:6401::/64"]
    assert "status" in state and "target-prefix" not in state
    assert _shown(harness) == everything


def test_an_encoded_body_changed_after_encoding_is_never_sent():
    body = EncodedSignal({SCOPE: {"scope": [{"mid": 1, "lifetime": 600}]}})
    assert decode_signal(encode_signal(body, validate=False))[SCOPE]["scope"] == [{"mid": 1, "lifetime": 600}]
    body[SCOPE]["scope"][0]["lifetime"] = 5  # nobody may do this: the test suites' checks catch it
    with pytest.raises(ModelError):
        encode_signal(body, validate=False)
