"""Server-originated telemetry per protocol and per port (RFC 9244 §8.3 'total-traffic-protocol',
'total-traffic-port'): from the mitigators' counts only, absent when not every summed mitigation was counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.domain import Counters
from opendots.model import decode_signal, encode_signal, encode_telemetry, json_to_cbor
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, SCOPE, Harness

SETUP = "ietf-dots-telemetry:telemetry-setup"
TM = "ietf-dots-telemetry:telemetry"
CONFIG = {
    "measurement-interval": "5-minutes",
    "measurement-sample": "second",
    "server-originated-telemetry": True,
    "unit-config": [
        {"unit": "packet-ps", "unit-status": True},
        {"unit": "bit-ps", "unit-status": False},
        {"unit": "byte-ps", "unit-status": False},
    ],
}


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    policy = TelemetryPolicy(server_originated=True)
    return Harness(tmp_path / "signal.db", ServerSettings(clients=[ALPHA, BRAVO], telemetry=policy))


def request(harness: Harness, method: str, path: tuple[str, ...], body: dict[str, Any]) -> str:
    return harness.request(method, path, ALPHA, payload=cbor2.dumps(json_to_cbor(body))).code


def counted(packets: int, protocols: dict[int, int] | None, ports: dict[int, int] | None) -> Counters:
    """PACKETS dropped; per protocol and port, all the packets toward the target (10 bytes each)."""
    return Counters(
        bytes_dropped=packets * 10,
        pkts_dropped=packets,
        by_protocol=None if protocols is None else tuple((p, n, n * 10) for p, n in protocols.items()),
        by_port=None if ports is None else tuple((p, n, n * 10) for p, n in ports.items()),
    )


def readings(harness: Harness, series: dict[int, list[Counters]]) -> None:
    start = harness.now
    for step in range(len(next(iter(series.values())))):
        harness.now = start + 10 * step
        for mid, values in series.items():
            harness.report_counters(f"{ALPHA_CUID}/{mid}", values[step])
        harness.server.counters_read(harness.now)


def tm_entry(harness: Harness) -> dict[str, Any]:
    response = harness.request("GET", ("tm", f"cuid={ALPHA_CUID}"), ALPHA)
    assert response.code == "2.05"
    encode_telemetry(response.body)  # valid against ietf-dots-telemetry: keys 'unit protocol', 'unit port'
    (entry,) = response.body[TM]["pre-or-ongoing-mitigation"]
    return entry


def start(harness: Harness, *prefixes: str) -> None:
    assert request(harness, "PUT", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=1"), {SETUP: {"telemetry": [
        {"current-config": CONFIG}]}}) == "2.01"  # fmt: skip
    for mid, prefix in enumerate(prefixes, start=1):
        assert harness.put(mid, {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 3600}]}}).code == "2.01"
    body = {TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": ["192.0.2.0/24"]}}]}}
    assert request(harness, "PUT", ("tm", f"cuid={ALPHA_CUID}", "tmid=1"), body) == "2.04"


def test_a_target_only_tm_gets_the_traffic_per_protocol_and_port_the_mitigators_counted_rfc9244_8_3(
    harness: Harness,
) -> None:
    start(harness, "192.0.2.1/32", "192.0.2.2/32")
    readings(harness, {
        1: [counted(0, {6: 0, 17: 0}, {53: 0}), counted(100, {6: 1_000, 17: 3_000}, {53: 2_000})],
        2: [counted(0, {17: 0}, {53: 0, 80: 0}), counted(0, {17: 500}, {53: 100, 80: 400})],
    })  # fmt: skip
    entry = tm_entry(harness)
    per_protocol = {(e["unit"], e["protocol"]): e["current-g"] for e in entry["total-traffic-protocol"]}
    assert per_protocol == {("packet-ps", 6): "100", ("packet-ps", 17): "350"}  # the two mitigations summed
    per_port = {(e["unit"], e["port"]): e["current-g"] for e in entry["total-traffic-port"]}
    assert per_port == {("packet-ps", 53): "210", ("packet-ps", 80): "40"}
    assert entry["total-traffic-protocol"][0]["peak-g"] == "100"


def test_no_breakdown_when_a_summed_mitigation_was_not_counted_per_protocol_rfc9244_8_3(harness: Harness) -> None:
    """A partial sum would be a false figure: the mitigator of mitigation 2 (BGP, or nftables without
    count_breakdown) counts no protocols."""
    start(harness, "192.0.2.1/32", "192.0.2.2/32")
    readings(harness, {
        1: [counted(0, {17: 0}, {53: 0}), counted(100, {17: 3_000}, {53: 2_000})],
        2: [counted(0, None, None), counted(50, None, None)],
    })  # fmt: skip
    entry = tm_entry(harness)
    assert "total-traffic-protocol" not in entry and "total-traffic-port" not in entry
    assert entry["total-attack-traffic"][0]["current-g"] == "15"  # what was measured is still there


def test_a_mitigation_status_never_carries_the_breakdown_rfc9244_9_2(harness: Harness) -> None:
    """§9.2's augment of the mitigation scope has no per-protocol or per-port lists."""
    start(harness, "192.0.2.1/32")
    readings(harness, {1: [counted(0, {17: 0}, {53: 0}), counted(100, {17: 3_000}, {53: 2_000})]})
    response = harness.get(1)
    (entry,) = decode_signal(encode_signal(response.body))[SCOPE]["scope"]
    assert "ietf-dots-telemetry:total-attack-traffic" in entry
    assert not [name for name in entry if "protocol" in name or name.endswith("-port")]
