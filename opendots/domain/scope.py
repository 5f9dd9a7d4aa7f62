"""What a mitigator is handed: the resolved targets of one accepted mitigation, and whose mitigation it is."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from opendots.domain.addresses import IPNetwork
from opendots.domain.ranges import IcmpTypeRange, PortRange
from opendots.domain.targets import Targets


def mitigation_key(cuid: str, mid: int) -> str:
    """The mitigators' name for mitigation (CUID, MID): unique per mitigation, and part of nft set names and logs."""
    return f"{cuid}/{mid}"


@dataclass(frozen=True)
class MitigationScope:
    """The part of a mitigation's Targets an actuator can act on, with the mitigation's identity.

    The members are named as in Targets, after their YANG leaves (target-prefix, target-port-range,
    target-protocol, source-prefix, source-port-range), with aliases and FQDNs already resolved to prefixes by the
    signal channel; empty port/protocol tuples mean "all". `key` names the mitigation in withdraw() and
    counters(); `client` (the ClientAuthorization name), `cuid` and `mid` say whose it is. Scopes built by hand
    (tests, benchmarks) may leave those three out: an actuator then knows only the key.
    """

    key: str
    target_prefixes: tuple[IPNetwork, ...]
    target_port_ranges: tuple[PortRange, ...] = ()
    target_protocols: tuple[int, ...] = ()
    source_prefixes: tuple[IPNetwork, ...] = ()  # RFC 9066 call home
    source_port_ranges: tuple[PortRange, ...] = ()
    client: str | None = None
    cuid: str | None = None
    mid: int | None = None
    source_icmp_type_ranges: tuple[IcmpTypeRange, ...] = ()  # RFC 9066 call home: ICMP(v6) types from the sources
    top_talkers: tuple[IPNetwork, ...] = ()  # RFC 9244 top talkers, not spoofed: the sources to drop first
    top_talker_port_ranges: tuple[PortRange, ...] = ()  # their source ports; empty: any

    def narrowed(self) -> MitigationScope | None:
        """The scope cut down to its top talkers (as `source_prefixes`, `source_port_ranges`, the members Call Home
        uses), or None when it cannot be: no top talker, or a target family no talker belongs to (those targets
        would go unprotected), or none inside the scope's own source prefixes (Call Home). Talker ports are one
        list for every talker: a superset when talkers name different ports, never less than they named."""
        talkers = self.top_talkers
        if self.source_prefixes:
            talkers = tuple(
                talker
                for talker in talkers
                if any(talker.version == own.version and talker.subnet_of(own) for own in self.source_prefixes)  # type: ignore[arg-type]
            )
        if not talkers or {target.version for target in self.target_prefixes} - {t.version for t in talkers}:
            return None
        return replace(
            self,
            source_prefixes=talkers,
            source_port_ranges=self.top_talker_port_ranges or self.source_port_ranges,
            top_talkers=(),
            top_talker_port_ranges=(),
        )

    def __str__(self) -> str:
        """For logs: `client NAME mid N: PREFIXES [ports P] [protocols N] [from SOURCES [ports P]]`."""
        words = [f"client {self.client} mid {self.mid}:" if self.client is not None else f"{self.key}:"]
        words.append(" ".join(str(prefix) for prefix in self.target_prefixes) or "no prefix")
        if self.target_port_ranges:
            words.append("ports " + ",".join(str(port) for port in self.target_port_ranges))
        if self.target_protocols:
            words.append("protocols " + ",".join(str(protocol) for protocol in self.target_protocols))
        if self.source_prefixes:
            words.append("from " + " ".join(str(prefix) for prefix in self.source_prefixes))
        if self.source_port_ranges:
            words.append("source ports " + ",".join(str(port) for port in self.source_port_ranges))
        if self.top_talkers:
            words.append("top talkers " + " ".join(str(prefix) for prefix in self.top_talkers))
        if self.source_icmp_type_ranges:
            words.append("icmp types " + ",".join(f"{r.lower}-{r.upper}" for r in self.source_icmp_type_ranges))
        return " ".join(words)

    @classmethod
    def of(cls, targets: Targets, client: str, cuid: str, mid: int) -> MitigationScope:
        """The scope of mitigation (CUID, MID) of CLIENT, on TARGETS (aliases expanded)."""
        return cls(
            mitigation_key(cuid, mid),
            targets.target_prefixes,
            targets.target_port_ranges,
            targets.target_protocols,
            targets.source_prefixes,
            targets.source_port_ranges,
            client,
            cuid,
            mid,
            targets.source_icmp_type_ranges,
        )


def scope_problem(scope: MitigationScope) -> str | None:
    """Why no actuator could enforce SCOPE as it stands (None: nothing is wrong): the checks every mitigator makes
    before its own (a scope reaches them from the signal channel already parsed, or built by hand)."""
    if not scope.key:
        return "mitigation scope without a key"
    if not scope.target_prefixes:
        return f"mitigation {scope.key}: no target prefix (nothing to enforce)"
    for prefix in (*scope.target_prefixes, *scope.source_prefixes, *scope.top_talkers):
        if not isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
            return f"mitigation {scope.key}: {prefix!r} is not an IP prefix"
    for protocol in scope.target_protocols:
        if not (isinstance(protocol, int) and 0 <= protocol <= 255):
            return f"mitigation {scope.key}: invalid IP protocol number {protocol!r}"
    for what, ranges in (
        ("destination", scope.target_port_ranges),
        ("source", scope.source_port_ranges),
        ("top talker", scope.top_talker_port_ranges),
    ):
        for r in ranges:
            if not (0 <= r.lower <= r.upper <= 65535):
                return f"mitigation {scope.key}: invalid {what} port range {r.lower}-{r.upper}"
    for r in scope.source_icmp_type_ranges:
        if not (0 <= r.lower <= r.upper <= 255):
            return f"mitigation {scope.key}: invalid ICMP type range {r.lower}-{r.upper}"
    return None
