"""libnftables JSON rendering of the nftables mitigator's table, maps, rules and elements (as accepted by
`nft -j -f -`): pure data, no I/O. The planner (opendots.mitigate.nftables_ruleset) decides what to render."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opendots.mitigate.nftables_keys import ElementKey, JsonCommand, MapId, Range, counter_name, family_chain

CHAIN = "ingress"
LIMIT_TIMEOUT = 60  # seconds an idle flow key keeps its rate state
LIMIT_SET_SIZE = 65536  # flow keys tracked at once per map; when full, new keys are not rate-limited but dropped


def limit_set_name(map_id: MapId) -> str:
    return f"rl_{map_id.name}"


CHAIN_PRIORITY = -500  # before any other netdev ingress chain: drop as early as the kernel allows


_FIELD_TYPES = {"l4proto": "inet_proto", "sport": "inet_service", "dport": "inet_service"}


def _field_type(field_name: str, version: int) -> str:
    if field_name in ("saddr", "daddr"):
        return "ipv4_addr" if version == 4 else "ipv6_addr"
    if field_name == "icmptype":
        return "icmp_type" if version == 4 else "icmpv6_type"
    return _FIELD_TYPES[field_name]


def _field_expression(field_name: str, version: int) -> dict[str, Any]:
    if field_name in ("saddr", "daddr"):
        return {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": field_name}}
    if field_name == "l4proto":
        return {"meta": {"key": "l4proto"}}
    if field_name == "icmptype":  # nft adds the `meta l4proto icmp(v6)` dependency itself
        return {"payload": {"protocol": "icmp" if version == 4 else "icmpv6", "field": "type"}}
    return {"payload": {"protocol": "th", "field": field_name}}


def _address_text(value: int, version: int) -> str:
    # inet_ntop is ~10x faster than str(ipaddress.IPv6Address(...)), which counts at 10,000 targets per batch.
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def render_address(block: Range, version: int) -> Any:
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
        render_address(value, map_id.version) if field_name in ("saddr", "daddr") else _render_number(value)
        for field_name, value in zip(map_id.shape.value, key, strict=True)
    ]
    return parts[0] if len(parts) == 1 else {"concat": parts}


@dataclass(frozen=True)
class Table:
    """Where the mitigator's table lives."""

    name: str
    interface: str
    family: str = "netdev"
    rate_limit: int | None = None
    """Packets per second let through per matched flow key (each map's key: source . target . protocol ...) before
    the rest is counted and dropped; None: every matched packet is dropped."""

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
        drop = [{"counter": {"map": {"key": key, "data": f"@{map_id.name}"}}}, {"drop": None}]
        if self.rate_limit is not None:
            # Per key, packets within the rate stop this rule (passed, uncounted); those over it go on to the map.
            limit = {"limit": {"rate": self.rate_limit, "per": "second", "inv": True}}
            update = {"set": {"op": "update", "elem": key, "set": f"@{limit_set_name(map_id)}", "stmt": [limit]}}
            drop.insert(0, update)
        return self.ref(chain=chain, expr=drop)

    def limit_set_object(self, map_id: MapId) -> dict[str, Any]:
        """The dynamic set holding the rate state of each flow key of MAP_ID (entries expire when idle)."""
        types = [_field_type(name, map_id.version) for name in map_id.shape.value]
        return self.ref(
            name=limit_set_name(map_id),
            type=types[0] if len(types) == 1 else types,
            flags=["timeout"],  # nft 1.0.6 JSON knows no "dynamic"; `update` needs none with a timeout
            timeout=LIMIT_TIMEOUT,
            size=LIMIT_SET_SIZE,
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


def batch(commands: list[JsonCommand]) -> dict[str, Any]:
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}
