"""The RFC 8973 §4 procedure: explicit configuration, then DHCP (§5), then S-NAPTR (§6), then DNS-SD (§7).

Every mechanism runs and adds its candidates in that order of preference, so the agent can fall back from one
source to the next; each candidate carries the name its server's certificate must present (§8).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opendots.discovery.dhcp import DhcpOptionError, interpret, read_options_file
from opendots.discovery.naptr import (
    MAX_NAPTR_DEPTH,
    PROTOCOLS,
    SERVICE_DOTS,
    Naptr,
    Srv,
    order_srv,
    select_naptr,
    srv_service,
)
from opendots.discovery.records import Channel, DiscoveredServer, DiscoveryResult, Source, Transport
from opendots.discovery.resolve import LookupFailed

if TYPE_CHECKING:
    from opendots.config import ClientConfig

SIGNAL_PROTOCOLS = ("signal.udp", "signal.tcp")
# Bounds on what DNS answers can make us do: a hostile or broken zone must not turn one discovery into thousands of
# lookups (each waits up to the resolver lifetime).
MAX_LOOKUPS = 64
MAX_RECORDS = 16
ALL_PROTOCOLS = ("signal.udp", "signal.tcp", "data.tcp")


class Lookups(Protocol):
    async def naptr(self, name: str) -> list[Naptr]: ...
    async def srv(self, name: str) -> list[Srv]: ...
    async def ptr(self, name: str) -> list[tuple[str, float]]: ...
    async def addresses(self, name: str) -> list[tuple[str, float]]: ...


@dataclass
class DiscoverySettings:
    server_name: str | None = None
    """Explicitly configured server name (None: not configured, discovery starts with DHCP)."""
    server_addresses: list[str] = field(default_factory=list)
    domain: str | None = None
    """The domain for S-NAPTR and DNS-SD lookups (§6 step 1: the user may configure a default)."""
    dhcp_file: Path | None = None
    trusted_names: list[str] = field(default_factory=list)
    """§8.1: when set, a DHCP-supplied name is accepted only if it is one of these (or under a "*.")."""
    signal_port: int = 4646
    """The port of explicitly configured and DHCP-supplied addresses, and of "a" NAPTR records (§5, §6); 4647 for
    Call Home (RFC 9066 §8.1)."""
    data_port: int = 443
    service: str = SERVICE_DOTS
    """The S-NAPTR application service (§9.4): "DOTS", or "DOTS-CALL-HOME" when a Call Home DOTS server looks for
    its Call Home DOTS client (§4, Figure 9), with SRV and DNS-SD names to match."""


def trusted(name: str, patterns: list[str]) -> bool:
    """§8.1 preconfigured list: exact names, or "*.example.com" for any name below example.com."""
    name = name.rstrip(".").lower()
    for pattern in patterns:
        pattern = pattern.rstrip(".").lower()
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern)):
            return True
    return False


class BoundedLookups:
    """LOOKUPS with at most MAX_LOOKUPS queries per discovery and MAX_RECORDS records kept per answer."""

    def __init__(self, lookups: Lookups, limit: int = MAX_LOOKUPS) -> None:
        self._lookups = lookups
        self.left = limit

    def _spend(self, what: str, name: str) -> None:
        if self.left <= 0:
            raise LookupFailed(f"stopped at {what} {name}: more than {MAX_LOOKUPS} lookups in one discovery")
        self.left -= 1

    async def naptr(self, name: str) -> list[Naptr]:
        self._spend("NAPTR", name)
        return (await self._lookups.naptr(name))[:MAX_RECORDS]

    async def srv(self, name: str) -> list[Srv]:
        self._spend("SRV", name)
        return [r for r in await self._lookups.srv(name) if r.port != 0][:MAX_RECORDS]  # port 0 reaches nothing

    async def ptr(self, name: str) -> list[tuple[str, float]]:
        self._spend("PTR", name)
        return (await self._lookups.ptr(name))[:MAX_RECORDS]

    async def addresses(self, name: str) -> list[tuple[str, float]]:
        self._spend("AAAA/A", name)
        return (await self._lookups.addresses(name))[:MAX_RECORDS]


class Discoverer:
    def __init__(self, settings: DiscoverySettings, lookups: Lookups, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.lookups = lookups
        self.rng = rng or random.Random()

    async def discover(self, protocols: tuple[str, ...] = SIGNAL_PROTOCOLS) -> DiscoveryResult:
        self._q = BoundedLookups(self.lookups)
        result = DiscoveryResult()
        await self._explicit(result, protocols)
        await self._dhcp(result, protocols)
        if self.settings.domain:
            await self._guarded(result, "dns", self._snaptr(result, self.settings.domain, protocols, "dns"))
            await self._guarded(result, "dns-sd", self._dns_sd(result, self.settings.domain, protocols))
        else:
            result.notes.append("dns, dns-sd: no discovery_domain configured")
        return result

    async def _guarded(self, result: DiscoveryResult, source: str, lookup: object) -> None:
        try:
            await lookup  # type: ignore[misc]
        except LookupFailed as error:
            result.notes.append(f"{source}: {error}")

    def _add(self, result: DiscoveryResult, server: DiscoveredServer) -> None:
        if server not in result.servers:
            result.servers.append(server)

    def _signal(
        self,
        result: DiscoveryResult,
        addresses: list[str],
        name: str,
        source: Source,
        ttl: float | None,
        protocols: tuple[str, ...],
    ) -> None:
        """Addresses without a port (configured, DHCP): the signal channel at signal_port and, when asked for, the
        data channel at data_port: §5 assumes one peer for both channels."""
        wanted: list[tuple[Channel, Transport, int]] = []
        if any(protocol.startswith("signal.") for protocol in protocols):
            wanted += [("signal", "dtls", self.settings.signal_port), ("signal", "tls", self.settings.signal_port)]
        if "data.tcp" in protocols:
            wanted.append(("data", "tls", self.settings.data_port))
        for address in addresses:
            for channel, transport, port in wanted:
                self._add(result, DiscoveredServer(address, port, transport, channel, name, source, ttl))

    async def _explicit(self, result: DiscoveryResult, protocols: tuple[str, ...]) -> None:
        name, addresses = self.settings.server_name, self.settings.server_addresses
        if name is None and not addresses:
            result.notes.append("config: no server_name or server_addresses")
            return
        peer = name or addresses[0]
        if not addresses:
            try:
                addresses = [str(ipaddress.ip_address(peer))]
            except ValueError:
                try:
                    addresses = [address for address, _ in await self._q.addresses(peer)]
                except LookupFailed as error:
                    result.notes.append(f"config: {peer} not resolved: {error}")
                    return
        self._signal(result, addresses, peer, "config", None, protocols)
        result.notes.append(f"config: {peer} ({len(addresses)} address(es))")

    async def _dhcp(self, result: DiscoveryResult, protocols: tuple[str, ...]) -> None:
        path = self.settings.dhcp_file
        if path is None:
            result.notes.append("dhcp: no discovery_dhcp_file configured")
            return
        try:
            options, lease = read_options_file(path.read_text())
            answers = interpret(options, lease)
        except FileNotFoundError:
            result.notes.append(f"dhcp: {path} does not exist (no DHCP answer yet?)")
            return
        except DhcpOptionError as error:
            result.notes.append(f"dhcp: ignored, {error}")
            return
        if not answers:
            result.notes.append("dhcp: no DOTS option in the DHCP answer")
        for answer in answers:
            peer = answer.reference_identifier
            assert peer is not None
            if (
                answer.name is not None
                and self.settings.trusted_names
                and not trusted(answer.name, self.settings.trusted_names)
            ):
                result.notes.append(f"dhcp: {answer.name} refused, not in discovery_trusted_names (RFC 8973 §8.1)")
                continue
            if not answer.needs_resolution:
                self._signal(result, answer.addresses, peer, "dhcp", answer.lease, protocols)
                result.notes.append(f"dhcp: DHCPv{answer.family} {peer} at {', '.join(answer.addresses)}")
                continue
            # A name alone: S-NAPTR on it (§5 "passed to the procedure described in Section 6"), else A/AAAA.
            before = len(result.servers)
            await self._guarded(result, "dhcp", self._snaptr(result, peer, protocols, "dhcp"))
            if len(result.servers) == before:
                try:
                    found = await self._q.addresses(peer)
                except LookupFailed as error:
                    result.notes.append(f"dhcp: {peer} not resolved: {error}")
                    continue
                least = _least([answer.lease, *(t for _, t in found)])
                self._signal(result, [a for a, _ in found], peer, "dhcp", least, protocols)
            result.notes.append(f"dhcp: DHCPv{answer.family} name {peer}, resolved to {len(result.servers) - before}")

    async def _snaptr(self, result: DiscoveryResult, domain: str, protocols: tuple[str, ...], source: Source) -> None:
        """§6: NAPTR "DOTS:<protocol>" at the domain, following non-terminal records, then SRV ("s") or
        A/AAAA ("a"). The reference identifier is the domain looked up (§8.2)."""
        before = len(result.servers)
        await self._follow(result, domain, domain, protocols, source, None, 0)
        found = len(result.servers) - before
        result.notes.append(f"{source}: S-NAPTR {self.settings.service} at {domain}: {found} candidate(s)")

    async def _follow(
        self,
        result: DiscoveryResult,
        name: str,
        domain: str,
        protocols: tuple[str, ...],
        source: Source,
        ttl: float | None,
        depth: int,
    ) -> None:
        if depth >= MAX_NAPTR_DEPTH:
            result.notes.append(f"{source}: NAPTR chain deeper than {MAX_NAPTR_DEPTH} at {name}: stopped")
            return
        for record in select_naptr(await self._q.naptr(name), protocols, self.settings.service):
            held = _least([ttl, record.ttl])
            offered = [p for p in record.service.lower().split(":")[1:] if p in protocols]
            flag = record.flags.lower()
            if flag == "":
                await self._follow(result, record.replacement, domain, tuple(offered), source, held, depth + 1)
            elif flag == "s":
                for protocol in offered:
                    await self._srv(result, record.replacement, protocol, domain, source, held)
            else:  # "a": addresses at the replacement, the protocol's default port
                for protocol in offered:
                    channel, transport, _, default = PROTOCOLS[protocol]
                    port = self.settings.signal_port if channel == "signal" else default
                    for address, address_ttl in await self._q.addresses(record.replacement):
                        server = DiscoveredServer(
                            address, port, transport, channel, domain, source, _least([held, address_ttl])
                        )
                        self._add(result, server)

    async def _srv(
        self, result: DiscoveryResult, name: str, protocol: str, domain: str, source: Source, ttl: float | None
    ) -> None:
        channel, transport, _, _ = PROTOCOLS[protocol]
        for srv in order_srv(await self._q.srv(name), self.rng):
            for address, address_ttl in await self._q.addresses(srv.target):
                held = _least([ttl, srv.ttl, address_ttl])
                self._add(result, DiscoveredServer(address, srv.port, transport, channel, domain, source, held))

    async def _dns_sd(self, result: DiscoveryResult, domain: str, protocols: tuple[str, ...]) -> None:
        """§7: PTR <Service>.<Domain> -> instances -> SRV -> addresses; the TXT record carries no keys."""
        before = len(result.servers)
        for protocol in protocols:
            service = srv_service(self.settings.service, protocol)
            if service is None:
                continue
            for instance, ttl in await self._q.ptr(f"{service}.{domain}"):
                await self._srv(result, instance, protocol, domain, "dns-sd", ttl)
        result.notes.append(f"dns-sd: {len(result.servers) - before} candidate(s) under {domain}")


def _least(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def settings_from(config: ClientConfig) -> DiscoverySettings:
    return DiscoverySettings(
        server_name=config.server_name if config.server_configured else None,
        server_addresses=list(config.server_addresses) if config.server_configured else [],
        domain=config.discovery_domain,
        dhcp_file=config.discovery_dhcp_file,
        trusted_names=list(config.discovery_trusted_names),
        signal_port=config.signal_port,
        data_port=config.data_port,
    )


def discoverer_for(config: ClientConfig) -> Discoverer:
    from opendots.discovery.resolve import DnsLookups

    return Discoverer(settings_from(config), DnsLookups(config.discovery_resolver))
