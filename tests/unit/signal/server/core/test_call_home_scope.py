"""RFC 9066 §5.3.1 on a Call Home DOTS server: the source members are read, checked against the prefixes the Call
Home DOTS client may ask about, stored, replayed in GET and restored; a base DOTS server still refuses them."""

from __future__ import annotations

from pathlib import Path

from opendots.domain.ranges import PortRange
from tests.helpers.signal_harness import ALPHA, make_harness, scope_body

SOURCE = "ietf-dots-call-home:source-prefix"
PORTS = "ietf-dots-call-home:source-port-range"
ICMP = "ietf-dots-call-home:source-icmp-type-range"


def call_home_body(**members) -> dict:
    entry = {"target-prefix": ["203.0.113.7/32"], SOURCE: ["192.0.2.10/32"], **members}
    return scope_body(**{key.replace("-", "_"): value for key, value in entry.items()})


def test_a_call_home_server_accepts_source_members_within_its_domain_and_keeps_them_across_a_restart(
    tmp_path: Path,
) -> None:
    harness = make_harness(tmp_path, call_home=True)
    body = call_home_body(**{PORTS: [{"lower-port": 1024, "upper-port": 2047}], ICMP: [{"lower-type": 8}]})
    response = harness.put(1, body)
    assert response.code == "2.01", response.diagnostic
    scope = next(e.scope for e in harness.events if hasattr(e, "scope"))
    assert [str(p) for p in scope.source_prefixes] == ["192.0.2.10/32"]
    assert scope.source_port_ranges == (PortRange(1024, 2047),)
    entry = harness.get(1).body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]
    assert entry[SOURCE] == ["192.0.2.10/32"] and entry["target-prefix"] == ["203.0.113.7/32"]
    harness.restart()
    entry = harness.get(1).body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]
    assert entry[SOURCE] == ["192.0.2.10/32"]


def test_a_source_prefix_outside_the_call_home_servers_domain_is_refused_rfc9066_5_3_1(tmp_path: Path) -> None:
    harness = make_harness(tmp_path, call_home=True)
    response = harness.put(1, call_home_body(**{SOURCE: ["198.51.100.1/32"]}))
    assert response.code == "4.00"
    assert "source-prefix 198.51.100.1/32" in response.diagnostic
    assert harness.get(1).code == "4.04"


def test_any_routable_target_prefix_is_in_scope_of_a_call_home_client_rfc9066_5_3_1(tmp_path: Path) -> None:
    # 203.0.113.7 is not among ALPHA's prefixes: a base server would refuse it as a target.
    assert not ALPHA.covers_prefix(__import__("ipaddress").ip_network("203.0.113.7/32"))
    assert make_harness(tmp_path, call_home=True).put(1, call_home_body()).code == "2.01"


def test_a_call_home_request_without_source_prefix_or_target_prefix_or_not_immediate_is_refused(
    tmp_path: Path,
) -> None:
    harness = make_harness(tmp_path, call_home=True)
    no_source = scope_body(target_prefix=["203.0.113.7/32"])
    assert harness.put(1, no_source).code == "4.00"
    no_target = scope_body(**{SOURCE.replace("-", "_"): ["192.0.2.10/32"], "target_fqdn": ["www.example.com"]})
    response = harness.put(2, no_target)
    assert response.code == "4.00" and "target-prefix" in response.diagnostic
    response = harness.put(3, call_home_body(trigger_mitigation=False))
    assert response.code == "4.00" and "immediate" in response.diagnostic


def test_a_base_dots_server_still_refuses_the_call_home_source_members(tmp_path: Path) -> None:
    harness = make_harness(tmp_path)
    response = harness.put(1, scope_body(target_prefix=["192.0.2.1/32"], **{SOURCE: ["192.0.2.10/32"]}))
    assert response.code == "4.00" and "source-prefix" in response.diagnostic
