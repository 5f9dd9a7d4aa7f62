"""DOTS server-originated telemetry on the server core (RFC 9244 §8.3, §9.2): rates, percentiles and peaks from the
mitigator's cumulative counters over the client's measurement interval, rendered in mitigation status and in /tm
for a client's target-only request, valid against the YANG modules, only when asked for, and per client."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.domain import Counters
from opendots.model import decode_signal, encode_signal, encode_telemetry, json_to_cbor
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.core.events import MitigationChanged, TelemetryChanged
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.signal.server.core.telemetry_rates import MAX_SAMPLES, TrafficSeries, percentile, traffic
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, BRAVO_CUID, SCOPE, Harness

SETUP = "ietf-dots-telemetry:telemetry-setup"
TM = "ietf-dots-telemetry:telemetry"
TAT = "ietf-dots-telemetry:total-attack-traffic"
CONFIG = {
    "measurement-interval": "5-minutes",
    "measurement-sample": "second",
    "low-percentile": "10.00",
    "mid-percentile": "50.00",
    "high-percentile": "90.00",
    "unit-config": [
        {"unit": "packet-ps", "unit-status": True},
        {"unit": "bit-ps", "unit-status": True},
        {"unit": "byte-ps", "unit-status": False},
    ],
}


def make(tmp_path: Path, server_originated: bool = True) -> Harness:
    policy = TelemetryPolicy(server_originated=server_originated)
    return Harness(tmp_path / "signal.db", ServerSettings(clients=[ALPHA, BRAVO], telemetry=policy))


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make(tmp_path)


def cbor(body: dict[str, Any]) -> bytes:
    return cbor2.dumps(json_to_cbor(body))


def setup(harness: Harness, config: dict[str, Any], peer=ALPHA, cuid: str = ALPHA_CUID, tsid: int = 1) -> str:
    body = {SETUP: {"telemetry": [{"current-config": config}]}}
    return harness.request("PUT", ("tm-setup", f"cuid={cuid}", f"tsid={tsid}"), peer, payload=cbor(body)).code


def mitigate(harness: Harness, mid: int, prefix: str, peer=ALPHA, cuid: str = ALPHA_CUID) -> None:
    body = {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 3600}]}}
    assert harness.put(mid, body, cuid=cuid, peer=peer).code == "2.01"


def feed(harness: Harness, key: str, readings: list[tuple[float, int, int]]) -> list[Any]:
    """Counter readings (seconds after now, cumulative packets, cumulative bytes), then the batch end."""
    start, events = harness.now, []
    for offset, packets, bytes_ in readings:
        harness.now = start + offset
        events += harness.report_counters(key, Counters(bytes_dropped=bytes_, pkts_dropped=packets))
        events += harness.server.counters_read(harness.now)
    return events


def scope_entry(harness: Harness, mid: int, peer=ALPHA, cuid: str = ALPHA_CUID) -> dict[str, Any]:
    response = harness.get(mid, cuid=cuid, peer=peer)
    assert response.code == "2.05"
    # What goes on the wire is valid against ietf-dots-signal-channel with the ietf-dots-telemetry augment.
    (entry,) = decode_signal(encode_signal(response.body))[SCOPE]["scope"]
    return entry


# --- the arithmetic -----------------------------------------------------------------------------------------------


def test_rates_are_counter_differences_over_the_time_between_readings():
    series = TrafficSeries()
    assert not series.feed(0.0, 1_000, 100_000, 1)  # the first reading is only a baseline
    assert series.feed(10.0, 6_000, 600_000, 1)
    assert series.feed(20.0, 6_000, 600_000, 1)
    (first, second) = series.recent(20.0, 300)
    assert (first.pps, first.byte_ps) == (500.0, 50_000.0)
    assert (second.pps, second.byte_ps) == (0.0, 0.0)


def test_a_sample_spans_at_least_the_measurement_sample_rfc9244_7_1_2():
    """'measurement-sample' minute with readings every 10 s: one sample per minute, over the whole minute."""
    series = TrafficSeries()
    series.feed(0.0, 0, 0, 60)
    closed = [series.feed(t, int(t) * 100, int(t) * 1000, 60) for t in range(10, 130, 10)]
    assert closed.count(True) == 2
    assert [s.pps for s in series.samples] == [100.0, 100.0]


def test_counters_going_backwards_start_a_new_baseline_not_a_negative_rate():
    series = TrafficSeries()
    series.feed(0.0, 5_000, 50_000, 1)
    assert not series.feed(10.0, 10, 100, 1)  # the mitigator restarted: its counters begin again
    assert series.feed(20.0, 1_010, 10_100, 1)
    assert [s.pps for s in series.samples] == [100.0]


def test_a_change_of_what_is_summed_starts_a_new_baseline_rfc9244_8_3():
    series = TrafficSeries()
    series.feed(0.0, 100, 1_000, 1, frozenset({"a"}))
    assert not series.feed(10.0, 10_100, 101_000, 1, frozenset({"a", "b"}))  # b's whole history is not a rate
    assert series.feed(20.0, 10_200, 102_000, 1, frozenset({"a", "b"}))
    assert [s.pps for s in series.samples] == [10.0]


def test_samples_older_than_the_measurement_interval_are_dropped():
    series = TrafficSeries()
    series.feed(0.0, 0, 0, 1)
    series.feed(100.0, 100_000, 0, 1)  # 1000 pps
    series.feed(400.0, 130_000, 0, 1)  # 100 pps
    assert [s.pps for s in series.recent(400.0, 300)] == [100.0]
    assert len(series.samples) == 1


def test_samples_kept_are_bounded_whatever_the_configuration():
    series = TrafficSeries()
    for t in range(MAX_SAMPLES * 3):
        series.feed(float(t), t, t, 1)
    assert len(series.samples) == MAX_SAMPLES


@pytest.mark.parametrize(
    ("percent", "expected"), [("10.00", 1), ("50.00", 5), ("90.00", 9), ("95.00", 10), ("99.99", 10), ("0.01", 1)]
)
def test_percentiles_are_nearest_rank_rfc2330(percent: str, expected: int):
    assert percentile([float(v) for v in range(1, 11)], Decimal(percent)) == expected


def test_traffic_gives_each_enabled_unit_class_its_percentiles_peak_and_current():
    series = TrafficSeries()
    series.feed(0.0, 0, 0, 1)
    packets = bytes_ = 0
    for t, pps in enumerate([100, 300, 200, 900, 400, 500, 600, 700, 800, 1000], start=1):
        packets, bytes_ = packets + pps, bytes_ + pps * 100
        series.feed(float(t), packets, bytes_, 1)
    entries = traffic(series.recent(10.0, 300), CONFIG)
    assert entries == [
        {
            "unit": "packet-ps",
            "low-percentile-g": "100",
            "mid-percentile-g": "500",
            "high-percentile-g": "900",
            "peak-g": "1000",
            "current-g": "1000",
        },
        {
            "unit": "bit-ps",
            "low-percentile-g": "80000",
            "mid-percentile-g": "400000",
            "high-percentile-g": "720000",
            "peak-g": "800000",
            "current-g": "800000",
        },
    ]


def test_disabled_percentiles_are_left_out_rfc9244_7_1_2():
    series = TrafficSeries()
    series.feed(0.0, 0, 0, 1)
    series.feed(1.0, 10, 10, 1)
    config = {**CONFIG, "low-percentile": "0.00", "mid-percentile": "50.00", "high-percentile": "50.00"}
    (entry, _) = traffic(series.recent(1.0, 300), config)
    assert set(entry) == {"unit", "mid-percentile-g", "peak-g", "current-g"}


# --- §9.2: mitigation status ------------------------------------------------------------------------------------


def test_mitigation_status_carries_the_dropped_rates_when_the_client_asked_rfc9244_9_2(harness: Harness):
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    key = f"{ALPHA_CUID}/1"
    events = feed(harness, key, [(0, 0, 0), (10, 20_000, 2_000_000), (20, 30_000, 3_000_000)])
    entry = scope_entry(harness, 1)
    assert entry["pkts-dropped"] == "30000"
    assert entry[TAT] == [
        {
            "unit": "packet-ps",
            "low-percentile-g": "1000",
            "mid-percentile-g": "1000",
            "high-percentile-g": "2000",
            "peak-g": "2000",
            "current-g": "1000",
        },
        {
            "unit": "bit-ps",
            "low-percentile-g": "800000",
            "mid-percentile-g": "800000",
            "high-percentile-g": "1600000",
            "peak-g": "1600000",
            "current-g": "800000",
        },
    ]
    # Each reading that changed something was notified to the mitigation's observers, telemetry included.
    notified = [e.snapshot[SCOPE]["scope"][0] for e in events if isinstance(e, MitigationChanged)]
    assert notified[-1][TAT] == entry[TAT]


def test_counters_that_stop_moving_are_notified_once_as_a_zero_current_rate(harness: Harness):
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    key = f"{ALPHA_CUID}/1"
    feed(harness, key, [(0, 0, 0), (10, 10_000, 1_000_000)])
    changed = feed(harness, key, [(10, 10_000, 1_000_000)])
    assert [e for e in changed if isinstance(e, MitigationChanged)]  # the counters did not move, the rate did
    assert scope_entry(harness, 1)[TAT][0]["current-g"] == "0"


def test_no_telemetry_attributes_unless_the_client_set_server_originated_telemetry_rfc9244_9_2(harness: Harness):
    assert setup(harness, CONFIG) == "2.01"  # the default: false
    mitigate(harness, 1, "2001:db8:6401::1/128")
    feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (10, 20_000, 2_000_000)])
    entry = scope_entry(harness, 1)
    assert entry["pkts-dropped"] == "20000"
    assert TAT not in entry


def test_a_server_that_does_not_send_it_refuses_the_setting_rfc9244_7_1_1(tmp_path: Path):
    harness = make(tmp_path, server_originated=False)
    assert setup(harness, {"server-originated-telemetry": True}) == "4.22"


def test_the_default_configuration_applies_to_what_the_client_did_not_convey(harness: Harness):
    """Only server-originated-telemetry set: the server's defaults (hour, minute, 10/50/90, every unit class)."""
    assert setup(harness, {"server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (30, 3_000, 30_000), (60, 6_000, 60_000)])
    (packets, bits, bytes_) = scope_entry(harness, 1)[TAT]
    assert (packets["unit"], bits["unit"], bytes_["unit"]) == ("packet-ps", "bit-ps", "byte-ps")
    assert (packets["peak-g"], bits["peak-g"], bytes_["peak-g"]) == ("100", "8000", "1000")


def test_c_equals_c_leaves_the_telemetry_attributes_out_rfc9132_4_4_2(harness: Harness):
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (10, 20_000, 2_000_000)])
    (entry,) = harness.get(1, query=("c=c",)).body[SCOPE]["scope"]
    assert TAT not in entry
    (entry,) = harness.get(1, query=("c=n",)).body[SCOPE]["scope"]
    assert TAT in entry


# --- §8.3: /tm for a target-only request ---------------------------------------------------------------------------


def tm_request(harness: Harness, tmid: int, prefix: str, peer=ALPHA, cuid: str = ALPHA_CUID) -> str:
    body = {TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": [prefix]}}]}}
    return harness.request("PUT", ("tm", f"cuid={cuid}", f"tmid={tmid}"), peer, payload=cbor(body)).code


def tm_get(harness: Harness, peer=ALPHA, cuid: str = ALPHA_CUID) -> list[dict[str, Any]]:
    response = harness.request("GET", ("tm", f"cuid={cuid}"), peer)
    assert response.code == "2.05"
    encode_telemetry(response.body)  # valid against ietf-dots-telemetry
    return response.body[TM]["pre-or-ongoing-mitigation"]


def test_a_target_only_tm_gets_the_summed_traffic_of_the_overlapping_mitigations_rfc9244_8_3(harness: Harness):
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    mitigate(harness, 2, "2001:db8:6401::2/128")
    mitigate(harness, 3, "192.0.2.9/32")  # outside the request's target
    assert tm_request(harness, 567, "2001:db8:6401::/64") == "2.04"
    start = harness.now
    changes = []
    for offset, one, two in [(0, 0, 0), (10, 1_000, 3_000), (20, 2_000, 6_000)]:
        harness.now = start + offset
        for mid, packets in ((1, one), (2, two), (3, 10**9 + offset)):
            harness.report_counters(f"{ALPHA_CUID}/{mid}", Counters(bytes_dropped=packets * 10, pkts_dropped=packets))
        changes += harness.server.counters_read(harness.now)
    (entry,) = tm_get(harness)
    assert entry["tmid"] == 567
    assert entry["total-attack-traffic"][0] == {
        "unit": "packet-ps",
        "low-percentile-g": "400",
        "mid-percentile-g": "400",
        "high-percentile-g": "400",
        "peak-g": "400",
        "current-g": "400",
    }
    assert TelemetryChanged("alpha", ALPHA_CUID) in changes
    # Nothing changes: no notification.
    assert harness.server.counters_read(harness.now) == []


def test_a_tm_request_never_sums_another_clients_mitigations(harness: Harness):
    """alpha and bravo both hold 192.0.2.0/24: bravo's request sees none of alpha's drops."""
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}, BRAVO, BRAVO_CUID) == "2.01"
    mitigate(harness, 1, "192.0.2.1/32")
    assert tm_request(harness, 1, "192.0.2.0/24", BRAVO, BRAVO_CUID) == "2.04"
    assert tm_request(harness, 1, "192.0.2.0/24") == "2.04"
    feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (10, 10_000, 100_000)])
    (bravos,) = tm_get(harness, BRAVO, BRAVO_CUID)
    assert "total-attack-traffic" not in bravos
    (alphas,) = tm_get(harness)
    assert alphas["total-attack-traffic"][0]["current-g"] == "1000"


def test_a_client_without_server_originated_telemetry_gets_none_in_tm(harness: Harness):
    mitigate(harness, 1, "2001:db8:6401::1/128")
    assert tm_request(harness, 1, "2001:db8:6401::/64") == "2.04"
    assert feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (10, 10_000, 100_000)]) != []  # the mitigation's counters
    (entry,) = tm_get(harness)
    assert entry == {"tmid": 1, "target": {"target-prefix": ["2001:db8:6401::/64"]}}


def test_series_of_ended_mitigations_and_deleted_requests_are_forgotten(harness: Harness):
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    assert tm_request(harness, 1, "2001:db8:6401::/64") == "2.04"
    feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (10, 10_000, 100_000)])
    telemetry = harness.server.server_telemetry
    assert telemetry._mitigations and telemetry._requests
    assert harness.delete(1).code == "2.02"
    assert harness.request("DELETE", ("tm", f"cuid={ALPHA_CUID}"), ALPHA).code == "2.02"
    harness.advance(3600)
    harness.server.counters_read(harness.now)
    assert not telemetry._mitigations and not telemetry._requests and not telemetry._rendered


def test_telemetry_changes_are_sent_no_more_often_than_the_telemetry_notify_interval_rfc9244_7_1_2(harness: Harness):
    config = {**CONFIG, "server-originated-telemetry": True, "telemetry-notify-interval": 30}
    assert setup(harness, config) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    assert tm_request(harness, 1, "2001:db8:6401::/64") == "2.04"
    key = f"{ALPHA_CUID}/1"
    feed(harness, key, [(0, 0, 0), (10, 10_000, 1_000_000)])  # the first rates: 1,000 pps, sent at once
    assert scope_entry(harness, 1)[TAT][0]["current-g"] == "1000"
    changes = feed(harness, key, [(10, 30_000, 3_000_000)])  # 2,000 pps ten seconds later: held back
    assert not [e for e in changes if isinstance(e, TelemetryChanged)]
    assert scope_entry(harness, 1)[TAT][0]["current-g"] == "1000"
    assert scope_entry(harness, 1)["pkts-dropped"] == "30000"  # the RFC 9132 counters are not held back
    assert tm_get(harness)[0]["total-attack-traffic"][0]["current-g"] == "1000"
    changes = feed(harness, key, [(20, 90_000, 9_000_000)])  # 3,000 pps, 30 s after the first were sent: sent
    assert TelemetryChanged("alpha", ALPHA_CUID) in changes
    (packets, _) = scope_entry(harness, 1)[TAT]
    assert (packets["current-g"], packets["peak-g"], packets["low-percentile-g"]) == ("3000", "3000", "1000")


def test_one_clients_setting_gives_no_other_client_telemetry(harness: Harness):
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "198.51.100.1/32", BRAVO, BRAVO_CUID)
    feed(harness, f"{BRAVO_CUID}/1", [(0, 0, 0), (10, 10_000, 1_000_000)])
    entry = scope_entry(harness, 1, BRAVO, BRAVO_CUID)
    assert entry["pkts-dropped"] == "10000" and TAT not in entry


def test_no_samples_are_kept_for_a_client_that_did_not_ask(harness: Harness):
    mitigate(harness, 1, "2001:db8:6401::1/128")
    feed(harness, f"{ALPHA_CUID}/1", [(0, 0, 0), (10, 10_000, 1_000_000)])
    assert harness.server.server_telemetry._mitigations == {}


def test_a_get_with_uri_query_filters_sums_only_the_mitigations_they_match_rfc9244_8_3(harness: Harness):
    """'The aggregate assumes that Uri-Query filters are applied on the target': an observer of
    target-prefix=…::1/128 hears mitigation 1's rate, an unfiltered one the sum of 1 and 2."""
    assert setup(harness, {**CONFIG, "server-originated-telemetry": True}) == "2.01"
    mitigate(harness, 1, "2001:db8:6401::1/128")
    mitigate(harness, 2, "2001:db8:6401::2/128")
    assert tm_request(harness, 567, "2001:db8:6401::/64") == "2.04"
    narrow = ("target-prefix=2001:db8:6401::1/128",)

    def get(query: tuple[str, ...]) -> dict[str, Any]:
        response = harness.request("GET", ("tm", f"cuid={ALPHA_CUID}"), ALPHA, query=query)
        assert response.code == "2.05"
        encode_telemetry(response.body)
        (entry,) = response.body[TM]["pre-or-ongoing-mitigation"]
        return entry

    assert "total-attack-traffic" not in get(narrow)  # asked for the first time: no history yet
    start = harness.now
    for offset, one, two in [(0, 0, 0), (10, 1_000, 3_000)]:
        harness.now = start + offset
        for mid, packets in ((1, one), (2, two)):
            harness.report_counters(f"{ALPHA_CUID}/{mid}", Counters(bytes_dropped=packets * 10, pkts_dropped=packets))
        harness.server.counters_read(harness.now)
    assert get(narrow)["total-attack-traffic"][0]["current-g"] == "100"
    assert get(())["total-attack-traffic"][0]["current-g"] == "400"
