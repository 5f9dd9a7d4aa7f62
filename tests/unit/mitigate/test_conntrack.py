"""RFC 9066 §5.3.2 address sharing at a NAT CPE: real `conntrack -L` output → the internal hosts a provider's
external source names (tests/fixtures/conntrack/README section of tests/fixtures/README.md says how it was taken)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from opendots.domain import MitigationScope, PortRange
from opendots.mitigate.conntrack import internal_hosts, mapped_scope, parse_conntrack

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "conntrack"
PUBLIC = [ipaddress.ip_network("198.51.100.2/32")]
net = ipaddress.ip_network
ip = ipaddress.ip_address


def flows(name: str = "masquerade_udp_tcp.txt"):
    return parse_conntrack((FIXTURES / name).read_text())


def scope(**members) -> MitigationScope:
    members.setdefault("target_prefixes", (net("198.51.100.9/32"),))
    members.setdefault("source_prefixes", (net("198.51.100.2/32"),))
    return MitigationScope("k", **members)


def test_plain_and_extended_conntrack_listings_give_the_same_flows_with_both_tuples() -> None:
    plain, extended = flows(), flows("masquerade_extended.txt")
    assert plain == extended and len(plain) == 5
    translated = next(f for f in plain if f.inside_port == 40001 and f.outside_port == 1518)
    assert (translated.inside, translated.remote, translated.outside) == (
        ip("192.168.7.11"),
        ip("198.51.100.9"),
        ip("198.51.100.2"),
    )
    assert translated.protocol == 17 and translated.remote_port == 5005 and translated.translated
    own = next(f for f in plain if f.inside_port == 4647)
    assert not own.translated  # the CPE's own flow (its Call Home session) names no internal host


def test_the_public_address_and_a_translated_port_name_exactly_the_host_behind_them_rfc9066_5_3_2() -> None:
    table = flows()
    assert internal_hosts(scope(source_port_ranges=(PortRange(1518, 1518),)), table, PUBLIC) == [ip("192.168.7.11")]
    assert internal_hosts(scope(source_port_ranges=(PortRange(40002, 40002),)), table, PUBLIC) == [ip("192.168.7.10")]
    # A range over both hosts' translated ports names both; the public address alone names every translated flow.
    both = scope(source_port_ranges=(PortRange(1000, 40001),))
    assert internal_hosts(both, table, PUBLIC) == [ip("192.168.7.10"), ip("192.168.7.11")]
    assert set(internal_hosts(scope(), table, PUBLIC)) == {ip("192.168.7.10"), ip("192.168.7.11")}


def test_target_protocol_and_port_narrow_the_flows_to_those_toward_the_attack_target() -> None:
    table = flows("masquerade_tcp_established.txt")
    assert internal_hosts(scope(target_protocols=(6,)), table, PUBLIC) == [ip("192.168.7.11")]
    assert internal_hosts(scope(target_port_ranges=(PortRange(80, 80),)), table, PUBLIC) == [ip("192.168.7.11")]
    assert internal_hosts(scope(target_prefixes=(net("203.0.113.0/24"),)), table, PUBLIC) == []


def test_a_source_that_is_not_a_public_address_of_the_cpe_is_not_looked_up() -> None:
    internal = scope(source_prefixes=(net("192.168.7.10/32"),))
    assert internal_hosts(internal, flows(), PUBLIC) == []
    assert mapped_scope(internal, [ip("192.168.7.11")], PUBLIC) is internal


def test_the_mapped_scope_filters_the_internal_hosts_toward_the_target_whatever_their_own_ports() -> None:
    asked = scope(
        source_prefixes=(net("198.51.100.2/32"), net("192.168.7.50/32")), source_port_ranges=(PortRange(1518, 1518),)
    )
    enforced = mapped_scope(asked, [ip("192.168.7.11")], PUBLIC)
    assert enforced.source_prefixes == (net("192.168.7.50/32"), net("192.168.7.11/32"))
    assert enforced.source_port_ranges == () and enforced.target_prefixes == asked.target_prefixes
    # Nothing matched yet: the external source stays, which matches nothing on the LAN side.
    assert mapped_scope(asked, [], PUBLIC) is asked


@pytest.mark.parametrize(
    "line",
    [
        "",
        "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.",
        "udp 17 29 src=192.168.7.10 dst=198.51.100.9 sport=1 dport=2",  # no reply tuple
        "udp 17 29 src=not-an-address dst=198.51.100.9 src=198.51.100.9 dst=198.51.100.2",
        "udp x 29 src=192.168.7.10 dst=198.51.100.9 src=198.51.100.9 dst=198.51.100.2",
        "udp 17 29 src=192.168.7.10 " + "x=" * 600,
    ],
)
def test_lines_that_are_not_flows_are_skipped(line: str) -> None:
    assert parse_conntrack(line) == []


def test_icmp_flows_have_no_ports_and_still_map_by_address() -> None:
    line = (
        "icmp     1 29 src=192.168.7.10 dst=198.51.100.9 type=8 code=0 id=7 src=198.51.100.9 dst=198.51.100.2 "
        "type=0 code=0 id=7 mark=0 use=1"
    )
    (flow,) = parse_conntrack(line)
    assert flow.protocol == 1 and flow.inside_port is None and flow.outside_port is None
    assert internal_hosts(scope(), [flow], PUBLIC) == [ip("192.168.7.10")]
    assert internal_hosts(scope(source_port_ranges=(PortRange(1, 65535),)), [flow], PUBLIC) == []
