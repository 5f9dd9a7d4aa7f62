"""Conflicts on a Call Home DOTS server (RFC 9066): requests overlap only when their sources do too, and a request
about traffic the CPE's administrator classified as legitimate gets 4.09 with conflict cause 4 (§5.3.1, §7.2)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from opendots.model import decode_signal, encode_signal
from tests.helpers.signal_harness import BRAVO, BRAVO_CUID, make_harness, scope_body

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
SOURCE = "ietf-dots-call-home:source-prefix"
PORTS = "ietf-dots-call-home:source-port-range"
TARGET = "203.0.113.7/32"


def call_home_body(source: str, **members) -> dict:
    return scope_body(target_prefix=[TARGET], **{SOURCE: [source]}, **members)


def test_two_providers_asking_about_different_sources_toward_one_target_both_get_their_mitigation(
    tmp_path: Path,
) -> None:
    harness = make_harness(tmp_path, call_home=True)
    assert harness.put(1, call_home_body("192.0.2.10/32")).code == "2.01"
    other = harness.put(1, call_home_body("192.0.2.20/32"), cuid=BRAVO_CUID, peer=BRAVO)
    assert other.code == "2.01", other.diagnostic
    assert harness.get(1).code == "2.05" and harness.get(1, cuid=BRAVO_CUID, peer=BRAVO).code == "2.05"


def test_requests_about_common_sources_toward_one_target_still_conflict_across_providers(tmp_path: Path) -> None:
    harness = make_harness(tmp_path, call_home=True)
    assert harness.put(1, call_home_body("192.0.2.0/28")).code == "2.01"
    other = harness.put(1, call_home_body("192.0.2.10/32"), cuid=BRAVO_CUID, peer=BRAVO)
    assert other.code == "4.09"
    info = other.body[SCOPE]["scope"][0]["conflict-information"]
    assert info["conflict-cause"] == "overlapping-targets"


def test_a_providers_own_requests_about_disjoint_source_ports_are_two_mitigations(tmp_path: Path) -> None:
    harness = make_harness(tmp_path, call_home=True)
    low = call_home_body("192.0.2.10/32", **{PORTS: [{"lower-port": 1024, "upper-port": 2047}]})
    high = call_home_body("192.0.2.10/32", **{PORTS: [{"lower-port": 4096, "upper-port": 8191}]})
    assert harness.put(1, low).code == "2.01"
    assert harness.put(2, high).code == "2.01"
    assert harness.get(1).code == "2.05", "a later request about other source ports must not supersede mid 1"
    both = call_home_body("192.0.2.10/32", **{PORTS: [{"lower-port": 2000, "upper-port": 5000}]})
    assert harness.put(3, both).code == "2.01"
    assert harness.get(1).code == "4.04" and harness.get(2).code == "4.04"  # superseded (RFC 9132 §4.4.1)


def test_a_request_naming_legitimate_traffic_is_refused_with_conflict_cause_4_rfc9066_7_2(tmp_path: Path) -> None:
    harness = make_harness(tmp_path, call_home=True, legitimate_sources=(ipaddress.ip_network("192.0.2.53/32"),))
    response = harness.put(1, call_home_body("192.0.2.48/29"))
    assert response.code == "4.09"
    assert "192.0.2.53/32" in response.diagnostic and "legitimate" in response.diagnostic
    info = response.body[SCOPE]["scope"][0]["conflict-information"]
    assert info == {"conflict-cause": "request-rejected-legitimate-traffic"}
    assert harness.get(1).code == "4.04"
    assert harness.put(2, call_home_body("192.0.2.40/29")).code == "2.01"  # beside it: accepted


def test_conflict_cause_4_travels_as_cbor_value_4_rfc9066_7_2() -> None:
    body = {SCOPE: {"scope": [{"conflict-information": {"conflict-cause": "request-rejected-legitimate-traffic"}}]}}
    payload = encode_signal(body)
    assert payload.endswith(bytes([0x04]))  # the enum's registered value, not its label
    assert decode_signal(payload) == body
