"""RFC 9066 source-icmp-type-range in the nftables planner: ICMP (by the target's family) matched by type."""

from __future__ import annotations

import ipaddress

import pytest

from opendots.domain import IcmpTypeRange, MitigationScope, PortRange, Targets
from opendots.mitigate.base import MitigatorError
from opendots.mitigate.nftables_keys import Shape, scope_elements

net = ipaddress.ip_network


def shapes(**members) -> dict[str, list]:
    scope = MitigationScope("k", (net("203.0.113.2/32"), net("2001:db8:b::2/128")), source_prefixes=(
        net("10.77.0.10/32"), net("2001:db8:77::10/128")), **members)  # fmt: skip
    found: dict[str, list] = {}
    for map_id, keys in scope_elements(scope).items():
        found.setdefault(f"{map_id.shape_name}{map_id.version}", []).extend(keys)
    return found


def test_icmp_types_alone_match_icmp_of_those_types_only_in_each_family() -> None:
    found = shapes(source_icmp_type_ranges=(IcmpTypeRange(8), IcmpTypeRange(128, 129)))
    assert set(found) == {"SRC_DST_ICMP4", "SRC_DST_ICMP6"}
    assert [key[2] for key in found["SRC_DST_ICMP4"]] == [(8, 8), (128, 129)]
    assert Shape.SRC_DST_ICMP.value[-1] == "icmptype"


def test_with_icmp_types_icmp_as_a_listed_protocol_is_not_dropped_whole() -> None:
    found = shapes(source_icmp_type_ranges=(IcmpTypeRange(8),), target_protocols=(1, 17))
    assert [key[2] for key in found["SRC_DST_PROTO4"]] == [(17, 17)]  # UDP whole; ICMP by type only
    assert "SRC_DST_ICMP4" in found


def test_icmp_types_beside_source_ports_keep_both() -> None:
    found = shapes(source_icmp_type_ranges=(IcmpTypeRange(8),), source_port_ranges=(PortRange(1024, 2047),))
    assert "SRC_DST_ICMP4" in found and "SRC_DST_PROTO_PORTS4" in found and "SRC_DST_PROTO4" not in found


def test_an_icmp_type_outside_0_255_is_refused() -> None:
    with pytest.raises(MitigatorError, match="invalid ICMP type range 8-300"):
        shapes(source_icmp_type_ranges=(IcmpTypeRange(8, 300),))


def test_the_scope_of_a_mitigation_carries_its_icmp_types_from_the_targets() -> None:
    targets = Targets(target_prefixes=(net("203.0.113.2/32"),), source_icmp_type_ranges=(IcmpTypeRange(8),))
    assert MitigationScope.of(targets, "isp", "cuid", 1).source_icmp_type_ranges == (IcmpTypeRange(8),)
