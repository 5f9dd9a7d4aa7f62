"""Data-channel filtering rules (RFC 8783 ACLs) as nftables rules: the actuator's view, pure data, no I/O.

These types are what the nftables actuator can enforce; the data channel converts its ACL records
(ietf-dots-data-channel / ietf-access-control-list) into them, and refuses ACLs using fields outside
`SUPPORTED_FIELDS`. Activation (immediate / when mitigating / deactivated) is the caller's business: it applies an
ACL when it should be enforced and withdraws it when not.

Placement: one `acl` chain, jumped to first from the ingress chain, so an `accept` ACE (e.g. known-good sources)
exempts its traffic from the mitigations that follow, while `drop`/`reject`/rate-limit act even when no mitigation
is active. Unlike mitigation targets, ACEs are few per client and ordered, so each ACE is (at most a few) rules.
Every ACE has a named counter (RFC 8519 matched-packets / matched-octets).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntFlag
from typing import Any, Literal

from opendots.domain import IPNetwork
from opendots.mitigate.base import MitigatorError

ACL_CHAIN = "acl"
# Which ietf-dots-data-channel capabilities this actuator enforces (RFC 8783 §7.1 `capabilities`).
SUPPORTED_FIELDS = frozenset(
    {
        "source-ip-network",
        "destination-ip-network",
        "protocol",
        "dscp",
        "ttl",
        "length",
        "fragment",
        "source-port",
        "destination-port",
        "tcp-flags-bitmask",
        "icmp-type",
        "icmp-code",
        "forwarding-accept",
        "forwarding-drop",
        "forwarding-reject",
        "rate-limit",
    }
)
PORT_PROTOCOLS = (6, 17, 33, 132, 136)


class Fragment(IntFlag):
    """ietf-dots-data-channel `fragment-type` bits."""

    DF = 1  # don't fragment (IPv4 only)
    ISF = 2  # is a fragment
    FF = 4  # first fragment
    LF = 8  # last fragment


@dataclass(frozen=True)
class BitmaskMatch:
    """RFC 8783 `operator` semantics: match = (data & bitmask) == bitmask; any = (data & bitmask) != 0."""

    bitmask: int
    operator: Literal["match", "any"] = "match"
    negate: bool = False

    def holds(self, data: int) -> bool:
        masked = data & self.bitmask
        result = masked == self.bitmask if self.operator == "match" else masked != 0
        return result != self.negate


@dataclass(frozen=True)
class PortMatch:
    """A port range (RFC 8519 range, or operator eq/lte/gte as a range); negate for `neq`."""

    lower: int
    upper: int
    negate: bool = False


@dataclass(frozen=True)
class AceMatch:
    version: int  # 4 for an ipv4-acl-type ACL, 6 for ipv6-acl-type
    source: IPNetwork | None = None
    destination: IPNetwork | None = None
    protocol: int | None = None
    dscp: int | None = None
    ttl: int | None = None  # hop limit for IPv6
    length: int | None = None  # IPv4 total length, IPv6 payload length (RFC 8519)
    fragment: BitmaskMatch | None = None  # bits of Fragment
    source_port: PortMatch | None = None
    destination_port: PortMatch | None = None
    tcp_flags: BitmaskMatch | None = None  # the 12 bits after the TCP data offset
    icmp_type: int | None = None
    icmp_code: int | None = None
    flow_label: int | None = None  # IPv6 only
    udp_length: int | None = None


@dataclass(frozen=True)
class Ace:
    name: str
    match: AceMatch
    action: Literal["accept", "drop", "reject"]
    rate_limit: float | None = None  # bytes per second; only with accept (RFC 8783): the excess is dropped


@dataclass(frozen=True)
class AclPolicy:
    """One client's ACL. Every ACE is confined to DOMAIN, the client's own prefixes: whatever an ACE says, it never
    matches (accepts, drops, rate-limits) traffic to anybody else's addresses."""

    key: str  # unique per client ACL, e.g. "<cuid>/<acl-name>"
    domain: tuple[IPNetwork, ...]
    aces: tuple[Ace, ...]
    cuid: str | None = None  # the owner: the router selects actuators by it (None: a policy built by hand)


def ace_counter_name(key: str, ace: str, limited: bool = False) -> str:
    digest = hashlib.sha256(f"{key}\0{ace}".encode()).hexdigest()[:24]
    return ("l" if limited else "a") + digest


def ace_limit_name(key: str, ace: str) -> str:
    return "r" + hashlib.sha256(f"{key}\0{ace}".encode()).hexdigest()[:24]


def _in(value: int | None, low: int, high: int) -> bool:
    return value is None or low <= value <= high


def validate_policy(policy: AclPolicy) -> None:
    if not policy.key:
        raise MitigatorError("ACL key is empty")
    if not policy.domain:
        raise MitigatorError(f"ACL {policy.key}: no client prefixes to confine it to")
    # One RFC 8783 ACE without an address family becomes an IPv4 and an IPv6 Ace of the same name (one counter).
    names = [(ace.name, ace.match.version) for ace in policy.aces]
    if len(set(names)) != len(names):
        raise MitigatorError(f"ACL {policy.key}: duplicate ACE names")
    for ace in policy.aces:
        where = f"ACL {policy.key} ACE {ace.name!r}"
        match = ace.match
        if not ace.name or len(ace.name) > 64:
            raise MitigatorError(f"{where}: name must be 1-64 characters")
        if match.version not in (4, 6):
            raise MitigatorError(f"{where}: unknown IP version {match.version}")
        for network in (match.source, match.destination):
            if network is not None and network.version != match.version:
                raise MitigatorError(f"{where}: {network} is not an IPv{match.version} prefix")
        checks = [
            (match.protocol, 0, 255, "protocol"),
            (match.dscp, 0, 63, "dscp"),
            (match.ttl, 0, 255, "ttl"),
            (match.length, 0, 65535, "length"),
            (match.icmp_type, 0, 255, "icmp type"),
            (match.icmp_code, 0, 255, "icmp code"),
            (match.flow_label, 0, 0xFFFFF, "flow label"),
            (match.udp_length, 0, 65535, "udp length"),
        ]
        for value, low, high, what in checks:
            if not _in(value, low, high):
                raise MitigatorError(f"{where}: {what} {value} out of range")
        for ports in (match.source_port, match.destination_port):
            if ports is not None:
                if not (0 <= ports.lower <= ports.upper <= 65535):
                    raise MitigatorError(f"{where}: invalid port range {ports.lower}-{ports.upper}")
                if match.protocol not in PORT_PROTOCOLS:
                    raise MitigatorError(f"{where}: ports need a port-carrying protocol (TCP, UDP, ...)")
        if match.flow_label is not None and match.version != 6:
            raise MitigatorError(f"{where}: a flow label exists in IPv6 only")
        if match.udp_length is not None and match.protocol != 17:
            raise MitigatorError(f"{where}: udp length needs protocol 17")
        if match.tcp_flags is not None and (match.protocol != 6 or not 0 < match.tcp_flags.bitmask <= 0xFFF):
            raise MitigatorError(f"{where}: TCP flags need protocol 6 and a 12-bit non-zero bitmask")
        icmp = 1 if match.version == 4 else 58
        if (match.icmp_type is not None or match.icmp_code is not None) and match.protocol != icmp:
            raise MitigatorError(f"{where}: ICMP type/code need protocol {icmp}")
        if match.fragment is not None:
            if not 0 < match.fragment.bitmask <= 0xF:
                raise MitigatorError(f"{where}: invalid fragment type bits {match.fragment.bitmask}")
            if match.version == 6 and match.fragment.bitmask & Fragment.DF:
                raise MitigatorError(f"{where}: the DF fragment bit does not exist in IPv6")
        if ace.rate_limit is not None and (ace.action != "accept" or not ace.rate_limit >= 0):
            raise MitigatorError(f"{where}: rate-limit is a non-negative rate, only with the accept action")


# ---- compiling ----


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def _fragment_header(field: str) -> dict[str, Any]:
    return {"exthdr": {"name": "frag", "field": field}}


def _prefix(network: IPNetwork) -> Any:
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def _range(lower: int, upper: int) -> Any:
    return lower if lower == upper else {"range": [lower, upper]}


def _fragment_data(df: bool, more: bool, offset_nonzero: bool) -> int:
    data = Fragment.DF if df else 0
    if more or offset_nonzero:
        data |= Fragment.ISF
    if more and not offset_nonzero:
        data |= Fragment.FF
    if offset_nonzero and not more:
        data |= Fragment.LF
    return int(data)


def _fragment_alternatives(version: int, fragment: BitmaskMatch) -> list[list[dict[str, Any]]] | None:
    """Match lists, any one of which selects the packets whose fragment bits satisfy FRAGMENT.

    None: every packet does (no condition needed); []: no packet does.
    """
    if version == 4:
        # frag-off & 0x7fff = DF(14) MF(13) offset(0-12): each (DF, MF, offset zero?) class is one interval.
        intervals = []
        for df in (False, True):
            for more in (False, True):
                base = (df << 14) | (more << 13)
                for offset_nonzero, interval in ((False, (base, base)), (True, (base + 1, base + 0x1FFF))):
                    if fragment.holds(_fragment_data(df, more, offset_nonzero)):
                        intervals.append(interval)
        if len(intervals) == 8:
            return None
        if not intervals:
            return []
        left = {"&": [_payload("ip", "frag-off"), 0x7FFF]}
        return [[_match(left, {"set": [_range(*interval) for interval in intervals]})]]
    alternatives: list[list[dict[str, Any]]] = []
    if fragment.holds(_fragment_data(False, False, False)):
        alternatives.append([{"match": {"op": "==", "left": {"exthdr": {"name": "frag"}}, "right": False}}])
    for more in (False, True):
        for offset_nonzero in (False, True):
            if fragment.holds(_fragment_data(False, more, offset_nonzero)):
                offset = _match(_fragment_header("frag-off"), 0, "!=" if offset_nonzero else "==")
                alternatives.append([_match(_fragment_header("more-fragments"), int(more)), offset])
    return None if len(alternatives) == 5 else alternatives


def _common_matches(match: AceMatch, domain: list[IPNetwork]) -> list[dict[str, Any]]:
    ip = "ip" if match.version == 4 else "ip6"
    expressions = [
        _match({"meta": {"key": "protocol"}}, ip),
        _match(_payload(ip, "daddr"), {"set": [_prefix(network) for network in domain]}),
    ]
    if match.source is not None:
        expressions.append(_match(_payload(ip, "saddr"), _prefix(match.source)))
    if match.destination is not None:
        expressions.append(_match(_payload(ip, "daddr"), _prefix(match.destination)))
    if match.protocol is not None:
        expressions.append(_match({"meta": {"key": "l4proto"}}, match.protocol))
    if match.dscp is not None:
        expressions.append(_match(_payload(ip, "dscp"), match.dscp))
    if match.ttl is not None:
        expressions.append(_match(_payload(ip, "ttl" if match.version == 4 else "hoplimit"), match.ttl))
    if match.length is not None:
        expressions.append(_match(_payload(ip, "length"), match.length))
    for field, ports in (("sport", match.source_port), ("dport", match.destination_port)):
        if ports is not None:
            expressions.append(
                _match(_payload("th", field), _range(ports.lower, ports.upper), "!=" if ports.negate else "==")
            )
    if match.tcp_flags is not None:
        flags = match.tcp_flags
        # The 12 bits after the data offset: byte 12 bits 4-7 and byte 13 of the TCP header.
        masked = {"&": [{"payload": {"base": "th", "offset": 100, "len": 12}}, flags.bitmask]}
        right = flags.bitmask if flags.operator == "match" else 0
        equal = (flags.operator == "match") != flags.negate
        expressions.append(_match(masked, right, "==" if equal else "!="))
    if match.flow_label is not None:
        expressions.append(_match(_payload("ip6", "flowlabel"), match.flow_label))
    if match.udp_length is not None:
        expressions.append(_match(_payload("udp", "length"), match.udp_length))
    icmp = "icmp" if match.version == 4 else "icmpv6"
    if match.icmp_type is not None:
        expressions.append(_match(_payload(icmp, "type"), match.icmp_type))
    if match.icmp_code is not None:
        expressions.append(_match(_payload(icmp, "code"), match.icmp_code))
    return expressions


def ace_rules(policy: AclPolicy, ace: Ace) -> list[list[dict[str, Any]]]:
    """The rule expression lists that enforce ACE of POLICY, in order (none if it cannot match anything)."""
    policy_key = policy.key
    domain = [network for network in policy.domain if network.version == ace.match.version]
    if not domain:
        return []
    common = _common_matches(ace.match, domain)
    alternatives = [[]] if ace.match.fragment is None else _fragment_alternatives(ace.match.version, ace.match.fragment)
    if alternatives is None:
        alternatives = [[]]
    counter = {"counter": ace_counter_name(policy_key, ace.name)}
    verdict: dict[str, Any] = {ace.action: None}  # accept, drop, or reject (ICMP/ICMPv6 unreachable)
    rules = []
    for alternative in alternatives:
        matches = common + alternative
        if ace.rate_limit is not None:
            # A named limit object: its token bucket survives the rewrites of the ACL chain. The excess is
            # dropped and counted apart.
            limit = {"limit": ace_limit_name(policy_key, ace.name)}
            limited = {"counter": ace_counter_name(policy_key, ace.name, limited=True)}
            rules.append([*matches, limit, limited, {"drop": None}])
        rules.append([*matches, counter, verdict])
    return rules


def policy_counters(policy: AclPolicy) -> list[str]:
    names: dict[str, None] = {}  # ordered set: a dual-family ACE shares its counters
    for ace in policy.aces:
        names[ace_counter_name(policy.key, ace.name)] = None
        if ace.rate_limit is not None:
            names[ace_counter_name(policy.key, ace.name, limited=True)] = None
    return list(names)


def policy_limits(policy: AclPolicy) -> dict[str, int]:
    """Limit object name → bytes per second, for the rate-limited ACEs of POLICY."""
    return {
        ace_limit_name(policy.key, ace.name): math.ceil(ace.rate_limit)
        for ace in policy.aces
        if ace.rate_limit is not None
    }


def acl_rules(policies: Iterable[AclPolicy]) -> list[list[dict[str, Any]]]:
    return [rule for policy in policies for ace in policy.aces for rule in ace_rules(policy, ace)]


# ---- from the data channel's records ----

_TRANSPORT_PROTOCOLS = {"tcp": 6, "udp": 17}
_FRAGMENT_BITS = {"df": Fragment.DF, "isf": Fragment.ISF, "ff": Fragment.FF, "lf": Fragment.LF}


def _bitmask(record: Any) -> BitmaskMatch | None:
    if record is None:
        return None
    value = record.value
    if not isinstance(value, int):
        value = sum(int(_FRAGMENT_BITS[bit]) for bit in value)
    operators = set(record.operator)
    return BitmaskMatch(value, "any" if "any" in operators else "match", "not" in operators)


def _ports(record: Any) -> PortMatch | None:
    if record is None:
        return None
    port = record.port
    return {
        "range": lambda: PortMatch(port, record.upper),
        "eq": lambda: PortMatch(port, port),
        "lte": lambda: PortMatch(0, port),
        "gte": lambda: PortMatch(port, 65535),
        "neq": lambda: PortMatch(port, port, negate=True),
    }[record.operator]()


def policy_from_record(acl: Any, domain: tuple[IPNetwork, ...]) -> AclPolicy:
    """An AclPolicy from a data-channel ACL record (opendots.data.records.Acl, read by attribute so this module
    does not depend on the data channel), confined to DOMAIN, the client's authorized prefixes.

    An ACE without an address family applies to the ACL type's family, or to both for a mixed/untyped ACL.
    Raises MitigatorError for what this actuator cannot enforce.
    """
    type_family = {"ipv4-acl-type": 4, "ipv6-acl-type": 6}.get(acl.type or "")
    aces: list[Ace] = []
    for record in acl.aces:
        match = record.match
        families = [match.family] if match.family else [type_family] if type_family else [4, 6]
        forwarding = record.action.forwarding
        if forwarding not in ("accept", "drop", "reject"):
            raise MitigatorError(f"ACL {acl.name} ACE {record.name!r}: unsupported forwarding action {forwarding!r}")
        rate = float(record.action.rate_limit) if record.action.rate_limit is not None else None
        for family in families:
            protocol = match.protocol
            if protocol is None and match.transport is not None:
                protocol = _TRANSPORT_PROTOCOLS.get(match.transport, 1 if family == 4 else 58)
            converted = AceMatch(
                version=family,
                source=match.source,
                destination=match.destination,
                protocol=protocol,
                dscp=match.dscp,
                ttl=match.ttl,
                length=match.length,
                fragment=_bitmask(match.fragment),
                source_port=_ports(match.source_port),
                destination_port=_ports(match.destination_port),
                tcp_flags=_bitmask(match.tcp_flags),
                icmp_type=match.icmp_type,
                icmp_code=match.icmp_code,
                flow_label=match.flow_label,
                udp_length=match.udp_length,
            )
            aces.append(Ace(record.name, converted, forwarding, rate_limit=rate))
    policy = AclPolicy(key=f"{acl.cuid}/{acl.name}", domain=tuple(domain), aces=tuple(aces), cuid=acl.cuid)
    validate_policy(policy)
    return policy
