"""RFC 9244 total-traffic from the mitigators' dropped AND passed counts (§8.3, §9.2): dropped + passed toward the
target, per enabled unit class, with percentiles and peak like total-attack-traffic; bodies validated against
ietf-dots-signal-channel / ietf-dots-telemetry on the way out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.domain import Counters
from opendots.model import decode_signal, encode_signal, encode_telemetry, json_to_cbor
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.core.events import MitigationChanged
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.signal.server.core.telemetry_rates import AttackAndTotal
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, SCOPE, Harness

TT = "ietf-dots-telemetry:total-traffic"
TAT = "ietf-dots-telemetry:total-attack-traffic"
TM = "ietf-dots-telemetry:telemetry"
CONFIG = {
    "measurement-interval": "5-minutes",
    "measurement-sample": "second",
    "low-percentile": "10.00",
    "mid-percentile": "50.00",
    "high-percentile": "90.00",
    "unit-config": [{"unit": "packet-ps", "unit-status": True}, {"unit": "byte-ps", "unit-status": True}],
    "server-originated-telemetry": True,
}


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    settings = ServerSettings(clients=[ALPHA, BRAVO], telemetry=TelemetryPolicy(server_originated=True))
    harness = Harness(tmp_path / "signal.db", settings)
    body = {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"current-config": CONFIG}]}}
    payload = cbor2.dumps(json_to_cbor(body))
    assert harness.request("PUT", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=1"), ALPHA, payload=payload).code == "2.01"
    return harness


def mitigate(harness: Harness, mid: int, prefix: str) -> None:
    body = {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 3600}]}}
    assert harness.put(mid, body, cuid=ALPHA_CUID, peer=ALPHA).code == "2.01"


def reading(dropped: int, passed: int | None) -> Counters:
    """DROPPED / PASSED packets of 100 bytes each."""
    if passed is None:
        return Counters(bytes_dropped=dropped * 100, pkts_dropped=dropped)
    return Counters(dropped * 100, dropped, bytes_passed=passed * 100, pkts_passed=passed)


def entry_of(harness: Harness, mid: int) -> dict[str, Any]:
    response = harness.get(mid, cuid=ALPHA_CUID, peer=ALPHA)
    (entry,) = decode_signal(encode_signal(response.body))[SCOPE]["scope"]  # YANG-validated both ways
    return entry


def test_total_traffic_rates_are_dropped_plus_passed_and_attack_traffic_the_dropped_alone():
    series = AttackAndTotal()
    for at, dropped, passed in [(0, 0, 0), (10, 1_000, 500), (20, 4_000, 1_500), (30, 5_000, 1_500)]:
        series.feed(at, (dropped, dropped * 100), (passed, passed * 100), 1)
    config = {**CONFIG, "unit-config": [{"unit": "packet-ps", "unit-status": True}]}
    rendered = series.render(30, config)
    assert rendered["total-attack-traffic"] == [
        {
            "unit": "packet-ps",
            "low-percentile-g": "100",
            "mid-percentile-g": "100",
            "high-percentile-g": "300",
            "peak-g": "300",
            "current-g": "100",
        }
    ]
    assert rendered["total-traffic"] == [
        {
            "unit": "packet-ps",
            "low-percentile-g": "100",
            "mid-percentile-g": "150",
            "high-percentile-g": "400",
            "peak-g": "400",
            "current-g": "100",
        }
    ]


def test_no_passed_counts_no_total_traffic_never_a_guess():
    series = AttackAndTotal()
    for at, dropped in [(0, 0), (10, 1_000)]:
        series.feed(at, (dropped, dropped * 100), None, 1)
    assert set(series.render(10, CONFIG)) == {"total-attack-traffic"}


def test_mitigation_status_carries_total_traffic_beside_total_attack_traffic_rfc9244_9_2(harness: Harness):
    mitigate(harness, 1, "2001:db8:6401::1/128")
    key = f"{ALPHA_CUID}/1"
    start = harness.now
    for offset, dropped, passed in [(0, 0, 0), (10, 2_000, 3_000)]:
        harness.now = start + offset
        harness.report_counters(key, reading(dropped, passed))
    entry = entry_of(harness, 1)
    assert [(e["unit"], e["current-g"]) for e in entry[TT]] == [
        ("packet-ps", "500"),
        ("bit-ps", "400000"),
        ("byte-ps", "50000"),
    ]
    assert [(e["unit"], e["current-g"]) for e in entry[TAT]] == [
        ("packet-ps", "200"),
        ("bit-ps", "160000"),
        ("byte-ps", "20000"),
    ]
    assert "pkts-passed" not in entry and "pkts-dropped" in entry  # RFC 9132 status shows only the dropped counts


def test_a_change_of_the_passed_counts_alone_is_not_notified_without_telemetry(tmp_path: Path):
    """Passed traffic moves whenever the target gets any: with no telemetry attribute to show, nothing to notify."""
    harness = Harness(tmp_path / "signal.db", ServerSettings(clients=[ALPHA, BRAVO]))
    mitigate(harness, 1, "192.0.2.1/32")
    key = f"{ALPHA_CUID}/1"
    assert [e for e in harness.report_counters(key, reading(10, 0)) if isinstance(e, MitigationChanged)]
    harness.now += 10
    assert not [e for e in harness.report_counters(key, reading(10, 5_000)) if isinstance(e, MitigationChanged)]
    assert harness.server.table.by_mitigator_key(key).counters.pkts_passed == 5_000  # kept all the same


def test_a_target_only_tm_sums_total_traffic_only_when_every_mitigation_counts_it_rfc9244_8_3(harness: Harness):
    mitigate(harness, 1, "192.0.2.1/32")
    mitigate(harness, 2, "192.0.2.2/32")
    body = {TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": ["192.0.2.0/24"]}}]}}
    payload = cbor2.dumps(json_to_cbor(body))
    assert harness.request("PUT", ("tm", f"cuid={ALPHA_CUID}", "tmid=5"), ALPHA, payload=payload).code == "2.04"

    def read(offset: float, two_passed: int | None) -> dict[str, Any]:
        harness.now = start + offset
        harness.report_counters(f"{ALPHA_CUID}/1", reading(int(offset) * 100, int(offset) * 10))
        harness.report_counters(f"{ALPHA_CUID}/2", reading(int(offset) * 300, two_passed))
        harness.server.counters_read(harness.now)
        response = harness.request("GET", ("tm", f"cuid={ALPHA_CUID}"), ALPHA)
        encode_telemetry(response.body)  # valid against ietf-dots-telemetry
        (entry,) = response.body[TM]["pre-or-ongoing-mitigation"]
        return entry

    start = harness.now
    read(0, 0)
    entry = read(10, 200)
    # (1,000 + 3,000 dropped + 100 + 200 passed) over 10 s; the attack traffic is the dropped alone.
    assert entry["total-traffic"][0]["current-g"] == "430"
    assert entry["total-attack-traffic"][0]["current-g"] == "400"
    # A mitigation whose mitigator does not count passed traffic (BGP): a total would be false, none is sent.
    entry = read(20, None)
    assert "total-traffic" not in entry and entry["total-attack-traffic"][0]["current-g"] == "400"
