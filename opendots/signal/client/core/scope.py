"""What a DOTS client asks to protect: the `scope` of a mitigation request (RFC 9132 §4.4.1.1), built and checked
before anything is sent, so a typo fails locally with a clear message instead of a 4.00 from the server."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from opendots.domain import IPNetwork, PortRange, ScopeError, Targets, defaults, parse_prefix, parse_targets
from opendots.domain.targets import NO_TARGET

__all__ = [
    "AclActivation",
    "MitigationScope",
    "PortRange",
    "ScopeError",
    "acl_list_from_yang",
    "parse_acl",
    "parse_protocol",
]

MODULE = "ietf-dots-signal-channel"
LIFETIME_INDEFINITE = defaults.INDEFINITE_LIFETIME
DEFAULT_LIFETIME = defaults.LIFETIME  # RFC 9132 Appendix C
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "dccp": 33, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}
_TARGET_FIELDS = (
    "target_prefixes",
    "target_port_ranges",
    "target_protocols",
    "target_fqdns",
    "target_uris",
    "alias_names",
)
"""Named as in Targets (the YANG leaves target-prefix, target-port-range, ... alias-name)."""
_NAMES = _TARGET_FIELDS[3:]
ATTACK_STATUSES = ("under-attack", "attack-successfully-mitigated")  # RFC 9132 Table 4
ACL_LIST = "ietf-dots-signal-control:acl-list"  # RFC 9133 §3.2.2
ACTIVATION_TYPES = ("activate-when-mitigating", "immediate", "deactivate")  # RFC 8783 'activation-type'


@dataclass(frozen=True)
class AclActivation:
    """One RFC 9133 'acl-list' entry: a data-channel ACL of this client, and the activation type it should get."""

    acl_name: str
    activation_type: str | None = None  # None: not sent; the ACL keeps the activation type it has

    def __post_init__(self) -> None:
        if not isinstance(self.acl_name, str) or not self.acl_name.strip():
            raise ScopeError("an ACL name must not be empty (RFC 9133 §3.2.1)")
        if self.activation_type is not None and self.activation_type not in ACTIVATION_TYPES:
            raise ScopeError(
                f"activation type {self.activation_type!r} of ACL {self.acl_name!r}: use one of "
                f"{', '.join(ACTIVATION_TYPES)} (RFC 8783)"
            )

    def to_yang(self) -> dict[str, str]:
        entry = {"acl-name": self.acl_name}
        if self.activation_type is not None:
            entry["activation-type"] = self.activation_type
        return entry


def parse_acl(text: str) -> AclActivation:
    """'NAME' or 'NAME=ACTIVATION-TYPE', as the command line takes it."""
    name, _, activation = text.partition("=")
    return AclActivation(name.strip(), activation.strip() if activation else None)


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


def _prefix(value: str | IPNetwork) -> IPNetwork:
    """A target prefix by the wire's rule (opendots.domain.addresses.parse_prefix: host bits refused); an address
    alone means that host. The command line clears host bits itself, and says so (read_user_prefix)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "/" not in text and text:
        text = f"{text}/{128 if ':' in text else 32}"
    return parse_prefix(text)


@dataclass(frozen=True)
class MitigationScope:
    """One `scope` entry of a mitigation request, as the client sends it (no cuid, mid or server-side fields)."""

    target_prefixes: tuple[IPNetwork, ...] = ()  # strings are read by the wire's rule
    target_port_ranges: tuple[PortRange, ...] = ()
    target_protocols: tuple[int, ...] = ()
    target_fqdns: tuple[str, ...] = ()
    target_uris: tuple[str, ...] = ()
    alias_names: tuple[str, ...] = ()
    lifetime: int = DEFAULT_LIFETIME
    trigger_mitigation: bool = True
    acl_list: tuple[AclActivation, ...] = ()
    """RFC 9133 filter control: data-channel ACLs whose activation this request sets (attack time only)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # not sent; kept for local bookkeeping

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_prefixes", tuple(_prefix(p) for p in self.target_prefixes))
        for port_range in self.target_port_ranges:
            port_range.check()
        object.__setattr__(self, "target_protocols", tuple(parse_protocol(p) for p in self.target_protocols))
        for name in _NAMES:
            values = tuple(getattr(self, name))
            if any(not isinstance(value, str) or not value.strip() for value in values):
                raise ScopeError(f"{name}: empty values are not allowed (RFC 9132 §4.4.1.1)")
            object.__setattr__(self, name, values)
        if not (self.target_prefixes or self.target_fqdns or self.target_uris or self.alias_names):
            raise ScopeError(NO_TARGET)
        if self.lifetime == 0 or self.lifetime < LIFETIME_INDEFINITE or self.lifetime > 0xFFFFFFFF:
            raise ScopeError(f"lifetime {self.lifetime}: use seconds > 0, or -1 for indefinite")
        acls = tuple(self.acl_list)
        names = [acl.acl_name for acl in acls]
        if len(set(names)) != len(names):
            raise ScopeError(f"an ACL is named twice in {ACL_LIST} (its names are the list's keys)")
        if acls and not self.trigger_mitigation:
            # RFC 9133 §3.2.1: filter control is for attack time; a server refuses it in 'idle' time (4.00).
            raise ScopeError("ACLs can be controlled in an immediate request only, not with trigger-mitigation false")
        object.__setattr__(self, "acl_list", acls)

    @cached_property
    def targets(self) -> Targets:
        return Targets(**{name: getattr(self, name) for name in _TARGET_FIELDS})

    def to_yang(self, *, attack_status: str | None = None) -> dict[str, Any]:
        """The `scope` list entry in RFC 7951 JSON, members in the order of RFC 9132 Figure 6."""
        entry = self.targets.to_yang()
        entry["lifetime"] = self.lifetime
        if not self.trigger_mitigation:  # true is the default and needs no bytes on the wire
            entry["trigger-mitigation"] = False
        if attack_status is not None:
            entry["attack-status"] = attack_status
        if self.acl_list:
            entry[ACL_LIST] = [acl.to_yang() for acl in self.acl_list]
        return entry

    @classmethod
    def from_yang(cls, entry: dict[str, Any]) -> MitigationScope:
        """Inverse of to_yang (also accepts a server's status entry, ignoring its status fields)."""
        try:
            targets = parse_targets(entry)
            return cls(
                **{name: getattr(targets, name) for name in _TARGET_FIELDS},
                lifetime=int(entry.get("lifetime", DEFAULT_LIFETIME)),
                trigger_mitigation=bool(entry.get("trigger-mitigation", True)),
                acl_list=tuple(acl_list_from_yang(entry.get(ACL_LIST, []))),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ScopeError(f"bad scope entry: {error}") from None

    def with_lifetime(self, lifetime: int) -> MitigationScope:
        return dataclasses.replace(self, lifetime=lifetime, extra={})


def acl_list_from_yang(items: Any) -> list[AclActivation]:
    """An 'acl-list' as YANG-JSON gives it (a list of {"acl-name", "activation-type"?}), checked."""
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ScopeError(f"{ACL_LIST} must be a list of objects with 'acl-name' and optionally 'activation-type'")
    unknown = {key for item in items for key in item} - {"acl-name", "activation-type"}
    if unknown:
        raise ScopeError(f"{ACL_LIST} entries hold 'acl-name' and 'activation-type' only, not {sorted(unknown)}")
    return [AclActivation(item.get("acl-name", ""), item.get("activation-type")) for item in items]


def scopes_overlap(first: MitigationScope, second: MitigationScope) -> bool:
    """RFC 9132 §4.4.1: same trigger-mitigation type and a common IP address, prefix, FQDN, URI or alias."""
    if first.trigger_mitigation != second.trigger_mitigation:
        return False
    networks = [ipaddress.ip_network(prefix, strict=False) for prefix in second.target_prefixes]
    for prefix in first.target_prefixes:
        mine = ipaddress.ip_network(prefix, strict=False)
        if any(mine.version == other.version and mine.overlaps(other) for other in networks):  # type: ignore[arg-type]
            return True
    return any(set(getattr(first, name)) & set(getattr(second, name)) for name in _NAMES)
