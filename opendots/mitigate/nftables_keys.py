"""The match keys of the nftables mitigator, as pure data: which maps a mitigation scope's elements go to.

Part of the ruleset planner (opendots.mitigate.nftables_ruleset, whose docstring explains the table's layout): a
scope becomes element keys (numeric ranges per matched field) in maps identified by MapId.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from opendots.domain import IPNetwork, MitigationScope, network_bounds
from opendots.domain.scope import scope_problem
from opendots.mitigate.base import MitigatorError

Range = tuple[int, int]  # inclusive numeric range: an address block, a protocol set, a port range
ElementKey = tuple[Range, ...]
JsonCommand = dict[str, Any]

ANY_PORT: Range = (0, 65535)
ANY_PROTOCOL: Range = (0, 255)
# Protocols whose transport header starts with source and destination ports (TCP, DCCP, UDP, SCTP, UDP-Lite):
# a port range only means something for these; other listed protocols are matched whatever their payload.
PORT_PROTOCOLS = (6, 17, 33, 132, 136)
MAX_ELEMENTS_PER_SCOPE = 200_000
ICMP_PROTOCOL = {4: 1, 6: 58}  # the protocol whose types source-icmp-type-range names, per address family
MIN_CAPACITY = 256  # smallest `size` given to a hash map; a map gets twice its elements, rounded up to a power of 2


class Shape(Enum):
    """Which packet fields a map matches, in concatenation order."""

    DST = ("daddr",)
    DST_PROTO = ("daddr", "l4proto")
    DST_PROTO_PORT = ("daddr", "l4proto", "dport")
    SRC_DST_PROTO = ("saddr", "daddr", "l4proto")
    SRC_DST_PROTO_PORTS = ("saddr", "daddr", "l4proto", "sport", "dport")
    SRC_DST_ICMP = ("saddr", "daddr", "icmptype")  # RFC 9066 source-icmp-type-range: ICMP or ICMPv6 by family


@dataclass(frozen=True)
class MapId:
    """One map: an address family, a shape, whether its keys are exact values (a hash) or ranges, and for the
    destination-only hash maps the prefix length they hold (their rule masks the address to it)."""

    version: int  # 4 or 6
    shape_name: str
    exact: bool = False
    prefix_len: int | None = None
    filter: bool = False  # a set (no data): destination blocks masked to prefix_len, or (no length) a port gate

    @property
    def shape(self) -> Shape:
        return Shape[self.shape_name]

    @property
    def gate(self) -> bool:
        """The destination-port gate set in front of a family's port-keyed maps."""
        return self.filter and self.prefix_len is None

    @property
    def hashed(self) -> bool:
        """Kept in a hash (exact keys), so it is given a size; the others are interval sets."""
        return self.exact or self.prefix_len is not None

    @property
    def name(self) -> str:
        if self.gate:
            return f"ports{self.version}"
        if self.filter:
            return f"pre{self.version}_len{self.prefix_len}"
        if self.prefix_len is not None:
            return f"{self.shape_name.lower()}{self.version}_len{self.prefix_len}"
        return f"{self.shape_name.lower()}{self.version}{'_exact' if self.exact else ''}"

    @property
    def sort_key(self) -> tuple[int, bool, str, bool, int]:
        length = -1 if self.prefix_len is None else self.prefix_len
        return (self.version, self.filter, self.shape_name, self.exact, length)

    @property
    def rule_order(self) -> tuple[int, int, int]:
        # Destination-only: the interval map first (its ranges are already split around every more specific
        # prefix), then the per-length hash maps, longest first: the most specific prefix owns each drop.
        # Other shapes: the exact-value hash map before the ranges.
        if self.shape is Shape.DST:
            position = 0 if self.prefix_len is None else 1 + 128 - self.prefix_len
        else:
            position = 0 if self.exact else 1
        return (self.version, list(Shape).index(self.shape), position)


@functools.lru_cache(maxsize=65536)  # re-planning a map renames every owner: keep the hashing off that path
def counter_name(key: str) -> str:
    """A short, valid, stable nft object name for a mitigation key (keys may hold any characters)."""
    return "m" + hashlib.sha256(key.encode()).hexdigest()[:24]


def family_chain(version: int) -> str:
    """The chain holding the map rules of a family that has a pre-filter."""
    return f"targets{version}"


def capacity_for(count: int) -> int:
    """The `size` of a hash map created for COUNT elements: room to grow before it must be re-created."""
    return max(MIN_CAPACITY, 1 << (2 * count - 1).bit_length())


def address_range(network: IPNetwork) -> Range:
    """The (first, last) integer addresses of NETWORK."""
    _, first, last = network_bounds(network)
    return first, last


def validate_scope(scope: MitigationScope) -> None:
    problem = scope_problem(scope)
    if problem is not None:
        raise MitigatorError(problem)


def scope_elements(scope: MitigationScope) -> dict[MapId, list[ElementKey]]:
    """Every map element that enforces SCOPE, grouped by map. Raises MitigatorError for an invalid scope."""
    validate_scope(scope)
    with_ports = bool(scope.target_port_ranges or scope.source_port_ranges)
    protocols = sorted(set(scope.target_protocols))
    port_protocols = [p for p in protocols if p in PORT_PROTOCOLS] if protocols else list(PORT_PROTOCOLS)
    portless_protocols = [p for p in protocols if p not in PORT_PROTOCOLS]
    target_port_ranges = [(p.lower, p.upper) for p in scope.target_port_ranges] or [ANY_PORT]  # checked above
    source_port_ranges = [(p.lower, p.upper) for p in scope.source_port_ranges] or [ANY_PORT]
    icmp_types = [(r.lower, r.upper) for r in scope.source_icmp_type_ranges]
    with_source = bool(scope.source_prefixes or scope.source_port_ranges or icmp_types)

    elements: dict[MapId, list[ElementKey]] = {}

    def add(version: int, shape: Shape, key: ElementKey) -> None:
        # Destination-only elements go to one logical map per family; _destination_maps() lays them out.
        exact = shape is not Shape.DST and all(lower == upper for lower, upper in key)
        elements.setdefault(MapId(version, shape.name, exact), []).append(key)

    for target in scope.target_prefixes:
        destination = address_range(target)
        version = target.version
        if not with_source:
            if not protocols and not with_ports:
                add(version, Shape.DST, (destination,))
                continue
            for protocol in port_protocols if with_ports else []:
                for dport in target_port_ranges:
                    add(version, Shape.DST_PROTO_PORT, (destination, (protocol, protocol), dport))
            for protocol in portless_protocols if with_ports else protocols:
                add(version, Shape.DST_PROTO, (destination, (protocol, protocol)))
            continue
        sources = [s for s in scope.source_prefixes if s.version == version] if scope.source_prefixes else None
        if sources is None:
            sources = [ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")]
        # With ICMP types, ICMP of this family is matched by type only: not also as a whole protocol.
        icmp = ICMP_PROTOCOL[version]
        listed = [p for p in protocols if not (icmp_types and p == icmp)]
        for source in sources:
            saddr = address_range(source)
            for icmp_type in icmp_types:
                add(version, Shape.SRC_DST_ICMP, (saddr, destination, icmp_type))
            if icmp_types and not with_ports and not listed:
                continue  # only ICMP was asked about
            if not with_ports:
                for protocol_range in [(p, p) for p in listed] or [ANY_PROTOCOL]:
                    add(version, Shape.SRC_DST_PROTO, (saddr, destination, protocol_range))
                continue
            for protocol in port_protocols:
                for sport in source_port_ranges:
                    for dport in target_port_ranges:
                        add(
                            version, Shape.SRC_DST_PROTO_PORTS, (saddr, destination, (protocol, protocol), sport, dport)
                        )
            for protocol in portless_protocols:
                if not (icmp_types and protocol == icmp):
                    add(version, Shape.SRC_DST_PROTO, (saddr, destination, (protocol, protocol)))
    total = sum(len(keys) for keys in elements.values())
    if total == 0:
        raise MitigatorError(f"mitigation {scope.key}: no source prefix of the target's address family")
    if total > MAX_ELEMENTS_PER_SCOPE:
        raise MitigatorError(f"mitigation {scope.key}: {total} match entries, more than {MAX_ELEMENTS_PER_SCOPE}")
    return elements


def split_nested(intervals: Iterable[tuple[Range, str | None]]) -> dict[Range, str | None]:
    """Disjoint ranges from CIDR ranges (any two nested or disjoint), each owned by its most specific block.

    For identical ranges the first one given wins.
    """
    first: dict[Range, str | None] = {}
    for block, owner in intervals:
        first.setdefault(block, owner)
    result: dict[Range, str | None] = {}
    stack: list[list[Any]] = []  # [upper, owner, next uncovered address]

    def close_below(limit: int) -> None:
        while stack and stack[-1][0] < limit:
            upper, owner, cursor = stack.pop()
            if cursor <= upper:
                result[(cursor, upper)] = owner
            if stack:
                stack[-1][2] = upper + 1

    for (lower, upper), owner in sorted(first.items(), key=lambda item: (item[0][0], -item[0][1])):
        close_below(lower)
        if stack and stack[-1][1] == owner:
            continue  # inside a block of the same owner: nothing to split
        if stack and stack[-1][2] <= lower - 1:
            result[(stack[-1][2], lower - 1)] = stack[-1][1]
        stack.append([upper, owner, lower])
    close_below(1 << 129)
    return result
