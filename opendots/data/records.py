"""Typed views of stored aliases and ACLs, and the query API the signal channel and mitigators use.

Records are built from JSON the model already validated; nothing downstream ever handles raw JSON.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opendots.domain import IPNetwork, PortRange
from opendots.store.data_records import DataChannelStore, StoredEntry

ACTIVATION_TYPES = ("activate-when-mitigating", "immediate", "deactivate")


def _local(identity: str | None) -> str | None:
    return identity.split(":", 1)[-1] if identity else None


def _bits(value: str | None) -> frozenset[str]:
    return frozenset(value.split()) if value else frozenset()


@dataclass(frozen=True)
class Alias:
    cuid: str
    name: str
    target_prefixes: tuple[IPNetwork, ...] = ()
    target_ports: tuple[PortRange, ...] = ()
    target_protocols: tuple[int, ...] = ()
    target_fqdns: tuple[str, ...] = ()
    target_uris: tuple[str, ...] = ()
    expires: float | None = None

    @classmethod
    def from_json(cls, cuid: str, entry: dict[str, Any], expires: float | None = None) -> Alias:
        ports = tuple(
            PortRange(item["lower-port"], item.get("upper-port", item["lower-port"]))
            for item in entry.get("target-port-range", [])
        )
        return cls(
            cuid=cuid,
            name=entry["name"],
            target_prefixes=tuple(ipaddress.ip_network(p, strict=False) for p in entry.get("target-prefix", [])),
            target_ports=ports,
            target_protocols=tuple(entry.get("target-protocol", [])),
            target_fqdns=tuple(entry.get("target-fqdn", [])),
            target_uris=tuple(entry.get("target-uri", [])),
            expires=expires,
        )


@dataclass(frozen=True)
class PortMatch:
    """A port condition: operator eq/lte/gte/neq on `port`, or `range` from `port` to `upper` inclusive."""

    operator: str
    port: int
    upper: int | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> PortMatch | None:
        if value is None:
            return None
        if "lower-port" in value:
            return cls("range", value["lower-port"], value["upper-port"])
        return cls(value.get("operator", "eq"), value["port"])


@dataclass(frozen=True)
class BitmaskMatch:
    """`fragment` or TCP `flags-bitmask`: operator bits (not, match, any) applied to `value`."""

    operator: frozenset[str]
    value: int | frozenset[str]


@dataclass(frozen=True)
class AceMatch:
    family: int | None = None  # 4, 6 or None (no L3 match)
    destination: IPNetwork | None = None  # None: any destination of the client's domain (§7.2)
    source: IPNetwork | None = None
    protocol: int | None = None
    dscp: int | None = None
    length: int | None = None
    ttl: int | None = None
    flow_label: int | None = None
    fragment: BitmaskMatch | None = None
    transport: str | None = None  # tcp, udp, icmp or None
    tcp_flags: BitmaskMatch | None = None
    source_port: PortMatch | None = None
    destination_port: PortMatch | None = None
    udp_length: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    @classmethod
    def from_json(cls, matches: dict[str, Any]) -> AceMatch:
        fields: dict[str, Any] = {}
        for family in (4, 6):
            l3 = matches.get(f"ipv{family}")
            if l3 is None:
                continue
            destination = l3.get(f"destination-ipv{family}-network")
            source = l3.get(f"source-ipv{family}-network")
            fragment = l3.get("fragment")
            fields.update(
                family=family,
                destination=ipaddress.ip_network(destination, strict=False) if destination else None,
                source=ipaddress.ip_network(source, strict=False) if source else None,
                protocol=l3.get("protocol"),
                dscp=l3.get("dscp"),
                length=l3.get("length"),
                ttl=l3.get("ttl"),
                flow_label=l3.get("flow-label"),
                fragment=BitmaskMatch(_bits(fragment.get("operator", "match")), _bits(fragment["type"]))
                if fragment
                else None,
            )
        for transport in ("tcp", "udp", "icmp"):
            l4 = matches.get(transport)
            if l4 is None:
                continue
            fields["transport"] = transport
            if transport == "icmp":
                fields.update(icmp_type=l4.get("type"), icmp_code=l4.get("code"))
                continue
            fields["source_port"] = PortMatch.from_json(l4.get("source-port-range-or-operator"))
            fields["destination_port"] = PortMatch.from_json(l4.get("destination-port-range-or-operator"))
            if transport == "udp":
                fields["udp_length"] = l4.get("length")
            elif "flags-bitmask" in l4:
                flags = l4["flags-bitmask"]
                fields["tcp_flags"] = BitmaskMatch(_bits(flags.get("operator", "match")), flags["bitmask"])
        return cls(**fields)


@dataclass(frozen=True)
class AceAction:
    forwarding: str  # accept or drop
    rate_limit: Decimal | None = None  # bytes per second, only with accept

    @classmethod
    def from_json(cls, actions: dict[str, Any]) -> AceAction:
        rate = actions.get("rate-limit")
        return cls(_local(actions["forwarding"]) or "", Decimal(rate) if rate is not None else None)


@dataclass(frozen=True)
class Ace:
    name: str
    match: AceMatch
    action: AceAction


@dataclass(frozen=True)
class Acl:
    cuid: str
    name: str
    type: str | None
    activation_type: str
    aces: tuple[Ace, ...]
    expires: float | None = None

    @classmethod
    def from_json(cls, cuid: str, entry: dict[str, Any], expires: float | None = None) -> Acl:
        aces = tuple(
            Ace(ace["name"], AceMatch.from_json(ace.get("matches", {})), AceAction.from_json(ace["actions"]))
            for ace in entry.get("aces", {}).get("ace", [])
        )
        return cls(
            cuid=cuid,
            name=entry["name"],
            type=_local(entry.get("type")),
            activation_type=entry.get("activation-type", "activate-when-mitigating"),
            aces=aces,
            expires=expires,
        )


class DataChannelQuery:
    """Read-only access for the signal channel: aliases by name, ACLs by activation type, in order."""

    def __init__(self, store: DataChannelStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.remote = bool(getattr(store, "remote", False))  # each read a network round trip: not on the loop

    def resolve_alias(self, cuid: str, name: str) -> Alias | None:
        entry = self.store.get_alias(cuid, name, self.clock())
        return Alias.from_json(cuid, entry.body, entry.expires) if entry else None

    def acls_for(self, cuid: str, activation_type: str | None = None) -> list[Acl]:
        """The client's ACLs in their configured order (all of them when ACTIVATION_TYPE is None)."""
        if activation_type is not None and activation_type not in ACTIVATION_TYPES:
            raise ValueError(f"unknown activation type {activation_type!r}")
        return [_acl(cuid, entry) for entry in self.store.list_acls(cuid, self.clock(), activation_type)]


def _acl(cuid: str, entry: StoredEntry) -> Acl:
    return Acl.from_json(cuid, entry.body, entry.expires)
