"""Sans-I/O core of the BGP actuator: mitigation scopes -> BGP routes, and which routes to (re)announce or withdraw.

Two kinds of route:
- RTBH (RFC 7999): a host route of the target carrying the BLACKHOLE community 65535:666 (plus any configured
  provider communities), next hop = a discard address the receiving routers null-route.
- FlowSpec (RFC 8955 IPv4 / RFC 8956 IPv6): destination prefix, optional source prefix, IP protocol / next header,
  destination and source port ranges; action traffic-rate 0 (discard) or a rate limit in bytes per second.

Nothing here touches a socket or a process; the speakers (gobgp.py, exabgp.py) render these routes to commands.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Literal

from opendots.domain.scope import scope_problem
from opendots.mitigate.base import IPNetwork, MitigationScope, MitigatorError, PortRange

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Mode = Literal["rtbh", "flowspec", "both"]

BLACKHOLE_COMMUNITY = "65535:666"  # RFC 7999 BLACKHOLE
# Only the low and high bounds of the ranges below are protocol limits; anything else is policy in RoutePolicy.
MAX_RATE_BYTES_PER_SECOND = (
    3.4e38  # traffic-rate-bytes is an IEEE 754 single-precision float (RFC 8955 traffic-rate-bytes)
)
# The RTBH next hop every participating router null-routes: 192.0.2.1 is the customary IPv4 choice (an operator
# setting); RFC 6666 reserves 100::/64 as the IPv6 discard-only block.
DEFAULT_DISCARD_V4 = ipaddress.IPv4Address("192.0.2.1")
DEFAULT_DISCARD_V6 = ipaddress.IPv6Address("100::1")


@dataclass(frozen=True)
class RtbhRoute:
    prefix: IPNetwork
    next_hop: IPAddress
    communities: tuple[str, ...] = (BLACKHOLE_COMMUNITY,)

    @property
    def family(self) -> str:
        return f"ipv{self.prefix.version}-unicast"


@dataclass(frozen=True)
class FlowspecRoute:
    destination: IPNetwork
    source: IPNetwork | None = None
    protocols: tuple[int, ...] = ()
    destination_ports: tuple[PortRange, ...] = ()
    source_ports: tuple[PortRange, ...] = ()
    # RFC 8955 traffic-rate-bytes: 0 means discard.
    rate_limit_bytes_per_second: float = 0.0

    @property
    def family(self) -> str:
        return f"ipv{self.destination.version}-flowspec"


Route = RtbhRoute | FlowspecRoute


@dataclass(frozen=True)
class RoutePolicy:
    """How scopes become routes. Defaults are the conservative choices an operator would expect."""

    mode: Mode = "flowspec"
    discard_next_hop_v4: IPAddress = DEFAULT_DISCARD_V4
    discard_next_hop_v6: IPAddress = DEFAULT_DISCARD_V6
    extra_communities: tuple[str, ...] = ()  # e.g. a provider's "no-export" or regional blackhole community
    # RTBH drops everything towards the prefix, so by default only host routes may be blackholed.
    rtbh_min_prefix_length_v4: int = 32
    rtbh_min_prefix_length_v6: int = 128
    flowspec_rate_limit_bytes_per_second: float = 0.0
    # Routers hold few FlowSpec rules in hardware; targets x sources must not explode into thousands of them.
    max_routes_per_mitigation: int = 256

    def __post_init__(self) -> None:
        if self.mode not in ("rtbh", "flowspec", "both"):
            raise ValueError(f"mode must be 'rtbh', 'flowspec' or 'both', not {self.mode!r}")
        if self.discard_next_hop_v4.version != 4 or self.discard_next_hop_v6.version != 6:
            raise ValueError("discard next hops must be one IPv4 and one IPv6 address")
        rate = self.flowspec_rate_limit_bytes_per_second
        if not (math.isfinite(rate) and 0 <= rate <= MAX_RATE_BYTES_PER_SECOND):
            raise ValueError(f"the FlowSpec rate limit must be 0 (discard) to {MAX_RATE_BYTES_PER_SECOND:g} bytes/s")
        for community in self.extra_communities:
            check_community(community)
        if not (0 <= self.rtbh_min_prefix_length_v4 <= 32 and 0 <= self.rtbh_min_prefix_length_v6 <= 128):
            raise ValueError("RTBH minimum prefix lengths must be 0-32 (IPv4) and 0-128 (IPv6)")
        if self.max_routes_per_mitigation < 1:
            raise ValueError("max_routes_per_mitigation must be at least 1")

    @property
    def rtbh(self) -> bool:
        return self.mode in ("rtbh", "both")

    @property
    def flowspec(self) -> bool:
        return self.mode in ("flowspec", "both")


def check_community(community: str) -> str:
    """Validate a standard community "ASN:value" (both 16-bit)."""
    parts = community.split(":")
    if len(parts) != 2 or not all(part.isdigit() and int(part) <= 0xFFFF for part in parts):
        raise ValueError(f"not a standard BGP community 'asn:value' with 16-bit parts: {community!r}")
    return community


def _check_scope(scope: MitigationScope) -> None:
    problem = scope_problem(scope)
    if problem is not None:
        raise MitigatorError(problem)
    for prefix in scope.target_prefixes:
        if prefix.prefixlen == 0:
            raise MitigatorError(f"{scope.key}: refusing to act on the default route {prefix}")


def routes_for_scope(scope: MitigationScope, policy: RoutePolicy) -> frozenset[Route]:
    """The routes that enforce SCOPE under POLICY; MitigatorError if the scope cannot be enforced as asked."""
    _check_scope(scope)
    routes: set[Route] = set()
    if policy.rtbh:
        communities = tuple(dict.fromkeys((BLACKHOLE_COMMUNITY, *policy.extra_communities)))
        for prefix in scope.target_prefixes:
            minimum = policy.rtbh_min_prefix_length_v4 if prefix.version == 4 else policy.rtbh_min_prefix_length_v6
            if prefix.prefixlen < minimum:
                raise MitigatorError(
                    f"{scope.key}: RTBH would blackhole all of {prefix}; only /{minimum} or longer is allowed"
                )
            next_hop = policy.discard_next_hop_v4 if prefix.version == 4 else policy.discard_next_hop_v6
            routes.add(RtbhRoute(prefix, next_hop, communities))
    if policy.flowspec:
        routes |= _flowspec_routes(scope, policy)
    if len(routes) > policy.max_routes_per_mitigation:
        raise MitigatorError(
            f"{scope.key}: would need {len(routes)} BGP routes, more than the {policy.max_routes_per_mitigation}"
            " allowed per mitigation"
        )
    return frozenset(routes)


def _flowspec_routes(scope: MitigationScope, policy: RoutePolicy) -> set[Route]:
    routes: set[Route] = set()
    for destination in scope.target_prefixes:
        if scope.source_prefixes:
            # A rule matches one address family, so each target pairs only with sources of its own family.
            sources: list[IPNetwork | None] = [s for s in scope.source_prefixes if s.version == destination.version]
            if not sources:
                continue
        else:
            sources = [None]
        for source in sources:
            routes.add(
                FlowspecRoute(
                    destination=destination,
                    source=source,
                    protocols=tuple(sorted(set(scope.target_protocols))),
                    destination_ports=tuple(sorted(set(scope.target_port_ranges), key=_port_key)),
                    source_ports=tuple(sorted(set(scope.source_port_ranges), key=_port_key)),
                    rate_limit_bytes_per_second=policy.flowspec_rate_limit_bytes_per_second,
                )
            )
    if not routes:
        raise MitigatorError(f"{scope.key}: no source prefix shares an address family with any target prefix")
    return routes


def _port_key(port: PortRange) -> tuple[int, int]:
    return (port.lower, port.upper)


@dataclass(frozen=True)
class RouteChanges:
    announce: tuple[Route, ...] = ()
    withdraw: tuple[Route, ...] = ()


@dataclass
class RouteTable:
    """Which mitigation needs which route. A route shared by two mitigations stays until the last one ends."""

    by_key: dict[str, frozenset[Route]] = field(default_factory=dict)
    holders: dict[Route, set[str]] = field(default_factory=dict)

    def set(self, key: str, routes: frozenset[Route]) -> RouteChanges:
        """Make KEY hold exactly ROUTES; returns what must change on the wire (announce first, then withdraw)."""
        old = self.by_key.get(key, frozenset())
        announce = [route for route in routes - old if not self.holders.get(route)]
        for route in routes - old:
            self.holders.setdefault(route, set()).add(key)
        withdraw = []
        for route in old - routes:
            holders = self.holders[route]
            holders.discard(key)
            if not holders:
                del self.holders[route]
                withdraw.append(route)
        if routes:
            self.by_key[key] = routes
        else:
            self.by_key.pop(key, None)
        return RouteChanges(tuple(sorted(announce, key=repr)), tuple(sorted(withdraw, key=repr)))

    def remove(self, key: str) -> RouteChanges:
        return self.set(key, frozenset())

    def routes(self) -> list[Route]:
        return sorted(self.holders, key=repr)

    def clear(self) -> None:
        self.by_key.clear()
        self.holders.clear()
