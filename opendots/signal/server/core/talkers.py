"""The top talkers a DOTS client named (RFC 9244 §8.1.5 'top-talker'), as the mitigators' vocabulary: source prefixes
and source port ranges of a MitigationScope (opendots.domain.scope), for the top-talker policy
(opendots.mitigate.top_talkers).

Talkers come from the 'attack-detail' of a mitigation request (§9.1) and of the client's pre-or-ongoing-mitigation
telemetry for overlapping targets (§8.2), both validated against ietf-dots-telemetry before they are stored. A talker
whose 'spoofed-status' is true is left out: its address is forged, and dropping it would hit its real owner.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from opendots.domain import IPNetwork, MitigationScope, PortRange

MAX_TALKERS = 256
"""Talkers handed to the actuators per mitigation: one report holds at most `max_telemetry_top_talkers`, but a
client may hold many reports on one target; the first ones named are kept (each is a match entry per target)."""


def talkers_of(details: Iterable[Mapping[str, Any]]) -> tuple[tuple[IPNetwork, ...], tuple[PortRange, ...]]:
    """(source prefixes, source port ranges) of the non-spoofed talkers in DETAILS ('attack-detail' entries).

    The port ranges are one list for all talkers, empty (any port) as soon as one talker names none. At most
    MAX_TALKERS prefixes."""
    prefixes: dict[IPNetwork, None] = {}
    ports: dict[PortRange, None] = {}
    any_port = False
    for detail in details:
        for talker in detail.get("top-talker", {}).get("talker", ()):
            if talker.get("spoofed-status") is True:
                continue
            try:
                prefix = ipaddress.ip_network(talker["source-prefix"], strict=False)
            except (KeyError, TypeError, ValueError):
                continue  # validated on the way in; a stored oddity is no reason to refuse the mitigation
            if prefix not in prefixes and len(prefixes) >= MAX_TALKERS:
                continue
            prefixes[prefix] = None
            ranges = talker.get("source-port-range", ())
            any_port = any_port or not ranges
            for entry in ranges:
                lower = entry["lower-port"]
                ports[PortRange(lower, entry.get("upper-port", lower))] = None
    return tuple(prefixes), () if any_port else tuple(ports)


def with_talkers(scope: MitigationScope, details: Iterable[Mapping[str, Any]]) -> MitigationScope:
    """SCOPE carrying the non-spoofed top talkers of DETAILS (unchanged when there is none)."""
    prefixes, ports = talkers_of(details)
    if not prefixes:
        return scope
    return replace(scope, top_talkers=prefixes, top_talker_port_ranges=ports)
