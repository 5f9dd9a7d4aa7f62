"""A mitigation request: parsing the YANG-JSON 'scope' entry, validity, overlap.

The core does not rely on the CBOR/YANG layer having validated the body (tests and other shells feed it
dicts directly), so every member it reads is checked and anything unknown is refused (4.00). The target members
are read by the domain's parser (opendots.domain.targets.parse_targets); its ScopeError becomes a 4.00 here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opendots.domain.addresses import IPNetwork
from opendots.domain.defaults import INDEFINITE_LIFETIME, TRIGGER_MITIGATION, UINT32_MAX
from opendots.domain.errors import ScopeError
from opendots.domain.ranges import PortRange
from opendots.domain.targets import SOURCE_MEMBERS, TARGET_MEMBERS, Targets, parse_targets
from opendots.signal.server.core.messages import MITIGATION_SCOPE, AttackStatus, reject

ACL_LIST = "ietf-dots-signal-control:acl-list"  # RFC 9133 filter control
ACTIVATION_TYPES = ("activate-when-mitigating", "immediate", "deactivate")
CLIENT_MEMBERS = frozenset({*TARGET_MEMBERS, "lifetime", "trigger-mitigation", "attack-status", ACL_LIST})
CALL_HOME_MEMBERS = CLIENT_MEMBERS | frozenset(SOURCE_MEMBERS)  # RFC 9066 §5.3.1, on a Call Home DOTS server only
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
# RFC 9244 §9.1: the telemetry a client may add to a mitigation request or efficacy update; kept with the request
# (not replayed in GET: CONFIG_MEMBERS), while other members of the module are ignored as before.
CLIENT_TELEMETRY = frozenset({"ietf-dots-telemetry:total-attack-traffic", "ietf-dots-telemetry:attack-detail"})
# Comprehension-optional extensions (RFC 9132 §10.6.1.1) a server may ignore.
_IGNORABLE_MODULES = ("ietf-dots-telemetry:",)
_ABSENT: Any = object()


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
        if other is self:  # a refresh repeating the stored bytes reuses the parsed request
            return True
        # A refresh almost always repeats its targets in the same order: plain equality settles it without
        # hashing every prefix into sets (~1 µs instead of ~6 per refresh).
        same_targets = self.targets == other.targets or self.targets.as_sets() == other.targets.as_sets()
        return (
            same_targets
            and self.trigger_mitigation == other.trigger_mitigation
            and set(self.acl_controls) == set(other.acl_controls)
        )


def parse_scope_body(body: Any, *, call_home: bool = False) -> MitigationRequest:
    """Validate a full `{"ietf-dots-signal-channel:mitigation-scope": {"scope": [...]}}` body. CALL_HOME: this
    server is an RFC 9066 Call Home DOTS server (see parse_scope_entry)."""
    if not isinstance(body, dict) or set(body) != {MITIGATION_SCOPE}:
        raise reject("4.00", f"the body must hold exactly one '{MITIGATION_SCOPE}' member")
    container = body[MITIGATION_SCOPE]
    if not isinstance(container, dict) or set(container) != {"scope"}:
        raise reject("4.00", "'mitigation-scope' must hold exactly one 'scope' list")
    entries = container["scope"]
    if not isinstance(entries, list) or len(entries) != 1:
        raise reject("4.00", "'scope' must hold exactly one entry (one mitigation request per PUT)")
    return parse_scope_entry(entries[0], call_home=call_home)


def parse_scope_entry(entry: Any, *, call_home: bool = False) -> MitigationRequest:
    """CALL_HOME: the RFC 9066 §5.3.1 source members are read, 'source-prefix' and 'target-prefix' are mandatory and
    'trigger-mitigation' false is refused (4.00); elsewhere the source members are unknown parameters (4.00)."""
    if not isinstance(entry, dict):
        raise reject("4.00", "a 'scope' entry must be an object")
    allowed = CALL_HOME_MEMBERS if call_home else CLIENT_MEMBERS
    document: dict[str, Any] = {}
    for name, value in entry.items():
        if name not in allowed and name not in CLIENT_TELEMETRY:
            _refuse_member(name)
            continue  # an ignorable extension
        if isinstance(value, list) and not value:
            raise reject("4.00", f"'{name}' is empty (empty attributes make the request invalid)")
        if name != "attack-status":
            document[name] = value
    try:
        targets = parse_targets(entry, source_members=call_home)
    except ScopeError as problem:
        raise reject("4.00", str(problem)) from None
    get = entry.get
    trigger = get("trigger-mitigation", TRIGGER_MITIGATION)
    if trigger is not True and trigger is not False:
        raise reject("4.00", "'trigger-mitigation' must be true or false")
    if call_home:
        _check_call_home(targets, trigger)
    lifetime = get("lifetime", _ABSENT)
    attack_status = get("attack-status", _ABSENT)
    acl_list = get(ACL_LIST, _ABSENT)
    return MitigationRequest(
        targets=targets,
        lifetime=None if lifetime is _ABSENT else _lifetime(lifetime),
        trigger_mitigation=trigger,
        attack_status=None if attack_status is _ABSENT else _attack_status(attack_status),
        document=document,
        acl_controls=() if acl_list is _ABSENT else _acl_controls(acl_list),
    )


def _check_call_home(targets: Targets, trigger: bool) -> None:
    """RFC 9066 §5.3.1: a Call Home request names the sources and the target prefix, and is immediate."""
    if not targets.source_prefixes:
        raise reject("4.00", f"'{SOURCE_MEMBERS[0]}' is mandatory in a Call Home mitigation request (RFC 9066 §5.3.1)")
    if not targets.target_prefixes:
        raise reject("4.00", "'target-prefix' is mandatory in a Call Home mitigation request (RFC 9066 §5.3.1)")
    if not trigger:
        raise reject("4.00", "Call Home mitigation requests must be immediate ('trigger-mitigation' true, RFC 9066)")


def _refuse_member(name: Any) -> None:
    """Raise the refusal for a member a client may not send; return for an ignorable extension's member."""
    if name in ("cuid", "mid", "cdid"):
        raise reject("4.00", f"'{name}' must not appear in the request body (it belongs in the Uri-Path)")
    if name in SERVER_ONLY_MEMBERS:
        raise reject("4.00", f"'{name}' is sent by servers only")
    if not isinstance(name, str) or not name.startswith(_IGNORABLE_MODULES):
        raise reject("4.00", f"unknown parameter {name!r} in the mitigation request")


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


# --- overlap (§4.4.1.3: a common IP address, prefix, FQDN, URI or alias) ---------------------------------


def overlap(first: Targets, second: Targets) -> Targets | None:
    """The common part of two target sets, or None when they do not overlap.

    Targets overlap on a common address/prefix, FQDN, URI or alias. When both sides restrict protocols or
    ports and those restrictions are disjoint, the traffic they describe cannot intersect, so they do not
    overlap (this is what lets RFC 9132 Figure 14 hold a UDP and a TCP mitigation on the same prefixes).
    """
    prefixes = tuple(_prefix_intersection(first, second))
    fqdns = tuple(name for name in first.target_fqdns if name in second.target_fqdns)
    uris = tuple(uri for uri in first.target_uris if uri in second.target_uris)
    aliases = tuple(name for name in first.alias_names if name in second.alias_names)
    if not (prefixes or fqdns or uris or aliases):
        return None
    protocols: tuple[int, ...] = ()
    if first.target_protocols and second.target_protocols:
        protocols = tuple(p for p in first.target_protocols if p in second.target_protocols)
        if not protocols:
            return None
    else:
        protocols = first.target_protocols or second.target_protocols
    ports: tuple[PortRange, ...] = ()
    if first.target_port_ranges and second.target_port_ranges:
        ports = tuple(_port_intersection(first.target_port_ranges, second.target_port_ranges))
        if not ports:
            return None
    else:
        ports = first.target_port_ranges or second.target_port_ranges
    return Targets(prefixes, ports, protocols, fqdns, uris, aliases)


def _prefix_intersection(first: Targets, second: Targets) -> list[IPNetwork]:
    # Two prefixes overlap only when one contains the other: the intersection is the smaller one.
    result: list[IPNetwork] = []
    for mine, (version, low, high) in zip(first.target_prefixes, first.prefix_ranges, strict=True):
        for theirs, (other_version, other_low, other_high) in zip(
            second.target_prefixes, second.prefix_ranges, strict=True
        ):
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


def sources_overlap(first: Targets, second: Targets) -> bool:
    """Whether the traffic of two Call Home scopes can come from common sources (RFC 9066 §5.3.1): a common source
    address, and common source ports / ICMP types where both restrict them. Two requests about disjoint sources
    toward one target are different mitigations, not an overlap."""
    if first.source_prefixes and second.source_prefixes and not _any_prefix_common(first, second):
        return False
    for mine, theirs in (
        (first.source_port_ranges, second.source_port_ranges),
        (first.source_icmp_type_ranges, second.source_icmp_type_ranges),
    ):
        if mine and theirs and not any(a.lower <= b.upper and b.lower <= a.upper for a in mine for b in theirs):
            return False
    return True


def _any_prefix_common(first: Targets, second: Targets) -> bool:
    return any(
        mine.version == theirs.version and (mine.subnet_of(theirs) or theirs.subnet_of(mine))  # type: ignore[arg-type]
        for mine in first.source_prefixes
        for theirs in second.source_prefixes
    )


def legitimate_overlap(targets: Targets, legitimate: Iterable[IPNetwork]) -> list[tuple[IPNetwork, IPNetwork]]:
    """(source-prefix, legitimate prefix) pairs that share addresses: traffic the CPE's administrator has classified
    as legitimate (RFC 9066 §5.3.1, conflict cause 4)."""
    return [
        (source, own)
        for source in targets.source_prefixes
        for own in legitimate
        if source.version == own.version and (source.subnet_of(own) or own.subnet_of(source))  # type: ignore[arg-type]
    ]
