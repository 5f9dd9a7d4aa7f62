"""RFC 8973 discovery for a Call Home DOTS server (the CPE): it finds the Call Home DOTS client it dials.

RFC 8973 §4: "This procedure is also followed by a Call Home DOTS server to discover its Call Home DOTS client", in
the same order as a DOTS client's: explicit configuration (`[[providers]]`, `--provider`), then DHCP (the same
options 141/142 and 147/148, whose addresses the CPE tries at the Call Home port, §5), then S-NAPTR with the
"DOTS-CALL-HOME" application service (§6, Figure 9) and SRV `_dots-call-home._udp` / `_tcp`, then DNS-SD with those
service names (§7). The reference identifier the provider's certificate must present is the domain looked up, or
the DHCP name (§8). The provider side (`opendots callhome client`) listens and discovers nothing.

The `[call_home]` table of cpe.toml:

    [call_home]
    discovery = "auto"                   # "off" (the default): [[providers]] / --provider only
    discovery_domain = "example.net"     # the domain of the S-NAPTR and DNS-SD lookups
    discovery_resolver = "192.0.2.53"    # a resolver address[:port] (default: the system's)
    discovery_dhcp_file = "dhcp.env"     # what the DHCP client's hook wrote (opendots.discovery.dhcp)
    discovery_trusted_names = ["*.example.net"]  # §8.1: DHCP-supplied names accepted
    transport = "auto"                   # which discovered transports to dial: "auto" (DTLS, then TLS), "dtls", "tls"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opendots.config import DEFAULT_CALL_HOME_PORT
from opendots.discovery.cache import DiscoveryCache
from opendots.discovery.discover import SIGNAL_PROTOCOLS, Discoverer, DiscoverySettings, Lookups
from opendots.discovery.naptr import SERVICE_CALL_HOME
from opendots.discovery.records import DiscoveryResult
from opendots.discovery.resolve import check_resolver
from opendots.errors import ConfigError

CALL_HOME_KEYS = (
    "discovery",
    "discovery_domain",
    "discovery_resolver",
    "discovery_dhcp_file",
    "discovery_trusted_names",
    "transport",
)


@dataclass(frozen=True)
class CallHomeDiscoveryConfig:
    discovery: Literal["off", "auto"] = "off"
    domain: str | None = None
    resolver: str | None = None
    dhcp_file: Path | None = None
    trusted_names: tuple[str, ...] = ()
    transport: Literal["auto", "dtls", "tls"] = "auto"

    @classmethod
    def from_table(cls, table: dict[str, Any], base: Path, where: str) -> CallHomeDiscoveryConfig:
        """The `[call_home]` table; every key checked, relative files against BASE (the file's directory)."""
        unknown = [key for key in table if key not in CALL_HOME_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(CALL_HOME_KEYS)})")
        discovery = table.get("discovery", "off")
        if discovery not in ("off", "auto"):
            raise ConfigError(f"{where} discovery must be off or auto, not {discovery!r}")
        transport = table.get("transport", "auto")
        if transport not in ("auto", "dtls", "tls"):
            raise ConfigError(f"{where} transport must be auto, dtls or tls, not {transport!r}")
        text: dict[str, str | None] = {}
        for key in ("discovery_domain", "discovery_resolver", "discovery_dhcp_file"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where} {key} must be a non-empty string, not {value!r}")
            text[key] = value
        resolver = text["discovery_resolver"]
        if resolver is not None:
            check_resolver(resolver, where)
        names = table.get("discovery_trusted_names", [])
        if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
            raise ConfigError(f"{where} discovery_trusted_names must be a list of names, not {names!r}")
        dhcp = text["discovery_dhcp_file"]
        return cls(
            discovery=discovery,
            domain=text["discovery_domain"],
            resolver=resolver,
            dhcp_file=None if dhcp is None else base / dhcp,
            trusted_names=tuple(names),
            transport=transport,
        )

    def settings(self) -> DiscoverySettings:
        """The discovery procedure for the "DOTS-CALL-HOME" service, addresses without a port at 4647 (§5, §6).
        Explicit configuration is the caller's ([[providers]]): none here."""
        return DiscoverySettings(
            domain=self.domain,
            dhcp_file=self.dhcp_file,
            trusted_names=list(self.trusted_names),
            signal_port=DEFAULT_CALL_HOME_PORT,
            service=SERVICE_CALL_HOME,
        )


@dataclass(frozen=True)
class Candidate:
    """A Call Home DOTS client to dial: HOST (an address, or a configured name), PORT, TRANSPORT, the name its
    certificate must carry, and which RFC 8973 §4 mechanism found it."""

    host: str
    port: int
    transport: Literal["tls", "dtls", "auto"]
    server_name: str
    source: str
    ttl: float | None = None


@dataclass
class ProviderDiscovery:
    """The candidates of one discovering dialer, explicit ones first, the discovered ones kept for their TTL and
    dropped when none of them could be reached (RFC 8973 §4: discover again)."""

    config: CallHomeDiscoveryConfig
    lookups: Lookups
    explicit: list[Candidate] = field(default_factory=list)
    cache: DiscoveryCache = field(default_factory=DiscoveryCache)
    last: DiscoveryResult | None = None

    async def candidates(self, now: float) -> list[Candidate]:
        result = self.cache.get(now)
        if result is None:
            result = await self.refresh(now)
        return [*self.explicit, *discovered_candidates(result, self.config.transport)]

    async def refresh(self, now: float) -> DiscoveryResult:
        """Discovery run again whatever the cache holds (RFC 8973 §4: a validity timer or certificate expired)."""
        result = await Discoverer(self.config.settings(), self.lookups).discover(SIGNAL_PROTOCOLS)
        self.cache.store(result, now)
        self.last = result
        return result

    def invalidate(self) -> None:
        self.cache.invalidate()

    def notes(self) -> list[str]:
        configured = ", ".join(f"{c.server_name}@{c.host}:{c.port}" for c in self.explicit)
        first = f"config: {configured}" if configured else "config: no [[providers]] or --provider"
        found = self.last.notes if self.last is not None else []
        return [first, *(note for note in found if not note.startswith("config:"))]  # the Discoverer has no config


def discovered_candidates(result: DiscoveryResult, transport: str = "auto") -> list[Candidate]:
    """RESULT's signal-channel servers as candidates, best source first (§4) and, within a source and name, DTLS
    before TLS (RFC 9132 §4.3); TRANSPORT "dtls" or "tls" keeps that one only."""
    wanted = ("dtls", "tls") if transport == "auto" else (transport,)
    candidates = []
    for name, servers in result.signal_groups(wanted):
        ranked = sorted(servers, key=lambda server: wanted.index(server.transport))  # stable: discovery order kept
        candidates += [
            Candidate(server.address, server.port, server.transport, name, server.source, server.ttl)
            for server in ranked
        ]
    return candidates


def provider_discovery(
    config: CallHomeDiscoveryConfig, explicit: list[Candidate], lookups: Lookups | None = None
) -> ProviderDiscovery:
    if lookups is None:
        from opendots.discovery.resolve import DnsLookups

        lookups = DnsLookups(config.resolver)
    return ProviderDiscovery(config, lookups, explicit)
