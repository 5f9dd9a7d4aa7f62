"""The target of a mitigation request: parsing the YANG-JSON 'scope' entry, validity, overlap.

The core does not rely on the CBOR/YANG layer having validated the body (tests and other shells feed it
dicts directly), so every member it reads is checked here and anything unknown is refused (4.00).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from opendots.config import IPNetwork, network_bounds
from opendots.mitigate.base import PortRange
from opendots.signal.core.defaults import INDEFINITE_LIFETIME, TRIGGER_MITIGATION, UINT32_MAX
from opendots.signal.core.messages import MITIGATION_SCOPE, AttackStatus, reject

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
_ABSENT: Any = object()


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
        return tuple(network_bounds(p) for p in self.prefixes)

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
        # A refresh almost always repeats its targets in the same order: plain equality settles it without
        # hashing every prefix into sets (~1 µs instead of ~6 per refresh).
        same_targets = self.targets == other.targets or self.targets.as_sets() == other.targets.as_sets()
        return (
            same_targets
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
        if name not in CLIENT_MEMBERS:
            _refuse_member(name)
            continue  # an ignorable extension
        if isinstance(value, list) and not value:
            raise reject("4.00", f"'{name}' is empty (empty attributes make the request invalid)")
        if name != "attack-status":
            document[name] = value
    # One member at a time, in this order, so that the first problem is the one reported.
    get = entry.get
    prefixes = _target_list(get, "target-prefix", str, parse_prefix)
    value = get("target-port-range", _ABSENT)
    port_ranges: tuple[PortRange, ...] = ()
    if value is not _ABSENT:
        _check_items("target-port-range", value, dict)
        port_ranges = _port_ranges(value)
    protocols = _target_list(get, "target-protocol", int, _protocol)
    fqdns = _target_list(get, "target-fqdn", str, _fqdn)
    uris = _target_list(get, "target-uri", str, _uri)
    aliases = _target_list(get, "alias-name", str, _alias)
    if not (prefixes or fqdns or uris or aliases):
        raise reject("4.00", "at least one of target-prefix, target-fqdn, target-uri or alias-name is required")
    trigger = get("trigger-mitigation", TRIGGER_MITIGATION)
    if trigger is not True and trigger is not False:
        raise reject("4.00", "'trigger-mitigation' must be true or false")
    lifetime = get("lifetime", _ABSENT)
    attack_status = get("attack-status", _ABSENT)
    acl_list = get(ACL_LIST, _ABSENT)
    return MitigationRequest(
        targets=Targets(prefixes, port_ranges, protocols, fqdns, uris, aliases),
        lifetime=None if lifetime is _ABSENT else _lifetime(lifetime),
        trigger_mitigation=trigger,
        attack_status=None if attack_status is _ABSENT else _attack_status(attack_status),
        document=document,
        acl_controls=() if acl_list is _ABSENT else _acl_controls(acl_list),
    )


def _refuse_member(name: Any) -> None:
    """Raise the refusal for a member a client may not send; return for an ignorable extension's member."""
    if name in ("cuid", "mid", "cdid"):
        raise reject("4.00", f"'{name}' must not appear in the request body (it belongs in the Uri-Path)")
    if name in SERVER_ONLY_MEMBERS:
        raise reject("4.00", f"'{name}' is sent by servers only")
    if not isinstance(name, str) or not name.startswith(_IGNORABLE_MODULES):
        raise reject("4.00", f"unknown parameter {name!r} in the mitigation request")


def _target_list(get: Callable[[str, Any], Any], name: str, kind: type, parse: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The member NAME (a list of KIND values), each PARSEd, repeats dropped; () when absent."""
    value = get(name, _ABSENT)
    if value is _ABSENT:
        return ()
    _check_items(name, value, kind)
    return _unique([parse(item) for item in value])


def _check_items(name: str, value: Any, kind: type) -> None:
    """VALUE must be a list of KIND values (booleans are not integers here)."""
    if type(value) is list:
        for item in value:
            if not isinstance(item, kind) or item is True or item is False:
                break
        else:
            return
    raise reject("4.00", f"'{name}' must be a list of {kind.__name__} values")


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


@functools.lru_cache(maxsize=8192)  # refreshes repeat their prefixes
def parse_prefix(text: str) -> IPNetwork:
    prefix = _plain_network(text)
    if prefix is None:  # any other form, or invalid: ipaddress decides, and words the problem
        try:
            prefix = ipaddress.ip_network(text, strict=True)
        except ValueError as problem:
            raise reject("4.00", f"invalid target-prefix {text!r}: {problem}") from None
        if "/" not in text:
            raise reject("4.00", f"target-prefix {text!r} needs a prefix length (CIDR notation)")
    if prefix.is_loopback or prefix.is_multicast or _is_broadcast(prefix):
        raise reject("4.00", f"target-prefix {text!r} is a loopback, multicast or broadcast address")
    return prefix


_IPV6_TEXT = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*/[0-9]{1,3}")
_IPV4_TEXT = re.compile(r"[0-9.]+/[0-9]{1,2}")
_ALL_ONES_V4 = 2**32 - 1


def _plain_network(text: str) -> IPNetwork | None:
    """The network of a CIDR text in the plain forms (hex groups, or a dotted quad; a decimal length), read with the
    C ``inet_pton`` and built from integers: a third of the cost of ``ip_network`` on a string, which tries IPv4
    first. None when the text has another form or anything is wrong (host bits, lengths, group syntax): the slow
    path then gives ip_network's verdict and words its error. tests/unit/test_signal_scope_parsing.py holds the two
    to the same results."""
    if _IPV6_TEXT.fullmatch(text):
        family, network = socket.AF_INET6, ipaddress.IPv6Network
    elif _IPV4_TEXT.fullmatch(text):
        family, network = socket.AF_INET, ipaddress.IPv4Network
    else:
        return None
    address, _, length = text.partition("/")
    try:
        return network((int.from_bytes(socket.inet_pton(family, address)), int(length)), strict=True)
    except (OSError, ValueError):
        return None


def _is_broadcast(prefix: IPNetwork) -> bool:
    """Whether an IPv4 prefix holds 255.255.255.255 (its last address is all ones)."""
    return prefix.version == 4 and int(prefix.network_address) | int(prefix.hostmask) == _ALL_ONES_V4


_PORT_RANGE_MEMBERS = frozenset({"lower-port", "upper-port"})


def _port_ranges(items: list[dict[str, Any]]) -> tuple[PortRange, ...]:
    ranges: list[PortRange] = []
    seen: set[int] = set()
    for item in items:
        if not item.keys() <= _PORT_RANGE_MEMBERS or "lower-port" not in item:
            raise reject("4.00", "a target-port-range entry holds 'lower-port' and optionally 'upper-port'")
        lower = item["lower-port"]
        if type(lower) is not int or not 0 <= lower <= 65535:  # the plain case without a call; _port decides others
            lower = _port(lower)
        upper = item.get("upper-port", lower)
        if upper is not lower and (type(upper) is not int or not 0 <= upper <= 65535):
            upper = _port(upper)
        if upper < lower:
            raise reject("4.00", f"target-port-range upper-port {upper} is below lower-port {lower}")
        if lower in seen:
            raise reject("4.00", f"target-port-range lists lower-port {lower} twice")
        seen.add(lower)
        ranges.append(PortRange(lower, upper))
    return tuple(ranges)


def _port(value: Any) -> int:
    if not isinstance(value, int) or value is True or value is False or not 0 <= value <= 65535:
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


def _unique(items: Sequence[Any]) -> tuple[Any, ...]:
    """The items without repeats, in their order."""
    return tuple(items) if len(items) < 2 else tuple(dict.fromkeys(items))  # one target: no hashing


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
        # The list is keyed by 'lower-port': overlaps starting at one port (merged from several mitigations) are one
        # range, their union. Found by fuzzing (tools/fuzz_campaign.py).
        widest: dict[int, int] = {}
        for r in targets.port_ranges:
            widest[r.lower] = max(r.upper, widest.get(r.lower, r.upper))
        document["target-port-range"] = [
            {"lower-port": lower} if lower == upper else {"lower-port": lower, "upper-port": upper}
            for lower, upper in widest.items()
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
