"""What a mitigation request points at: the target (and RFC 9066 source) members of a 'scope' entry.

The members and their YANG types (ietf-dots-signal-channel@2021-09-02.yang `target` grouping, and the
`ietf-dots-call-home` augmentation of RFC 9066 §5.3.1 that RFC 9244 telemetry reuses; see /work/shared/spec/yang/):

    target-prefix           leaf-list inet:ip-prefix          -> Targets.target_prefixes
    target-port-range       list lower-port/upper-port        -> Targets.target_port_ranges
    target-protocol         leaf-list uint8                   -> Targets.target_protocols
    target-fqdn             leaf-list inet:domain-name        -> Targets.target_fqdns
    target-uri              leaf-list inet:uri                -> Targets.target_uris
    alias-name              leaf-list string                  -> Targets.alias_names
    source-prefix           leaf-list inet:ip-prefix          -> Targets.source_prefixes
    source-port-range       list lower-port/upper-port        -> Targets.source_port_ranges
    source-icmp-type-range  list lower-type/upper-type        -> Targets.source_icmp_type_ranges

`parse_targets` reads them from YANG-JSON (every check, on raw dicts), `Targets.to_yang` writes them back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from opendots.domain.addresses import IPNetwork, network_bounds, parse_prefix
from opendots.domain.errors import ScopeError
from opendots.domain.ranges import IcmpTypeRange, PortRange, parse_icmp_type_ranges, parse_port_ranges

CALL_HOME = "ietf-dots-call-home"
TARGET_MEMBERS = ("target-prefix", "target-port-range", "target-protocol", "target-fqdn", "target-uri", "alias-name")
SOURCE_MEMBERS = tuple(
    f"{CALL_HOME}:{name}" for name in ("source-prefix", "source-port-range", "source-icmp-type-range")
)
NO_TARGET = "at least one target (target-prefix, target-fqdn, target-uri or alias-name) is required"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_ABSENT: Any = object()


@dataclass(frozen=True)
class Targets:
    """What a request points at; empty ports/protocols mean "all", empty source members mean "any source"."""

    target_prefixes: tuple[IPNetwork, ...] = ()
    target_port_ranges: tuple[PortRange, ...] = ()
    target_protocols: tuple[int, ...] = ()
    target_fqdns: tuple[str, ...] = ()
    target_uris: tuple[str, ...] = ()
    alias_names: tuple[str, ...] = ()
    source_prefixes: tuple[IPNetwork, ...] = ()
    source_port_ranges: tuple[PortRange, ...] = ()
    source_icmp_type_ranges: tuple[IcmpTypeRange, ...] = ()

    @cached_property
    def prefix_ranges(self) -> tuple[tuple[int, int, int], ...]:
        """(IP version, first address, last address) of each prefix: integer comparisons for overlap scans."""
        return tuple(network_bounds(p) for p in self.target_prefixes)

    def as_sets(self) -> tuple[frozenset[Any], ...]:
        """Order-free form: a refresh may list the same targets in another order."""
        return tuple(frozenset(getattr(self, name)) for name in _FIELDS)

    def merged(self, other: Targets) -> Targets:
        return Targets(*(unique(getattr(self, name) + getattr(other, name)) for name in _FIELDS))

    def to_yang(self) -> dict[str, Any]:
        """The members in RFC 7951 JSON, in the order of RFC 9132 Figure 6 (absent when empty)."""
        document: dict[str, Any] = {}
        if self.target_prefixes:
            document["target-prefix"] = [str(p) for p in self.target_prefixes]
        if self.target_port_ranges:
            # The list is keyed by 'lower-port': ranges starting at one port (overlaps merged from several mitigations,
            # in a 4.09's 'conflict-scope') are one range, their union. Found by fuzzing (tools/fuzz_campaign.py).
            widest: dict[int, PortRange] = {}
            for r in self.target_port_ranges:
                held = widest.get(r.lower)
                widest[r.lower] = r if held is None or r.upper > held.upper else held
            document["target-port-range"] = [r.to_yang() for r in widest.values()]
        if self.target_protocols:
            document["target-protocol"] = list(self.target_protocols)
        if self.target_fqdns:
            document["target-fqdn"] = list(self.target_fqdns)
        if self.target_uris:
            document["target-uri"] = list(self.target_uris)
        if self.alias_names:
            document["alias-name"] = list(self.alias_names)
        if self.source_prefixes:
            document[SOURCE_MEMBERS[0]] = [str(p) for p in self.source_prefixes]
        if self.source_port_ranges:
            document[SOURCE_MEMBERS[1]] = [r.to_yang() for r in self.source_port_ranges]
        if self.source_icmp_type_ranges:
            document[SOURCE_MEMBERS[2]] = [r.to_yang() for r in self.source_icmp_type_ranges]
        return document


_FIELDS = tuple(Targets.__dataclass_fields__)


def parse_targets(entry: Mapping[str, Any], *, source_members: bool = False) -> Targets:
    """The target members of ENTRY (a 'scope' entry in YANG-JSON), every one checked; other members are not looked
    at. SOURCE_MEMBERS: also read RFC 9066's source members (a call-home scope). One member at a time, in this
    order, so that the first problem is the one reported. Raises ScopeError."""
    get = entry.get
    prefixes = _target_list(get, "target-prefix", str, parse_prefix)
    value = get("target-port-range", _ABSENT)
    port_ranges = () if value is _ABSENT else parse_port_ranges(value)
    protocols = _target_list(get, "target-protocol", int, _protocol)
    fqdns = _target_list(get, "target-fqdn", str, _fqdn)
    uris = _target_list(get, "target-uri", str, _uri)
    aliases = _target_list(get, "alias-name", str, _alias)
    if not (prefixes or fqdns or uris or aliases):
        raise ScopeError(NO_TARGET)
    if not source_members:
        return Targets(prefixes, port_ranges, protocols, fqdns, uris, aliases)
    source_prefixes = _target_list(get, SOURCE_MEMBERS[0], str, lambda text: parse_prefix(text, "source-prefix"))
    value = get(SOURCE_MEMBERS[1], _ABSENT)
    source_ports = () if value is _ABSENT else parse_port_ranges(value, "source-port-range")
    value = get(SOURCE_MEMBERS[2], _ABSENT)
    icmp_types = () if value is _ABSENT else parse_icmp_type_ranges(value)
    return Targets(prefixes, port_ranges, protocols, fqdns, uris, aliases, source_prefixes, source_ports, icmp_types)


def _target_list(get: Callable[[str, Any], Any], name: str, kind: type, parse: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The member NAME (a list of KIND values), each PARSEd, repeats dropped; () when absent."""
    value = get(name, _ABSENT)
    if value is _ABSENT:
        return ()
    check_items(name, value, kind)
    return unique([parse(item) for item in value])


def check_items(name: str, value: Any, kind: type) -> None:
    """VALUE must be a list of KIND values (booleans are not integers here)."""
    if type(value) is list:
        for item in value:
            if not isinstance(item, kind) or item is True or item is False:
                break
        else:
            return
    raise ScopeError(f"'{name}' must be a list of {kind.__name__} values")


def _protocol(value: int) -> int:
    if not 0 <= value <= 255:
        raise ScopeError(f"target-protocol {value} is not in 0..255")
    return value


def _fqdn(name: str) -> str:
    text = name.rstrip(".").lower()
    labels = text.split(".")
    if not text or len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ScopeError(f"target-fqdn {name!r} is not a valid domain name")
    return text


def _uri(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.scheme or not parts.hostname:
        raise ScopeError(f"target-uri {uri!r} needs a scheme and a host")
    return uri


def uri_host(uri: str) -> str:
    return urlsplit(uri).hostname or ""


def _alias(name: str) -> str:
    if not name:
        raise ScopeError("alias-name must not be empty")
    return name


def unique(items: Sequence[Any]) -> tuple[Any, ...]:
    """The items without repeats, in their order."""
    return tuple(items) if len(items) < 2 else tuple(dict.fromkeys(items))  # one target: no hashing
