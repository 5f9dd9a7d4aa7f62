"""Address sharing at a NAT CPE (RFC 9066 §5.3.2), sans I/O: the external source a provider names → internal hosts.

A provider (or the CGN in front of it) sees the CPE's public address and the ports its NAT picked; on the CPE's LAN
side the same flows carry the internal host's address. The CPE's connection tracking holds both halves of every
translated flow: the ORIGINAL tuple (internal source → remote) and the REPLY tuple (remote → the public address and
translated port). A mitigation whose source lies in the CPE's public addresses is therefore mapped by finding the
flows whose reply destination (address, port) is the requested source and whose remote end is the requested
target, and taking their original sources: the internal hosts to filter.

The input is the text of `conntrack -L` (Debian package `conntrack`; plain or `-o extended`, whose lines start with
the address family) or of /proc/net/nf_conntrack: one flow per line, the original tuple's src/dst/sport/dport first
and the reply tuple's second. Parsing is linear in the text; lines that are not flows are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from opendots.domain import IPNetwork, MitigationScope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_LINE = 1024  # longer lines are not conntrack entries; skipped without being split


@dataclass(frozen=True)
class Flow:
    """One tracked flow: ORIGINAL source → remote, answered at REPLY destination (the public address + port)."""

    protocol: int
    inside: IPAddress  # original src
    inside_port: int | None
    remote: IPAddress  # original dst
    remote_port: int | None
    outside: IPAddress  # reply dst: what the remote (and the provider) sees as the source
    outside_port: int | None

    @property
    def translated(self) -> bool:
        """Whether the NAT rewrote the source (a flow of the CPE itself is not, and names no internal host)."""
        return self.inside != self.outside


def parse_conntrack(text: str) -> list[Flow]:
    """The flows of TEXT (`conntrack -L` output, plain or extended, or /proc/net/nf_conntrack)."""
    flows = []
    for line in text.splitlines():
        if len(line) > MAX_LINE:
            continue
        flow = _parse_line(line.split())
        if flow is not None:
            flows.append(flow)
    return flows


def _parse_line(words: list[str]) -> Flow | None:
    if len(words) >= 2 and words[0] in ("ipv4", "ipv6"):
        words = words[2:]  # extended format: family name and number first
    if len(words) < 2 or not words[1].isdigit():
        return None
    tuples: list[dict[str, str]] = [{}, {}]
    for word in words[2:]:
        name, equals, value = word.partition("=")
        if not equals or name not in ("src", "dst", "sport", "dport"):
            continue
        half = tuples[0] if name not in tuples[0] else tuples[1]
        half.setdefault(name, value)
    original, reply = tuples
    try:
        return Flow(
            protocol=int(words[1]),
            inside=ipaddress.ip_address(original["src"]),
            inside_port=_port(original.get("sport")),
            remote=ipaddress.ip_address(original["dst"]),
            remote_port=_port(original.get("dport")),
            outside=ipaddress.ip_address(reply["dst"]),
            outside_port=_port(reply.get("dport")),
        )
    except (KeyError, ValueError):
        return None


def _port(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and int(value) <= 65535 else None


def external_sources(scope: MitigationScope, external: Sequence[IPNetwork]) -> tuple[IPNetwork, ...]:
    """The source prefixes of SCOPE inside EXTERNAL (the CPE's public addresses): those the NAT must map."""
    return tuple(
        source
        for source in scope.source_prefixes
        if any(source.version == own.version and source.subnet_of(own) for own in external)  # type: ignore[arg-type]
    )


def _contains(prefixes: Iterable[IPNetwork], address: IPAddress) -> bool:
    return any(address in prefix for prefix in prefixes)


def internal_hosts(scope: MitigationScope, flows: Iterable[Flow], external: Sequence[IPNetwork]) -> list[IPAddress]:
    """The internal hosts whose translated flows SCOPE names, first seen first: a flow matches when its public
    (reply-destination) address lies in one of SCOPE's external source prefixes and its translated port in the
    source-port-range (when given), toward a target prefix, protocol and port of SCOPE (when given)."""
    sources = external_sources(scope, external)
    if not sources:
        return []
    found: dict[IPAddress, None] = {}
    for flow in flows:
        if not flow.translated or not _contains(sources, flow.outside):
            continue
        if scope.source_port_ranges and not _in_ranges(flow.outside_port, scope.source_port_ranges):
            continue
        if not _contains(scope.target_prefixes, flow.remote):
            continue
        if scope.target_protocols and flow.protocol not in scope.target_protocols:
            continue
        if scope.target_port_ranges and not _in_ranges(flow.remote_port, scope.target_port_ranges):
            continue
        found.setdefault(flow.inside, None)
    return list(found)


def _in_ranges(port: int | None, ranges: Iterable) -> bool:
    return port is not None and any(r.lower <= port <= r.upper for r in ranges)


def mapped_scope(scope: MitigationScope, hosts: Iterable[IPAddress], external: Sequence[IPNetwork]) -> MitigationScope:
    """SCOPE as the LAN side sees it: its external sources replaced by HOSTS (each a host prefix), filtered toward
    its targets whatever their source ports (the NAT picked the public ones; the host's own differ). A scope with no
    external source is returned as it is. With no host (yet), the external sources stay: they match nothing on
    the LAN side, so nothing legitimate is dropped while the mapping is unknown."""
    sources = external_sources(scope, external)
    hosts = list(hosts)
    if not sources or not hosts:
        return scope
    kept = tuple(source for source in scope.source_prefixes if source not in sources)
    mapped = tuple(ipaddress.ip_network(host) for host in hosts)
    return replace(scope, source_prefixes=kept + mapped, source_port_ranges=())
