"""The breakdown table beside the nftables mitigator's: all the traffic toward each mitigation's targets, counted per
transport protocol and per destination port (RFC 9244 §8.3 'total-traffic-protocol', 'total-traffic-port'), as
libnftables JSON commands, pure data.

A third netdev table (`<table>_bd`) hooks the same interface one priority step BEFORE the mitigator's chain, so it
counts what arrives toward a target, whether the mitigator then drops it or not: dropped + passed, the RFC's total
traffic. Two rules per address family, each one map lookup per packet however many mitigations:
`counter name ip daddr . meta l4proto map @bproto4`, and, for the protocols with ports,
`counter name ip daddr . th dport map @bport4`; the maps are interval maps from (address range . protocol) and
(address range . port) to named counters, one per (mitigation, protocol) and (mitigation, port).

What is counted, and what is not (a figure not measured is absent, never zero by assumption):
- the protocols are the mitigation's 'target-protocol's, or, when it names none, DEFAULT_PROTOCOLS: other protocols
  toward the target are not counted, so they are absent from the breakdown (never folded into another entry);
- the ports are those of the mitigation's 'target-port-range's, at most MAX_PORTS of them (the lowest): a mitigation
  naming no port gets no per-port breakdown; a port's figure is its traffic over TCP, UDP, DCCP, SCTP and UDP-Lite;
- addresses are owned as in the drop maps (the most specific prefix, then the mitigation applied first): a mitigation
  part of whose target addresses another one owns would get a partial figure, so it gets none (`complete`).

Off by default (`count_breakdown` on the nftables mitigator): every packet arriving on the interface then pays two
more lookups. Counters and map elements change by difference, in the same batch as the mitigator's change; a table
rebuilt (start, restore, a table gone) keeps the counters it still holds (`add` leaves an existing counter alone).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from opendots.domain import MitigationScope
from opendots.mitigate.nftables_keys import PORT_PROTOCOLS, JsonCommand, Range, address_range, split_nested
from opendots.mitigate.nftables_render import CHAIN, CHAIN_PRIORITY, Table, render_address

BREAKDOWN_PRIORITY = CHAIN_PRIORITY - 1  # before the drop: what arrives, dropped or not
DEFAULT_PROTOCOLS = (1, 6, 17, 58)  # ICMP, TCP, UDP, ICMPv6: a mitigation naming no protocol
MAX_PORTS = 32
"""Ports counted per mitigation: a range of 1-65535 would otherwise mean 65,535 counters."""


def breakdown_table(table: Table) -> Table:
    """The breakdown table beside TABLE (same family and interface)."""
    return Table(name=f"{table.name[:61]}_bd", interface=table.interface, family=table.family)


def _name(prefix: str, key: str, number: int) -> str:
    return prefix + hashlib.sha256(f"{key}\0{number}".encode()).hexdigest()[:24]


def protocol_counter_name(key: str, protocol: int) -> str:
    return _name("b", key, protocol)


def port_counter_name(key: str, port: int) -> str:
    return _name("q", key, port)


@dataclass(frozen=True)
class Breakdown:
    """What is counted for one mitigation."""

    protocols: tuple[int, ...]
    ports: tuple[int, ...]

    @classmethod
    def of(cls, scope: MitigationScope) -> Breakdown:
        protocols = tuple(sorted(set(scope.target_protocols))) or DEFAULT_PROTOCOLS
        ports: set[int] = set()
        for port_range in sorted(scope.target_port_ranges, key=lambda r: r.lower):
            ports.update(range(port_range.lower, min(port_range.upper, port_range.lower + MAX_PORTS) + 1))
        return cls(protocols, tuple(sorted(ports)[:MAX_PORTS]))

    def counters(self, key: str) -> list[str]:
        names = [protocol_counter_name(key, p) for p in self.protocols]
        return names + [port_counter_name(key, p) for p in self.ports]


def complete(scopes: Mapping[str, MitigationScope]) -> dict[str, MitigationScope]:
    """The mitigations of SCOPES (in the order applied) that own every address of their targets: those whose
    counts are their whole traffic. Call Home scopes (source-aware) are left out: their traffic is not all that
    reaches their targets."""
    blocks: dict[int, list[tuple[Range, str | None]]] = {4: [], 6: []}
    for key, scope in scopes.items():
        for prefix in scope.target_prefixes:
            blocks[prefix.version].append((address_range(prefix), key))
    owned: dict[str, int] = {}
    for version in (4, 6):
        for (lower, upper), owner in split_nested(blocks[version]).items():
            if owner is not None:
                owned[owner] = owned.get(owner, 0) + upper - lower + 1
    kept = {}
    for key, scope in scopes.items():
        if scope.source_prefixes or not scope.target_prefixes:
            continue
        wanted = sum(
            network.num_addresses
            for version in (4, 6)
            for network in ipaddress.collapse_addresses([p for p in scope.target_prefixes if p.version == version])  # type: ignore[misc]
        )
        if owned.get(key, 0) == wanted:
            kept[key] = scope
    return kept


def map_name(kind: str, version: int) -> str:
    return f"b{kind}{version}"


def breakdown_commands(
    table: Table, before: Mapping[str, MitigationScope], after: Mapping[str, MitigationScope]
) -> list[JsonCommand]:
    """The commands taking the breakdown table from counting BEFORE to counting AFTER (key → scope, each complete,
    in the order applied): counters and map elements change by difference, so a change costs what it changes. No
    key left: the table goes. BEFORE empty means the table's state is unknown (a start, a rebuild): it is then
    (re)made whole, its maps filled again, and the counters it still holds are kept, none deleted."""
    bd = breakdown_table(table)
    if not after:
        return bd.reset_commands() if before else []
    old_counters = {name for key, scope in before.items() for name in Breakdown.of(scope).counters(key)}
    new_counters = [name for key, scope in after.items() for name in Breakdown.of(scope).counters(key)]
    commands: list[JsonCommand] = []
    if not before:
        chain = bd.ref(name=CHAIN, type="filter", hook="ingress", dev=bd.interface, prio=BREAKDOWN_PRIORITY)
        commands += [{"add": {"table": bd.table_object()}}, {"add": {"chain": {**chain, "policy": "accept"}}}]
        commands.append({"flush": {"chain": bd.ref(name=CHAIN)}})
    commands += [{"add": {"counter": bd.ref(name=name)}} for name in new_counters if name not in old_counters]
    for version in (4, 6):
        address = "ipv4_addr" if version == 4 else "ipv6_addr"
        old, new = _elements(before, version), _elements(after, version)
        for kind, second in (("proto", "inet_proto"), ("port", "inet_service")):
            name = map_name(kind, version)
            if not before:
                bd_map = bd.ref(name=name, type=[address, second], map="counter", flags=["interval"])
                commands += [{"add": {"map": bd_map}}, {"flush": {"map": bd.ref(name=name)}}]
            gone = [_key(e, version) for e, owner in old.items() if e[0] == kind and new.get(e) != owner]
            added = [[_key(e, version), owner] for e, owner in new.items() if e[0] == kind and old.get(e) != owner]
            if gone:
                commands.append({"delete": {"element": bd.ref(name=name, elem=gone)}})
            if added:
                commands.append({"add": {"element": bd.ref(name=name, elem=added)}})
        if not before:
            commands += [{"add": {"rule": bd.ref(chain=CHAIN, expr=rule)}} for rule in _rules(version)]
    kept = set(new_counters)
    commands += [{"delete": {"counter": bd.ref(name=name)}} for name in sorted(old_counters - kept)]
    return commands


Element = tuple[str, Range, int]
"""('proto' or 'port', address block, protocol or port)."""


def _elements(scopes: Mapping[str, MitigationScope], version: int) -> dict[Element, str]:
    """Family VERSION's map elements for SCOPES: disjoint address blocks, each with its owner's protocols and ports,
    to the owner's counters."""
    owners = split_nested(
        (address_range(prefix), key)
        for key, scope in scopes.items()
        for prefix in scope.target_prefixes
        if prefix.version == version
    )
    elements: dict[Element, str] = {}
    for block, owner in owners.items():
        if owner is None:
            continue
        plan = Breakdown.of(scopes[owner])
        elements.update({("proto", block, p): protocol_counter_name(owner, p) for p in plan.protocols})
        elements.update({("port", block, p): port_counter_name(owner, p) for p in plan.ports})
    return elements


def _key(element: Element, version: int) -> dict[str, object]:
    return {"concat": [render_address(element[1], version), element[2]]}


def _rules(version: int) -> list[list[dict[str, object]]]:
    daddr = {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": "daddr"}}
    l4proto = {"meta": {"key": "l4proto"}}
    by_port = {"concat": [daddr, {"payload": {"protocol": "th", "field": "dport"}}]}
    with_ports = {"match": {"op": "==", "left": l4proto, "right": {"set": list(PORT_PROTOCOLS)}}}
    return [
        [_count({"concat": [daddr, l4proto]}, map_name("proto", version))],
        [with_ports, _count(by_port, map_name("port", version))],
    ]


def _count(key: dict[str, object], map_name_: str) -> dict[str, object]:
    return {"counter": {"map": {"key": key, "data": f"@{map_name_}"}}}


def breakdown_values(
    scope: MitigationScope, key: str, values: Mapping[str, tuple[int, int]]
) -> tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]] | None:
    """(per protocol, per port) cumulative (number, packets, bytes) of mitigation KEY from the table's counter
    VALUES; None when any of its counters is missing (not counted: nothing is claimed)."""
    plan = Breakdown.of(scope)
    protocols, ports = [], []
    for protocol in plan.protocols:
        found = values.get(protocol_counter_name(key, protocol))
        if found is None:
            return None
        protocols.append((protocol, *found))
    for port in plan.ports:
        found = values.get(port_counter_name(key, port))
        if found is None:
            return None
        ports.append((port, *found))
    return tuple(protocols), tuple(ports)
