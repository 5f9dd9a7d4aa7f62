"""The domain's Targets (RFC 9132 §4.4.1.1 target members, RFC 9066 §5.3.1 source members): one parser, one writer,
and the scope a mitigator is handed; the mitigator capabilities a type checker can follow."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.domain import (
    IcmpTypeRange,
    MitigationScope,
    PortRange,
    ScopeError,
    Targets,
    mitigation_key,
    parse_targets,
)

CALL_HOME = "ietf-dots-call-home"


def test_the_source_members_of_a_call_home_scope_are_read_when_asked_for() -> None:
    entry = {
        "target-prefix": ["2001:db8:6401::1/128"],
        f"{CALL_HOME}:source-prefix": ["2001:db8:123::/128", "2001:db8:123::/128"],
        f"{CALL_HOME}:source-port-range": [{"lower-port": 1024, "upper-port": 2048}, {"lower-port": 53}],
        f"{CALL_HOME}:source-icmp-type-range": [{"lower-type": 3}, {"lower-type": 8, "upper-type": 9}],
    }
    targets = parse_targets(entry, source_members=True)
    assert targets.source_prefixes == (ipaddress.ip_network("2001:db8:123::/128"),)  # repeats dropped
    assert targets.source_port_ranges == (PortRange(1024, 2048), PortRange(53))
    assert targets.source_icmp_type_ranges == (IcmpTypeRange(3), IcmpTypeRange(8, 9))
    assert targets.to_yang() == {**entry, f"{CALL_HOME}:source-prefix": ["2001:db8:123::/128"]}
    # A plain signal-channel scope does not read them (the server refuses them as unknown members).
    assert parse_targets(entry).source_prefixes == ()


@pytest.mark.parametrize(
    ("member", "value", "words"),
    [
        ("source-prefix", ["192.0.2.1/24"], "invalid source-prefix '192.0.2.1/24': 192.0.2.1/24 has host bits set"),
        ("source-prefix", ["127.0.0.1/32"], "source-prefix '127.0.0.1/32' is a loopback"),
        ("source-prefix", "192.0.2.0/24", "must be a list of str"),
        ("source-port-range", [{"lower-port": 70000}], "port 70000 is not in 0..65535"),
        ("source-port-range", [{"lower-port": 9, "upper-port": 8}], "source-port-range upper-port 8 is below"),
        ("source-port-range", [{"lower-port": 9}, {"lower-port": 9}], "lists lower-port 9 twice"),
        ("source-icmp-type-range", [{"lower-type": 256}], "type 256 is not in 0..255"),
        ("source-icmp-type-range", [{"lower-type": 9, "upper-type": 3}], "upper-type 3 is below lower-type 9"),
        ("source-icmp-type-range", [{"lower-port": 1}], "holds 'lower-type'"),
    ],
)
def test_bad_source_members_get_the_one_error_naming_the_member(member: str, value: Any, words: str) -> None:
    with pytest.raises(ScopeError, match=words):
        parse_targets({"target-prefix": ["203.0.113.0/24"], f"{CALL_HOME}:{member}": value}, source_members=True)


_v4 = st.builds(
    lambda address, length: ipaddress.ip_network((address & ~((1 << (32 - length)) - 1), length)),
    st.integers(0x01000000, 0x7EFFFFFF),  # clear of 0/8 and loopback: no prefix here is refused for what it is
    st.integers(8, 32),
)
_v6 = st.builds(
    lambda address, length: ipaddress.ip_network((address & ~((1 << (128 - length)) - 1), length)),
    st.integers(0x2001 << 112, (0x2001 << 112) + (1 << 112) - 1),
    st.integers(16, 128),
)
_ports = st.lists(
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(lambda p: PortRange(min(p), max(p))),
    max_size=4,
    unique_by=lambda r: r.lower,
)
_types = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(lambda t: IcmpTypeRange(min(t), max(t))),
    max_size=3,
    unique_by=lambda r: r.lower,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_v4, _v6), min_size=1, max_size=4, unique=True),
    _ports,
    st.lists(st.integers(0, 255), max_size=3, unique=True),
    st.lists(st.one_of(_v4, _v6), max_size=3, unique=True),
    _ports,
    _types,
)
def test_targets_written_as_yang_json_read_back_equal(
    prefixes: list[Any],
    ports: list[PortRange],
    protocols: list[int],
    sources: list[Any],
    source_port_ranges: Any,
    types: Any,
) -> None:
    targets = Targets(
        target_prefixes=tuple(prefixes),
        target_port_ranges=tuple(ports),
        target_protocols=tuple(protocols),
        source_prefixes=tuple(sources),
        source_port_ranges=tuple(source_port_ranges),
        source_icmp_type_ranges=tuple(types),
    )
    document = targets.to_yang()
    assert all(str(p) == p.with_prefixlen for p in prefixes)  # canonical text: no host bits on the wire
    assert parse_targets(document, source_members=True) == targets


def test_a_single_port_or_type_is_written_without_its_upper_bound() -> None:
    assert PortRange(53) == PortRange(53, 53) and PortRange(53).to_yang() == {"lower-port": 53}
    assert PortRange(1, 2).to_yang() == {"lower-port": 1, "upper-port": 2}
    assert IcmpTypeRange(8).to_yang() == {"lower-type": 8}


def test_merged_targets_keep_every_member_once_source_members_too() -> None:
    net = ipaddress.ip_network
    first = Targets(target_prefixes=(net("192.0.2.0/24"),), source_prefixes=(net("198.51.100.0/24"),))
    second = Targets(target_prefixes=(net("192.0.2.0/24"), net("2001:db8::/32")), source_port_ranges=(PortRange(53),))
    merged = first.merged(second)
    assert merged.target_prefixes == (net("192.0.2.0/24"), net("2001:db8::/32"))
    assert merged.source_prefixes == (net("198.51.100.0/24"),) and merged.source_port_ranges == (PortRange(53),)


def test_the_scope_handed_to_a_mitigator_says_whose_mitigation_it_is() -> None:
    net = ipaddress.ip_network
    targets = Targets(
        target_prefixes=(net("203.0.113.0/24"),),
        target_port_ranges=(PortRange(53),),
        target_protocols=(17,),
        target_fqdns=("www.example.com",),
        source_prefixes=(net("198.51.100.0/24"),),
        source_port_ranges=(PortRange(123),),
    )
    scope = MitigationScope.of(targets, "alice", "cuid-a", 7)
    assert (scope.client, scope.cuid, scope.mid, scope.key) == ("alice", "cuid-a", 7, mitigation_key("cuid-a", 7))
    assert scope.target_prefixes == targets.target_prefixes and scope.target_port_ranges == targets.target_port_ranges
    assert scope.target_protocols == (17,)
    assert scope.source_prefixes == targets.source_prefixes and scope.source_port_ranges == targets.source_port_ranges


def test_mitigator_capabilities_are_protocols_an_isinstance_check_answers() -> None:
    from opendots.mitigate.base import (
        AclActuator,
        AclPlanner,
        BatchCounters,
        Lifecycle,
        LoggingMitigator,
        Mitigator,
        Restorable,
    )
    from opendots.mitigate.bgp.mitigator import BgpMitigator
    from opendots.mitigate.nftables import NftablesMitigator
    from opendots.mitigate.router import Assignment, MitigatorRouter

    logging_only = LoggingMitigator()
    assert isinstance(logging_only, Mitigator)
    assert not isinstance(logging_only, Lifecycle | Restorable | BatchCounters | AclActuator)
    nft = NftablesMitigator("eth0")
    assert isinstance(nft, Mitigator) and isinstance(nft, Restorable | BatchCounters)
    assert isinstance(nft, AclActuator) and not isinstance(nft, Lifecycle | AclPlanner)
    assert issubclass(BgpMitigator, Lifecycle) and issubclass(BgpMitigator, Restorable)
    router = MitigatorRouter([Assignment(logging_only)])
    for capability in (Mitigator, Lifecycle, Restorable, BatchCounters, AclActuator, AclPlanner):
        assert isinstance(router, capability)
