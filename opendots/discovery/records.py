"""What discovery yields (RFC 8973 §4): candidate peers, each with where it came from and how long it holds."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Source = Literal["config", "dhcp", "dns", "dns-sd"]
Channel = Literal["signal", "data"]
Transport = Literal["dtls", "tls"]

SOURCES: tuple[Source, ...] = ("config", "dhcp", "dns", "dns-sd")  # RFC 8973 §4: the order of preference
DEFAULT_SIGNAL_PORT = 4646  # RFC 9132 §4.1, also what §6 says discovery returns by default
DEFAULT_DATA_PORT = 443


def name_origin(source: str, name: str, configured: str = "server_name in client.toml") -> str:
    """Where the reference identifier NAME found by SOURCE came from, for the error when a peer's certificate lacks
    it (opendots.pki.verify): CONFIGURED for explicit configuration."""
    if source == "config":
        return configured
    if source == "dhcp":
        return f"RFC 8973 DHCP answer naming {name}"
    if source == "dns":
        return f"RFC 8973 DNS S-NAPTR for {name}"
    return f"RFC 8973 DNS-SD under {name}"


@dataclass(frozen=True)
class DiscoveredServer:
    address: str
    port: int
    transport: Transport  # dtls = signal.udp, tls = signal.tcp or data.tcp (HTTPS for the data channel)
    channel: Channel
    peer_name: str
    """The reference identifier the server's certificate must match (RFC 8973 §8: DNS-ID, or an IP address)."""
    source: Source
    ttl: float | None
    """Seconds the information holds (DNS TTL, DHCP lease); None for explicit configuration."""

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.address)  # candidates are addresses; names are resolved before this point

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DiscoveryResult:
    servers: list[DiscoveredServer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What each mechanism found or why it found nothing, in words, for `opendots client discover`."""

    @property
    def ttl(self) -> float | None:
        """The shortest validity among the servers (RFC 8973 §4: discovery is redone when it expires)."""
        ttls = [server.ttl for server in self.servers if server.ttl is not None]
        return min(ttls) if ttls else None

    def signal_groups(self, transports: tuple[str, ...] = ("dtls", "tls")) -> list[tuple[str, list[DiscoveredServer]]]:
        """Signal-channel candidates grouped by (source, peer name), best source first: one Happy Eyeballs race
        per group, because one (D)TLS context verifies one name."""
        groups: dict[tuple[str, str], list[DiscoveredServer]] = {}
        for server in self.servers:
            if server.channel == "signal" and server.transport in transports:
                groups.setdefault((server.source, server.peer_name), []).append(server)
        order = sorted(groups, key=lambda key: SOURCES.index(key[0]))  # stable: keeps order within a source
        return [(name, groups[(source, name)]) for source, name in order]
