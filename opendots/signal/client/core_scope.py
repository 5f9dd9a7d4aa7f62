"""What a DOTS client asks to protect: the `scope` of a mitigation request (RFC 9132 §4.4.1.1), built and checked
before anything is sent, so a typo fails locally with a clear message instead of a 4.00 from the server."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from opendots.errors import UsageError
from opendots.signal.core import defaults

MODULE = "ietf-dots-signal-channel"
LIFETIME_INDEFINITE = defaults.INDEFINITE_LIFETIME
DEFAULT_LIFETIME = defaults.LIFETIME  # RFC 9132 Appendix C
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "dccp": 33, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}
ATTACK_STATUSES = ("under-attack", "attack-successfully-mitigated")  # RFC 9132 Table 4


class ScopeError(UsageError, ValueError):
    """A mitigation scope or request argument that RFC 9132 forbids; the message says which and why."""


@dataclass(frozen=True)
class PortRange:
    lower: int
    upper: int | None = None  # None: the single port `lower`

    def __post_init__(self) -> None:
        for port in (self.lower, self.upper):
            if port is not None and not 0 <= port <= 65535:
                raise ScopeError(f"port {port} is outside 0-65535")
        if self.upper is not None and self.upper < self.lower:
            raise ScopeError(f"port range {self.lower}-{self.upper}: upper port is below lower port")

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """'80' or '1024-65535'."""
        lower, dash, upper = text.strip().partition("-")
        try:
            low, high = int(lower), int(upper) if dash else None
        except ValueError:
            raise ScopeError(f"bad port range {text!r}: expected N or N-M") from None
        return cls(low, None if high == low else high)

    def to_yang(self) -> dict[str, int]:
        return (
            {"lower-port": self.lower} if self.upper is None else {"lower-port": self.lower, "upper-port": self.upper}
        )

    def __str__(self) -> str:
        return str(self.lower) if self.upper is None else f"{self.lower}-{self.upper}"


def parse_protocol(text: str | int) -> int:
    """'udp', 'tcp', ... or a protocol number 0-255."""
    if isinstance(text, int) or str(text).isdigit():
        number = int(text)
        if not 0 <= number <= 255:
            raise ScopeError(f"protocol {number} is outside 0-255")
        return number
    try:
        return PROTOCOL_NUMBERS[str(text).lower()]
    except KeyError:
        raise ScopeError(
            f"unknown protocol {text!r}: use a number 0-255 or one of {sorted(PROTOCOL_NUMBERS)}"
        ) from None


def _check_prefix(text: str) -> str:
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ScopeError(f"bad target prefix {text!r}: expected an address or CIDR prefix") from None
    limited_broadcast = network == ipaddress.ip_network("255.255.255.255/32")
    if network.is_multicast or network.is_loopback or limited_broadcast:
        raise ScopeError(f"target prefix {text!r} is a loopback, multicast or broadcast prefix (RFC 9132 §4.4.1.1)")
    return network.with_prefixlen


@dataclass(frozen=True)
class MitigationScope:
    """One `scope` entry of a mitigation request, as the client sends it (no cuid, mid or server-side fields)."""

    target_prefixes: tuple[str, ...] = ()
    port_ranges: tuple[PortRange, ...] = ()
    protocols: tuple[int, ...] = ()
    fqdns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    lifetime: int = DEFAULT_LIFETIME
    trigger_mitigation: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # not sent; kept for local bookkeeping

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_prefixes", tuple(_check_prefix(p) for p in self.target_prefixes))
        object.__setattr__(self, "protocols", tuple(parse_protocol(p) for p in self.protocols))
        for name in ("fqdns", "uris", "aliases"):
            values = tuple(getattr(self, name))
            if any(not isinstance(value, str) or not value.strip() for value in values):
                raise ScopeError(f"{name}: empty values are not allowed (RFC 9132 §4.4.1.1)")
            object.__setattr__(self, name, values)
        if not (self.target_prefixes or self.fqdns or self.uris or self.aliases):
            raise ScopeError("a mitigation request needs at least one target prefix, FQDN, URI or alias")
        if self.lifetime == 0 or self.lifetime < LIFETIME_INDEFINITE or self.lifetime > 0xFFFFFFFF:
            raise ScopeError(f"lifetime {self.lifetime}: use seconds > 0, or -1 for indefinite")

    def to_yang(self, *, attack_status: str | None = None) -> dict[str, Any]:
        """The `scope` list entry in RFC 7951 JSON, members in the order of RFC 9132 Figure 6."""
        entry: dict[str, Any] = {}
        if self.target_prefixes:
            entry["target-prefix"] = list(self.target_prefixes)
        if self.port_ranges:
            entry["target-port-range"] = [r.to_yang() for r in self.port_ranges]
        if self.protocols:
            entry["target-protocol"] = list(self.protocols)
        if self.fqdns:
            entry["target-fqdn"] = list(self.fqdns)
        if self.uris:
            entry["target-uri"] = list(self.uris)
        if self.aliases:
            entry["alias-name"] = list(self.aliases)
        entry["lifetime"] = self.lifetime
        if not self.trigger_mitigation:  # true is the default and needs no bytes on the wire
            entry["trigger-mitigation"] = False
        if attack_status is not None:
            entry["attack-status"] = attack_status
        return entry

    @classmethod
    def from_yang(cls, entry: dict[str, Any]) -> MitigationScope:
        """Inverse of to_yang (also accepts a server's status entry, ignoring its status fields)."""
        try:
            return cls(
                target_prefixes=tuple(entry.get("target-prefix", ())),
                port_ranges=tuple(
                    PortRange(int(r["lower-port"]), None if r.get("upper-port") is None else int(r["upper-port"]))
                    for r in entry.get("target-port-range", ())
                ),
                protocols=tuple(entry.get("target-protocol", ())),
                fqdns=tuple(entry.get("target-fqdn", ())),
                uris=tuple(entry.get("target-uri", ())),
                aliases=tuple(entry.get("alias-name", ())),
                lifetime=int(entry.get("lifetime", DEFAULT_LIFETIME)),
                trigger_mitigation=bool(entry.get("trigger-mitigation", True)),
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, ScopeError):
                raise
            raise ScopeError(f"bad scope entry: {error}") from None

    def with_lifetime(self, lifetime: int) -> MitigationScope:
        return MitigationScope(
            self.target_prefixes,
            self.port_ranges,
            self.protocols,
            self.fqdns,
            self.uris,
            self.aliases,
            lifetime,
            self.trigger_mitigation,
        )
