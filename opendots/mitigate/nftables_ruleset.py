"""The nftables ruleset of the nftables mitigator, as pure data: scopes in, one libnftables JSON batch out.

No I/O here (the shell is opendots.mitigate.nftables). Layout of the table (family netdev, one ingress base chain,
plus a regular chain per address family that has a pre-filter, and the ACL chain):

* one named counter per mitigation: exact dropped packets/bytes per DOTS mitigation;
* maps from a match key to the counter of the mitigation that owns it, and exactly one rule
  `counter name <key> map @<map> drop` per non-empty map: a few rules, however many targets;
* match shapes: destination only (so every fragment matches); destination + protocol; destination + protocol +
  destination port; and two source-aware variants for RFC 9066 call home;
* destination only: one hash map per prefix length in use (the rule masks the address to that length), for the
  MAX_HASHED_LENGTHS most used lengths per family; other lengths share an interval map;
* other shapes: keys of exact values only (a host, one protocol, one port) in a hash map, keys with a prefix or a
  range in an interval map of the same shape;
* hash maps and sets have a `size`, so the kernel picks its fixed-size hash (nft_hash, nft_hash_fast for 4-byte
  keys) instead of the resizable rhashtable (no deferred resizing after a 10,000-element batch); one that outgrows
  its size is re-created, twice as big as needed, in the same batch (capacity_for);
* a destination pre-filter per address family: when that family needs more than one lookup, or a lookup dearer
  than one address hash (concatenations, intervals: pipapo), its rules move to a chain of their own
  (`targets4`/`targets6`) that the ingress chain enters only through one `goto` rule matching the destination
  against a hash set of every target's destination block at one prefix length (see _filter_sets: a superset, so
  nothing to drop is missed). Traffic to no target then pays one address hash lookup, whatever the number and
  shape of the targets: with 10,000 prefix.port-range targets the forwarding rate went from 83 % to 94 % of the
  rate with no table, because the pipapo lookup of a concatenation of ranges is only paid by traffic to a target
  (bench/mitigate.py). Ownership and counting are unchanged: the map rules, in the same order, decide;
* a destination-port gate inside a pre-filtered family: the rules of each port-keyed shape move to a chain
  (`dports4`, `sdports4`) entered by `th dport @ports4 jump ...` at the place they had, where `ports4` is an
  interval set of every such element's destination ports. Traffic to a target host on a port no mitigation
  names then skips the concatenated lookup too (a flood to such a host/port: 69 % → 89 % of the no-table rate).

Overlaps between mitigations: identical keys are owned by the mitigation applied first (it alone counts those
drops). Destination-only prefixes are matched most specific first (the interval map's ranges are split around
every more specific prefix, then the hash maps go from the longest length down), so the most specific
mitigation counts the drop. Packets are dropped either way.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from opendots.domain import IPNetwork, MitigationScope, PortRange, network_bounds
from opendots.mitigate.base import MitigatorError
from opendots.mitigate.nftables_acl import (
    ACL_CHAIN,
    AclPolicy,
    acl_rules,
    policy_counters,
    policy_limits,
    validate_policy,
)

Range = tuple[int, int]  # inclusive numeric range: an address block, a protocol set, a port range
ElementKey = tuple[Range, ...]
JsonCommand = dict[str, Any]

ANY_PORT: Range = (0, 65535)
ANY_PROTOCOL: Range = (0, 255)
# Protocols whose transport header starts with source and destination ports (TCP, DCCP, UDP, SCTP, UDP-Lite):
# a port range only means something for these; other listed protocols are matched whatever their payload.
PORT_PROTOCOLS = (6, 17, 33, 132, 136)
MAX_ELEMENTS_PER_SCOPE = 200_000
CHAIN = "ingress"
CHAIN_PRIORITY = -500  # before any other netdev ingress chain: drop as early as the kernel allows
MAX_HASHED_LENGTHS = 6  # destination-only prefix lengths with a hash map of their own, per address family
FILTER_BUDGET = 4096  # pre-filter entries allowed (or 4 per target block, if more) before choosing a shorter length
MIN_CAPACITY = 256  # smallest `size` given to a hash map; a map gets twice its elements, rounded up to a power of 2


class Shape(Enum):
    """Which packet fields a map matches, in concatenation order."""

    DST = ("daddr",)
    DST_PROTO = ("daddr", "l4proto")
    DST_PROTO_PORT = ("daddr", "l4proto", "dport")
    SRC_DST_PROTO = ("saddr", "daddr", "l4proto")
    SRC_DST_PROTO_PORTS = ("saddr", "daddr", "l4proto", "sport", "dport")


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


def _address_range(network: IPNetwork) -> Range:
    _, first, last = network_bounds(network)
    return first, last


def _port_range(port_range: PortRange, what: str) -> Range:
    if not (0 <= port_range.lower <= port_range.upper <= 65535):
        raise MitigatorError(f"invalid {what} port range {port_range.lower}-{port_range.upper}")
    return port_range.lower, port_range.upper


def validate_scope(scope: MitigationScope) -> None:
    if not scope.key:
        raise MitigatorError("mitigation key is empty")
    if not scope.target_prefixes:
        raise MitigatorError(f"mitigation {scope.key}: no target prefix (nothing to enforce)")
    for prefix in (*scope.target_prefixes, *scope.source_prefixes):
        if not isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise MitigatorError(f"mitigation {scope.key}: {prefix!r} is not an IP prefix")
    for protocol in scope.target_protocols:
        if not (isinstance(protocol, int) and 0 <= protocol <= 255):
            raise MitigatorError(f"mitigation {scope.key}: invalid protocol number {protocol!r}")
    for port_range in scope.target_port_ranges:
        _port_range(port_range, "target")
    for port_range in scope.source_port_ranges:
        _port_range(port_range, "source")


def scope_elements(scope: MitigationScope) -> dict[MapId, list[ElementKey]]:
    """Every map element that enforces SCOPE, grouped by map. Raises MitigatorError for an invalid scope."""
    validate_scope(scope)
    with_ports = bool(scope.target_port_ranges or scope.source_port_ranges)
    protocols = sorted(set(scope.target_protocols))
    port_protocols = [p for p in protocols if p in PORT_PROTOCOLS] if protocols else list(PORT_PROTOCOLS)
    portless_protocols = [p for p in protocols if p not in PORT_PROTOCOLS]
    target_port_ranges = [_port_range(p, "target") for p in scope.target_port_ranges] or [ANY_PORT]
    source_port_ranges = [_port_range(p, "source") for p in scope.source_port_ranges] or [ANY_PORT]
    with_source = bool(scope.source_prefixes or scope.source_port_ranges)

    elements: dict[MapId, list[ElementKey]] = {}

    def add(version: int, shape: Shape, key: ElementKey) -> None:
        # Destination-only elements go to one logical map per family; _destination_maps() lays them out.
        exact = shape is not Shape.DST and all(lower == upper for lower, upper in key)
        elements.setdefault(MapId(version, shape.name, exact), []).append(key)

    for target in scope.target_prefixes:
        destination = _address_range(target)
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
        for source in sources:
            saddr = _address_range(source)
            if not with_ports:
                for protocol_range in [(p, p) for p in protocols] or [ANY_PROTOCOL]:
                    add(version, Shape.SRC_DST_PROTO, (saddr, destination, protocol_range))
                continue
            for protocol in port_protocols:
                for sport in source_port_ranges:
                    for dport in target_port_ranges:
                        add(
                            version, Shape.SRC_DST_PROTO_PORTS, (saddr, destination, (protocol, protocol), sport, dport)
                        )
            for protocol in portless_protocols:
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


# ---- JSON rendering (libnftables JSON schema, as accepted by `nft -j -f -`) ----

_FIELD_TYPES = {"l4proto": "inet_proto", "sport": "inet_service", "dport": "inet_service"}


def _field_type(field_name: str, version: int) -> str:
    if field_name in ("saddr", "daddr"):
        return "ipv4_addr" if version == 4 else "ipv6_addr"
    return _FIELD_TYPES[field_name]


def _field_expression(field_name: str, version: int) -> dict[str, Any]:
    if field_name in ("saddr", "daddr"):
        return {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": field_name}}
    if field_name == "l4proto":
        return {"meta": {"key": "l4proto"}}
    return {"payload": {"protocol": "th", "field": field_name}}


def _address_text(value: int, version: int) -> str:
    # inet_ntop is ~10x faster than str(ipaddress.IPv6Address(...)), which counts at 10,000 targets per batch.
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def _render_address(block: Range, version: int) -> Any:
    lower, upper = block
    size = upper - lower + 1
    bits = 32 if version == 4 else 128
    if size & (size - 1) == 0 and lower % size == 0:
        length = bits - (size.bit_length() - 1)
        if length == bits:
            return _address_text(lower, version)
        return {"prefix": {"addr": _address_text(lower, version), "len": length}}
    return {"range": [_address_text(lower, version), _address_text(upper, version)]}


def _render_number(value: Range) -> Any:
    return value[0] if value[0] == value[1] else {"range": [value[0], value[1]]}


def render_key(map_id: MapId, key: ElementKey) -> Any:
    if map_id.gate:
        return _render_number(key[0])
    if map_id.prefix_len is not None:
        return _address_text(key[0][0], map_id.version)  # per-length hash map: the network address itself
    parts = [
        _render_address(value, map_id.version) if field_name in ("saddr", "daddr") else _render_number(value)
        for field_name, value in zip(map_id.shape.value, key, strict=True)
    ]
    return parts[0] if len(parts) == 1 else {"concat": parts}


@dataclass(frozen=True)
class Table:
    """Where the mitigator's table lives."""

    name: str
    interface: str
    family: str = "netdev"

    def ref(self, **more: Any) -> dict[str, Any]:
        return {"family": self.family, "table": self.name, **more}

    def table_object(self) -> dict[str, Any]:
        return {"family": self.family, "name": self.name}

    def chain_object(self) -> dict[str, Any]:
        return self.ref(
            name=CHAIN,
            type="filter",
            hook="ingress",
            dev=self.interface,
            prio=CHAIN_PRIORITY,
            policy="accept",
        )

    def map_object(self, map_id: MapId, capacity: int | None = None) -> dict[str, Any]:
        """The map (or, for a pre-filter, the set) MAP_ID; CAPACITY is the `size` of a hash."""
        types = ["inet_service"] if map_id.gate else [_field_type(name, map_id.version) for name in map_id.shape.value]
        extra: dict[str, Any] = {} if map_id.hashed else {"flags": ["interval"]}
        if capacity is not None:
            extra["size"] = capacity
        if not map_id.filter:
            extra["map"] = "counter"
        return self.ref(name=map_id.name, type=types[0] if len(types) == 1 else types, **extra)

    def rule_object(self, map_id: MapId, chain: str = CHAIN, target: str | None = None) -> dict[str, Any]:
        """The one rule of MAP_ID (in CHAIN): a pre-filter's `goto` to its family chain, a port gate's `jump` to
        TARGET, or a map's counted drop."""
        if map_id.gate:
            match = {"match": {"op": "==", "left": _field_expression("dport", 0), "right": f"@{map_id.name}"}}
            return self.ref(chain=chain, expr=[match, {"jump": {"target": target}}])
        expressions = [_field_expression(name, map_id.version) for name in map_id.shape.value]
        bits = 32 if map_id.version == 4 else 128
        if map_id.prefix_len is not None and map_id.prefix_len < bits:
            mask = ((1 << map_id.prefix_len) - 1) << (bits - map_id.prefix_len)
            expressions[0] = {"&": [expressions[0], _address_text(mask, map_id.version)]}
        key = expressions[0] if len(expressions) == 1 else {"concat": expressions}
        if map_id.filter:
            match = {"match": {"op": "==", "left": key, "right": f"@{map_id.name}"}}
            return self.ref(chain=chain, expr=[match, {"goto": {"target": family_chain(map_id.version)}}])
        return self.ref(
            chain=chain,
            expr=[{"counter": {"map": {"key": key, "data": f"@{map_id.name}"}}}, {"drop": None}],
        )

    def limit_object(self, name: str, bytes_per_second: int) -> dict[str, Any]:
        return self.ref(name=name, rate=bytes_per_second, per="second", rate_unit="bytes", inv=True)

    def counter_object(self, key: str, packets: int = 0, bytes_: int = 0) -> dict[str, Any]:
        return self.ref(name=counter_name(key), comment=key[:120], packets=packets, bytes=bytes_)

    def elements(self, map_id: MapId, keys: Iterable[ElementKey], owners: Mapping[ElementKey, str] | None) -> Any:
        if owners is None or map_id.filter:
            elem = [render_key(map_id, key) for key in keys]
        else:
            elem = [[render_key(map_id, key), owners[key]] for key in keys]
        return self.ref(name=map_id.name, elem=elem)

    def reset_commands(self) -> list[JsonCommand]:
        """Create-then-delete: removes the table whether or not it exists, inside the same atomic batch."""
        return [{"add": {"table": self.table_object()}}, {"delete": {"table": self.table_object()}}]


# ---- The planner: current state + a change → one batch and the state after it ----


@dataclass
class RulesetState:
    """What this mitigator has installed in the kernel (valid once a batch of it succeeded)."""

    initialized: bool = False
    scopes: dict[str, MitigationScope] = field(default_factory=dict)  # insertion order = ownership priority
    elements: dict[str, dict[MapId, list[ElementKey]]] = field(default_factory=dict)
    installed: dict[MapId, dict[ElementKey, str]] = field(default_factory=dict)  # element → counter name
    rules: set[MapId] = field(default_factory=set)
    acls: dict[str, AclPolicy] = field(default_factory=dict)  # data-channel filtering rules, in order
    capacity: dict[MapId, int] = field(default_factory=dict)  # `size` of each installed hash map / set

    def copy(self) -> RulesetState:
        return RulesetState(
            initialized=self.initialized,
            scopes=dict(self.scopes),
            elements=dict(self.elements),
            installed={map_id: dict(owners) for map_id, owners in self.installed.items()},
            rules=set(self.rules),
            acls=dict(self.acls),
            capacity=dict(self.capacity),
        )


@dataclass
class Plan:
    commands: list[JsonCommand]
    state: RulesetState


def _desired(map_id: MapId, state: RulesetState) -> dict[ElementKey, str]:
    owned = ((element, counter_name(key)) for key in state.scopes for element in state.elements[key].get(map_id, ()))
    desired: dict[ElementKey, str] = {}
    for element, owner in owned:
        desired.setdefault(element, owner)
    return desired


def _prefix_len(block: Range, version: int) -> int:
    return (32 if version == 4 else 128) - (block[1] - block[0] + 1).bit_length() + 1


def _destination_maps(version: int, state: RulesetState) -> dict[MapId, dict[ElementKey, str]]:
    """The physical layout of the destination-only prefixes of one family.

    The MAX_HASHED_LENGTHS most used prefix lengths get a hash map each (the rule masks the address to that
    length: one O(1) lookup per length); any other length goes to the interval map. Interval ranges are split
    around every more specific prefix, hashed ones included, so whichever map matches, the most specific prefix
    owns the drop. Identical prefixes belong to the mitigation applied first.
    """
    first = _desired(MapId(version, Shape.DST.name), state)
    per_length: dict[int, int] = {}
    for (block,) in first:
        length = _prefix_len(block, version)
        per_length[length] = per_length.get(length, 0) + 1
    hashed = set(sorted(per_length, key=lambda length: (-per_length[length], -length))[:MAX_HASHED_LENGTHS])
    maps: dict[MapId, dict[ElementKey, str]] = {}
    ranged: list[tuple[Range, str | None]] = []
    for (block,), owner in first.items():
        length = _prefix_len(block, version)
        if length in hashed:
            maps.setdefault(MapId(version, Shape.DST.name, True, length), {})[(block,)] = owner
            ranged.append((block, None))  # splits the ranges of less specific prefixes, owns no range itself
        else:
            ranged.append((block, owner))
    if len(hashed) < len(per_length):
        split = split_nested(ranged)
        maps[MapId(version, Shape.DST.name)] = {(block,): owner for block, owner in split.items() if owner is not None}
    return maps


def _filter_sets(version: int, maps: set[MapId], state: RulesetState) -> dict[MapId, dict[ElementKey, str]]:
    """The destination pre-filter of one family: one hash set of destination blocks at one prefix length L, or {}.

    MAPS are the family's non-empty maps; one destination-only hash map is already a single address lookup, so it
    gets no pre-filter. L is the longest length at which the set stays within FILTER_BUDGET entries: a block
    longer than L is widened to its L-bit block (a superset: a packet to a neighbour of a target pays the map
    lookups it would have paid anyway), a shorter one is expanded into its L-bit blocks (exact). One lookup, with
    no mask at all when every target is a host, whatever the mix of prefix lengths.
    """
    if not maps or (len(maps) == 1 and all(m.shape is Shape.DST and m.prefix_len is not None for m in maps)):
        return {}
    blocks: set[Range] = set()
    for elements in state.elements.values():
        for map_id, keys in elements.items():
            if map_id.version == version:
                position = map_id.shape.value.index("daddr")
                blocks.update(key[position] for key in keys)
    lengths = sorted({_prefix_len(block, version) for block in blocks}, reverse=True)
    budget = max(FILTER_BUDGET, 4 * len(blocks))
    length = next(
        candidate
        for candidate in lengths  # at the shortest length nothing is expanded: that one always fits
        if sum(1 << max(0, candidate - _prefix_len(block, version)) for block in blocks) <= budget
    )
    if length == 0:
        return {}  # a zero-length target: everything goes to the maps anyway
    bits = 32 if version == 4 else 128
    host_bits = bits - length
    keys: dict[ElementKey, str] = {}
    for lower, upper in blocks:
        first = lower >> host_bits
        for network in range(first, max(first, upper >> host_bits) + 1):
            base = network << host_bits
            keys[((base, base | ((1 << host_bits) - 1)),)] = ""
    return {MapId(version, Shape.DST.name, True, length, filter=True): keys}


PORT_CHAINS = {Shape.DST_PROTO_PORT: "dports", Shape.SRC_DST_PROTO_PORTS: "sdports"}


def chain_layout(rules: Iterable[MapId]) -> dict[str, list[tuple[MapId, str | None]]]:
    """The rules of each chain, in evaluation order: (map or set, the chain its rule jumps to, if it does).

    The ACL jump, when any, goes before the ingress rules. A family with a pre-filter: the ingress chain has its
    `goto` and its chain (`targets4`) has its map rules; a family without: its map rules are in the ingress chain.
    When the family also has a port gate, the rules of each port-keyed shape move to a chain of their own
    (`dports4`, `sdports4`) entered by a `jump` through the gate at the place they had: same order, same owner.
    IPv4 first, then IPv6; within a family, rule_order.
    """
    rules = set(rules)
    layout: dict[str, list[tuple[MapId, str | None]]] = {CHAIN: []}
    for version in (4, 6):
        maps = sorted((m for m in rules if m.version == version and not m.filter), key=lambda m: m.rule_order)
        filters = [m for m in rules if m.version == version and m.filter and not m.gate]
        gates = [m for m in rules if m.version == version and m.gate]
        if not filters:
            layout[CHAIN] += [(map_id, None) for map_id in maps]
            continue
        family = family_chain(version)
        layout[CHAIN] += [(m, family) for m in sorted(filters, key=lambda m: -(m.prefix_len or 0))]
        layout[family] = []
        for map_id in maps:
            gated = PORT_CHAINS.get(map_id.shape) if gates else None
            if gated is None:
                layout[family].append((map_id, None))
                continue
            gated = f"{gated}{version}"
            if gated not in layout:
                layout[family].append((gates[0], gated))
                layout[gated] = []
            layout[gated].append((map_id, None))
    return layout


def _port_gate(version: int, state: RulesetState) -> dict[MapId, dict[ElementKey, str]]:
    """The destination ports of every port-keyed element of a family, merged into disjoint ranges, as the gate
    in front of those maps; {} when there is none or one of them is any port (the gate would let all through)."""
    ranges: set[Range] = set()
    for elements in state.elements.values():
        for map_id, keys in elements.items():
            if map_id.version == version and map_id.shape in PORT_CHAINS:
                position = map_id.shape.value.index("dport")
                ranges.update(key[position] for key in keys)
    if not ranges or ANY_PORT in ranges:
        return {}
    merged: list[list[int]] = []
    for lower, upper in sorted(ranges):
        if merged and lower <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], upper)
        else:
            merged.append([lower, upper])
    return {MapId(version, Shape.DST_PROTO_PORT.name, filter=True): {((lower, upper),): "" for lower, upper in merged}}


def plan_change(
    table: Table,
    current: RulesetState,
    put: Iterable[MitigationScope] = (),
    remove: Iterable[str] = (),
    carried_counters: Mapping[str, tuple[int, int]] | None = None,
    put_acls: Iterable[AclPolicy] = (),
    remove_acls: Iterable[str] = (),
) -> Plan:
    """The batch that takes CURRENT to CURRENT + PUT − REMOVE (and the same for ACLs), and the resulting state.

    From an uninitialized state the batch first removes any leftover table of the same name (a previous run), so
    what is enforced is exactly what this mitigator knows about. When nothing is left to enforce, the batch
    deletes the whole table: an idle mitigator leaves no hook on the interface. CARRIED_COUNTERS (counter name →
    packets, bytes) seeds the counters of re-created mitigations and ACEs, so a restart keeps what was counted.
    Raises MitigatorError, before anything is planned, for an invalid scope or ACL.
    """
    put = list(put)
    put_acls = list(put_acls)
    fresh = not current.initialized
    new = RulesetState(initialized=True) if fresh else current.copy()
    touched: set[MapId] = set()
    added_keys: list[str] = []
    removed_keys: list[str] = []
    for key in remove:
        if key in new.scopes:
            del new.scopes[key]
            touched.update(new.elements.pop(key))
            removed_keys.append(key)
    for scope in put:
        elements = scope_elements(scope)
        if scope.key in new.scopes:
            touched.update(new.elements[scope.key])
        else:
            added_keys.append(scope.key)
        new.scopes[scope.key] = scope
        new.elements[scope.key] = elements
        touched.update(elements)
    for policy in put_acls:
        validate_policy(policy)
        new.acls[policy.key] = policy
    for key in remove_acls:
        new.acls.pop(key, None)

    if not new.scopes and not new.acls:
        return Plan(commands=table.reset_commands(), state=RulesetState())

    carried = carried_counters or {}
    commands: list[JsonCommand] = []
    if fresh:
        commands += table.reset_commands()
        commands += [{"add": {"table": table.table_object()}}, {"add": {"chain": table.chain_object()}}]
    for key in added_keys:
        packets, bytes_ = carried.get(counter_name(key), (0, 0))
        commands.append({"add": {"counter": table.counter_object(key, packets, bytes_)}})
    old_ace_counters = (
        set() if fresh else {name for policy in current.acls.values() for name in policy_counters(policy)}
    )
    new_ace_counters = {name: policy.key for policy in new.acls.values() for name in policy_counters(policy)}
    for name, key in new_ace_counters.items():
        if name not in old_ace_counters:
            packets, bytes_ = carried.get(name, (0, 0))
            counter = table.ref(name=name, comment=key[:120], packets=packets, bytes=bytes_)
            commands.append({"add": {"counter": counter}})
    old_limits = {} if fresh else {name: rate for p in current.acls.values() for name, rate in policy_limits(p).items()}
    new_limits = {name: rate for policy in new.acls.values() for name, rate in policy_limits(policy).items()}
    changed_limits = [name for name, rate in new_limits.items() if name in old_limits and old_limits[name] != rate]
    for name, rate in new_limits.items():
        if name not in old_limits:
            commands.append({"add": {"limit": table.limit_object(name, rate)}})

    element_changes: list[JsonCommand] = []
    recreations: list[JsonCommand] = []  # maps that outgrew their size: deleted and re-created after the flush
    emptied: list[MapId] = []
    layout: dict[MapId, dict[ElementKey, str]] = {}
    previous: dict[MapId, dict[ElementKey, str]] = {} if fresh else current.installed
    for logical in touched:
        if logical.shape is Shape.DST:
            layout.update(_destination_maps(logical.version, new))
            layout.update(  # maps of this family's old layout that the new one no longer has
                {
                    map_id: {}
                    for map_id in previous
                    if map_id.shape is Shape.DST
                    and not map_id.filter
                    and map_id.version == logical.version
                    and map_id not in layout
                }
            )
        else:
            layout[logical] = _desired(logical, new)
    for version in sorted({logical.version for logical in touched}):
        maps = {
            map_id
            for map_id in (*layout, *previous)
            if map_id.version == version and not map_id.filter and layout.get(map_id, previous.get(map_id))
        }
        filters = _filter_sets(version, maps, new)
        if filters:
            filters.update(_port_gate(version, new))
        layout.update(filters)
        layout.update({m: {} for m in previous if m.filter and m.version == version and m not in filters})
    for map_id in sorted(layout, key=lambda map_id: map_id.sort_key):
        before = previous.get(map_id, {})
        after = layout[map_id]
        if before and not after:
            emptied.append(map_id)
            new.installed.pop(map_id, None)
            new.capacity.pop(map_id, None)
            continue
        new.installed[map_id] = after
        kind = "set" if map_id.filter else "map"
        if before and map_id.hashed and len(after) > new.capacity[map_id]:
            # A full fixed-size hash refuses more elements: a bigger one replaces it (its rule is rewritten).
            new.capacity[map_id] = capacity_for(len(after))
            recreations.append({"delete": {kind: table.ref(name=map_id.name)}})
            recreations.append({"add": {kind: table.map_object(map_id, new.capacity[map_id])}})
            recreations.append({"add": {"element": table.elements(map_id, after, after)}})
            continue
        if after and not before:
            capacity = capacity_for(len(after)) if map_id.hashed else None
            if capacity is not None:
                new.capacity[map_id] = capacity
            commands.append({"add": {kind: table.map_object(map_id, capacity)}})
        gone = [element for element, owner in before.items() if after.get(element) != owner]
        coming = [element for element, owner in after.items() if before.get(element) != owner]
        if gone:
            element_changes.append({"delete": {"element": table.elements(map_id, gone, None)}})
        if coming:
            element_changes.append({"add": {"element": table.elements(map_id, coming, after)}})

    had_acls = bool(current.acls) and not fresh
    acl_changed = fresh or new.acls != current.acls
    if new.acls and not had_acls:
        commands.append({"add": {"chain": table.ref(name=ACL_CHAIN)}})

    # Rules: the jump to the ACL chain when there are ACLs, then the pre-filters' gotos and the map rules (see
    # chain_layout). When they change, or a map they refer to is re-created, every chain of ours is rewritten in
    # the same batch, so no packet ever sees a half-built chain and no rule is left pointing at an empty map.
    new.rules = {map_id for map_id, owners in new.installed.items() if owners}
    rewrite_chain = fresh or new.rules != current.rules or bool(new.acls) != had_acls or bool(recreations)
    old_chains = set() if fresh else set(chain_layout(current.rules))
    new_chains = set(chain_layout(new.rules))
    if rewrite_chain and not fresh:
        commands += [{"flush": {"chain": table.ref(name=name)}} for name in sorted(old_chains)]
    commands += recreations
    commands += element_changes
    if acl_changed and had_acls:
        commands.append({"flush": {"chain": table.ref(name=ACL_CHAIN)}})
        # Limits nothing refers to any more (the flush dropped their rules) go; a changed rate is a new object.
        gone_limits = [name for name in old_limits if name not in new_limits] + changed_limits
        commands += [{"delete": {"limit": table.ref(name=name)}} for name in gone_limits]
        commands += [{"add": {"limit": table.limit_object(name, new_limits[name])}} for name in changed_limits]
    if acl_changed and new.acls:
        rules = acl_rules(new.acls.values())
        commands += [{"add": {"rule": table.ref(chain=ACL_CHAIN, expr=expressions)}} for expressions in rules]
    commands += [{"delete": {"set" if map_id.filter else "map": table.ref(name=map_id.name)}} for map_id in emptied]
    if had_acls and not new.acls:
        commands.append({"delete": {"chain": table.ref(name=ACL_CHAIN)}})
    commands += [{"delete": {"chain": table.ref(name=name)}} for name in sorted(old_chains - new_chains)]
    if rewrite_chain:
        commands += [{"add": {"chain": table.ref(name=name)}} for name in sorted(new_chains - old_chains - {CHAIN})]
        if new.acls:
            commands.append({"add": {"rule": table.ref(chain=CHAIN, expr=[{"jump": {"target": ACL_CHAIN}}])}})
        for chain, entries in chain_layout(new.rules).items():
            commands += [{"add": {"rule": table.rule_object(map_id, chain, target)}} for map_id, target in entries]
    commands += [{"delete": {"counter": table.ref(name=counter_name(key))}} for key in removed_keys]
    commands += [{"delete": {"counter": table.ref(name=name)}} for name in old_ace_counters - set(new_ace_counters)]
    return Plan(commands=commands, state=new)


def batch(commands: list[JsonCommand]) -> dict[str, Any]:
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}
