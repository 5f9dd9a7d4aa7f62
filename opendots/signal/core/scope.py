"""The target of a mitigation request: parsing the YANG-JSON 'scope' entry, validity, overlap.

The core does not rely on the CBOR/YANG layer having validated the body (tests and other shells feed it
dicts directly), so every member it reads is checked here and anything unknown is refused (4.00).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from opendots.mitigate.base import PortRange
from opendots.signal.core.defaults import INDEFINITE_LIFETIME, TRIGGER_MITIGATION, UINT32_MAX
from opendots.signal.core.messages import MITIGATION_SCOPE, AttackStatus, reject

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TARGET_MEMBERS = ("target-prefix", "target-port-range", "target-protocol", "target-fqdn", "target-uri", "alias-name")
ACL_LIST = "ietf-dots-signal-control:acl-list"  # RFC 9133 filter control
ACTIVATION_TYPES = ("activate-when-mitigating", "immediate", "deactivate")
CLIENT_MEMBERS = frozenset({*TARGET_MEMBERS, "lifetime", "trigger-mitigation", "attack-status", ACL_LIST})
SERVER_ONLY_MEMBERS = frozenset(
    {
        "mid",
        "cuid",
        "cdid",
        "mitigation-start",
        "status",
        "conflict-information",
        "bytes-dropped",
        "bps-dropped",
        "pkts-dropped",
        "pps-dropped",
    }
)
# Comprehension-optional extensions (RFC 9132 §10.6.1.1) a server may ignore.
_IGNORABLE_MODULES = ("ietf-dots-telemetry:",)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True)
class Targets:
    """What a request points at; empty ports/protocols mean "all"."""

    prefixes: tuple[IPNetwork, ...] = ()
    port_ranges: tuple[PortRange, ...] = ()
    protocols: tuple[int, ...] = ()
    fqdns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @cached_property
    def prefix_ranges(self) -> tuple[tuple[int, int, int], ...]:
        """(IP version, first address, last address) of each prefix: integer comparisons for overlap scans."""
        return tuple((p.version, int(p.network_address), int(p.broadcast_address)) for p in self.prefixes)

    def as_sets(self) -> tuple[frozenset[Any], ...]:
        """Order-free form: a refresh may list the same targets in another order."""
        return tuple(
            frozenset(part)
            for part in (self.prefixes, self.port_ranges, self.protocols, self.fqdns, self.uris, self.aliases)
        )

    def merged(self, other: Targets) -> Targets:
        return Targets(
            prefixes=_unique(self.prefixes + other.prefixes),
            port_ranges=_unique(self.port_ranges + other.port_ranges),
            protocols=_unique(self.protocols + other.protocols),
            fqdns=_unique(self.fqdns + other.fqdns),
            uris=_unique(self.uris + other.uris),
            aliases=_unique(self.aliases + other.aliases),
        )


@dataclass(frozen=True)
class AclControl:
    """One RFC 9133 'acl-list' entry: a data-channel ACL of the client, and the activation type it should get."""

    acl_name: str
    activation_type: str | None = None  # None: the ACL is named, its activation type stays


@dataclass(frozen=True)
class MitigationRequest:
    """One parsed 'scope' entry of a PUT /mitigate body."""

    targets: Targets
    lifetime: int | None
    """Requested lifetime: seconds, -1 for indefinite, None when absent (allowed only in efficacy updates)."""
    trigger_mitigation: bool = TRIGGER_MITIGATION
    attack_status: AttackStatus | None = None
    document: dict[str, Any] = field(default_factory=dict, compare=False)
    """The configuration members as the client sent them, in its order (replayed in GET responses)."""
    acl_controls: tuple[AclControl, ...] = ()

    def same_parameters(self, other: MitigationRequest) -> bool:
        """True when OTHER repeats every parameter of this request, lifetime and attack-status aside (§4.4.1.3)."""
        return (
            self.targets.as_sets() == other.targets.as_sets()
            and self.trigger_mitigation == other.trigger_mitigation
            and set(self.acl_controls) == set(other.acl_controls)
        )


def parse_scope_body(body: Any) -> MitigationRequest:
    """Validate a full `{"ietf-dots-signal-channel:mitigation-scope": {"scope": [...]}}` body."""
    if not isinstance(body, dict) or set(body) != {MITIGATION_SCOPE}:
        raise reject("4.00", f"the body must hold exactly one '{MITIGATION_SCOPE}' member")
    container = body[MITIGATION_SCOPE]
    if not isinstance(container, dict) or set(container) != {"scope"}:
        raise reject("4.00", "'mitigation-scope' must hold exactly one 'scope' list")
    entries = container["scope"]
    if not isinstance(entries, list) or len(entries) != 1:
        raise reject("4.00", "'scope' must hold exactly one entry (one mitigation request per PUT)")
    return parse_scope_entry(entries[0])


def parse_scope_entry(entry: Any) -> MitigationRequest:
    if not isinstance(entry, dict):
        raise reject("4.00", "a 'scope' entry must be an object")
    document: dict[str, Any] = {}
    for name, value in entry.items():
        if name in ("cuid", "mid", "cdid"):
            raise reject("4.00", f"'{name}' must not appear in the request body (it belongs in the Uri-Path)")
        if name in SERVER_ONLY_MEMBERS:
            raise reject("4.00", f"'{name}' is sent by servers only")
        if name.startswith(_IGNORABLE_MODULES):
            continue
        if name not in CLIENT_MEMBERS:
            raise reject("4.00", f"unknown parameter {name!r} in the mitigation request")
        if isinstance(value, list) and not value:
            raise reject("4.00", f"'{name}' is empty (empty attributes make the request invalid)")
        if name != "attack-status":
            document[name] = value
    targets = Targets(
        prefixes=_unique(parse_prefix(p) for p in _list(entry, "target-prefix", str)),
        port_ranges=_port_ranges(_list(entry, "target-port-range", dict)),
        protocols=_unique(_protocol(p) for p in _list(entry, "target-protocol", int)),
        fqdns=_unique(_fqdn(name) for name in _list(entry, "target-fqdn", str)),
        uris=_unique(_uri(uri) for uri in _list(entry, "target-uri", str)),
        aliases=_unique(_alias(name) for name in _list(entry, "alias-name", str)),
    )
    if not (targets.prefixes or targets.fqdns or targets.uris or targets.aliases):
        raise reject("4.00", "at least one of target-prefix, target-fqdn, target-uri or alias-name is required")
    trigger = entry.get("trigger-mitigation", TRIGGER_MITIGATION)
    if not isinstance(trigger, bool):
        raise reject("4.00", "'trigger-mitigation' must be true or false")
    return MitigationRequest(
        targets=targets,
        lifetime=_lifetime(entry["lifetime"]) if "lifetime" in entry else None,
        trigger_mitigation=trigger,
        attack_status=_attack_status(entry["attack-status"]) if "attack-status" in entry else None,
        document=document,
        acl_controls=_acl_controls(entry.get(ACL_LIST, [])),
    )


def _acl_controls(items: Any) -> tuple[AclControl, ...]:
    """RFC 9133 §3.2.1: 'acl-name' is mandatory in each entry, 'activation-type' optional; names are the keys."""
    if not isinstance(items, list):
        raise reject("4.00", f"'{ACL_LIST}' must be a list")
    controls: dict[str, AclControl] = {}
    for item in items:
        if not isinstance(item, dict) or not set(item) <= {"acl-name", "activation-type"}:
            raise reject("4.00", f"an '{ACL_LIST}' entry holds 'acl-name' and optionally 'activation-type'")
        name = item.get("acl-name")
        if not isinstance(name, str) or not name:
            raise reject("4.00", f"'acl-name' is mandatory in an '{ACL_LIST}' entry")
        activation = item.get("activation-type")
        if activation is not None and activation not in ACTIVATION_TYPES:
            raise reject("4.00", f"'activation-type' must be one of {', '.join(ACTIVATION_TYPES)}")
        if name in controls:
            raise reject("4.00", f"'{ACL_LIST}' names ACL {name!r} twice")
        controls[name] = AclControl(name, activation)
    return tuple(controls.values())


@functools.lru_cache(maxsize=8192)  # refreshes repeat their prefixes; ipaddress parsing is ~10 us a prefix
def parse_prefix(text: str) -> IPNetwork:
    try:
        prefix = ipaddress.ip_network(text, strict=True)
    except ValueError as problem:
        raise reject("4.00", f"invalid target-prefix {text!r}: {problem}") from None
    if "/" not in text:
        raise reject("4.00", f"target-prefix {text!r} needs a prefix length (CIDR notation)")
    if prefix.is_loopback or prefix.is_multicast or _is_broadcast(prefix):
        raise reject("4.00", f"target-prefix {text!r} is a loopback, multicast or broadcast address")
    return prefix


def _is_broadcast(prefix: IPNetwork) -> bool:
    return prefix.version == 4 and prefix.overlaps(ipaddress.IPv4Network("255.255.255.255/32"))


def _list(entry: dict[str, Any], name: str, kind: type) -> list[Any]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, kind) and not isinstance(item, bool) for item in value):
        raise reject("4.00", f"'{name}' must be a list of {kind.__name__} values")
    return value


def _port_ranges(items: list[dict[str, Any]]) -> tuple[PortRange, ...]:
    ranges: list[PortRange] = []
    seen: set[int] = set()
    for item in items:
        if not set(item) <= {"lower-port", "upper-port"} or "lower-port" not in item:
            raise reject("4.00", "a target-port-range entry holds 'lower-port' and optionally 'upper-port'")
        lower = _port(item["lower-port"])
        upper = _port(item.get("upper-port", lower))
        if upper < lower:
            raise reject("4.00", f"target-port-range upper-port {upper} is below lower-port {lower}")
        if lower in seen:
            raise reject("4.00", f"target-port-range lists lower-port {lower} twice")
        seen.add(lower)
        ranges.append(PortRange(lower, upper))
    return tuple(ranges)


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise reject("4.00", f"port {value!r} is not in 0..65535")
    return value


def _protocol(value: int) -> int:
    if not 0 <= value <= 255:
        raise reject("4.00", f"target-protocol {value} is not in 0..255")
    return value


def _fqdn(name: str) -> str:
    text = name.rstrip(".").lower()
    labels = text.split(".")
    if not text or len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise reject("4.00", f"target-fqdn {name!r} is not a valid domain name")
    return text


def _uri(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.scheme or not parts.hostname:
        raise reject("4.00", f"target-uri {uri!r} needs a scheme and a host")
    return uri


def uri_host(uri: str) -> str:
    return urlsplit(uri).hostname or ""


def _alias(name: str) -> str:
    if not name:
        raise reject("4.00", "alias-name must not be empty")
    return name


def _lifetime(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise reject("4.00", "'lifetime' must be an integer")
    if value == 0:
        raise reject("4.00", "a 'lifetime' of 0 is invalid")
    if value < INDEFINITE_LIFETIME or value > UINT32_MAX:
        raise reject("4.00", f"'lifetime' {value} is neither -1 (indefinite) nor an unsigned 32-bit integer")
    return value


def _attack_status(label: Any) -> AttackStatus:
    try:
        return AttackStatus.from_label(label)  # type: ignore[return-value]
    except ValueError:
        raise reject("4.00", f"unknown attack-status {label!r}") from None


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


# --- overlap (§4.4.1.3: a common IP address, prefix, FQDN, URI or alias) ---------------------------------


def overlap(first: Targets, second: Targets) -> Targets | None:
    """The common part of two target sets, or None when they do not overlap.

    Targets overlap on a common address/prefix, FQDN, URI or alias. When both sides restrict protocols or
    ports and those restrictions are disjoint, the traffic they describe cannot intersect, so they do not
    overlap (this is what lets RFC 9132 Figure 14 hold a UDP and a TCP mitigation on the same prefixes).
    """
    prefixes = tuple(_prefix_intersection(first, second))
    fqdns = tuple(name for name in first.fqdns if name in second.fqdns)
    uris = tuple(uri for uri in first.uris if uri in second.uris)
    aliases = tuple(name for name in first.aliases if name in second.aliases)
    if not (prefixes or fqdns or uris or aliases):
        return None
    protocols: tuple[int, ...] = ()
    if first.protocols and second.protocols:
        protocols = tuple(p for p in first.protocols if p in second.protocols)
        if not protocols:
            return None
    else:
        protocols = first.protocols or second.protocols
    ports: tuple[PortRange, ...] = ()
    if first.port_ranges and second.port_ranges:
        ports = tuple(_port_intersection(first.port_ranges, second.port_ranges))
        if not ports:
            return None
    else:
        ports = first.port_ranges or second.port_ranges
    return Targets(prefixes, ports, protocols, fqdns, uris, aliases)


def _prefix_intersection(first: Targets, second: Targets) -> list[IPNetwork]:
    # Two prefixes overlap only when one contains the other: the intersection is the smaller one.
    result: list[IPNetwork] = []
    for mine, (version, low, high) in zip(first.prefixes, first.prefix_ranges, strict=True):
        for theirs, (other_version, other_low, other_high) in zip(second.prefixes, second.prefix_ranges, strict=True):
            if version == other_version and low <= other_high and other_low <= high:
                smaller = mine if mine.prefixlen >= theirs.prefixlen else theirs
                if smaller not in result:
                    result.append(smaller)
    return result


def _port_intersection(first: Iterable[PortRange], second: tuple[PortRange, ...]) -> Iterable[PortRange]:
    for mine in first:
        for theirs in second:
            lower, upper = max(mine.lower, theirs.lower), min(mine.upper, theirs.upper)
            if lower <= upper:
                yield PortRange(lower, upper)


def targets_document(targets: Targets) -> dict[str, Any]:
    """Targets as YANG-JSON members (used for 'conflict-scope')."""
    document: dict[str, Any] = {}
    if targets.prefixes:
        document["target-prefix"] = [str(p) for p in targets.prefixes]
    if targets.port_ranges:
        document["target-port-range"] = [
            {"lower-port": r.lower} if r.lower == r.upper else {"lower-port": r.lower, "upper-port": r.upper}
            for r in targets.port_ranges
        ]
    if targets.protocols:
        document["target-protocol"] = list(targets.protocols)
    if targets.fqdns:
        document["target-fqdn"] = list(targets.fqdns)
    if targets.uris:
        document["target-uri"] = list(targets.uris)
    if targets.aliases:
        document["alias-name"] = list(targets.aliases)
    return document
