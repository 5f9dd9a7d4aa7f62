"""The breakdown table beside the nftables mitigator's: all the traffic toward each mitigation's targets, counted per
transport protocol and per destination port (RFC 9244 §8.3 'total-traffic-protocol', 'total-traffic-port'), as
libnftables JSON commands, pure data.

A third netdev table (`<table>_bd`) hooks the same interface one priority step BEFORE the mitigator's chain, so it
counts what arrives toward a target, whether the mitigator then drops it or not: dropped + passed, the RFC's total
traffic. Two rules per address family, each one map lookup per packet however many mitigations:
`counter name ip daddr . meta l4proto map @bproto4`, and, for the protocols with ports,
`counter name ip daddr . th dport map @bport4`; the maps are interval maps from (address range . protocol) and
(address range . port) to named counters, one per (mitigation, protocol) and (mitigation, port).

Those concatenations of ranges are pipapo lookups, whose cost grows with the number of elements: paid by every
packet, they cost the traffic to no target most of its forwarding rate (bench/mitigate.py --count-breakdown, 10,000
IPv6 hosts: 37 % of the rate with the tables dormant). So the two rules of a family sit in a chain of their own
(`targets4`), entered only by a `goto` from the base chain when the destination, masked to one prefix length, is
in a hash set of every counted block (`bdst4`, the drop table's pre-filter: opendots.mitigate.nftables_ruleset.
destination_filter): traffic to no target pays one hash lookup; what reaches a target is counted exactly as before
(the set covers every address of every block). Likewise the port lookup is gated by a hash set of every port
counted (`bports`).

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
from opendots.mitigate.nftables_keys import (
    PORT_PROTOCOLS,
    JsonCommand,
    Range,
    address_range,
    family_chain,
    split_nested,
)
from opendots.mitigate.nftables_render import CHAIN, CHAIN_PRIORITY, Table, render_address
from opendots.mitigate.nftables_ruleset import destination_filter

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
    commands += _port_gate_changes(bd, before, after)
    gotos: list[JsonCommand] = []
    rewrite = not before  # the base chain's gotos, when a family's filter length comes or goes or changes
    for version in (4, 6):
        address = "ipv4_addr" if version == 4 else "ipv6_addr"
        old, new = _elements(before, version), _elements(after, version)
        if not before:
            targets = bd.ref(name=family_chain(version))
            commands += [{"add": {"chain": targets}}, {"flush": {"chain": targets}}]
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
            commands += [{"add": {"rule": bd.ref(chain=family_chain(version), expr=rule)}} for rule in _rules(version)]
        was, now = _filter(before, version), _filter(after, version)
        rewrite = rewrite or was[0] != now[0]
        commands += _filter_changes(bd, version, was, now, fresh=not before)
        if now[1]:
            gotos.append({"add": {"rule": bd.ref(chain=CHAIN, expr=_goto(version, now[0]))}})
    if rewrite:  # in the same batch: no packet sees the chain without its gotos
        commands += [{"flush": {"chain": bd.ref(name=CHAIN)}}] if before else []
        commands += gotos
    kept = set(new_counters)
    commands += [{"delete": {"counter": bd.ref(name=name)}} for name in sorted(old_counters - kept)]
    return commands


Filter = tuple[int | None, list[Range]]
"""(prefix length, destination blocks at it) of a family's pre-filter set; (None, []) when it counts nothing."""


def _filter(scopes: Mapping[str, MitigationScope], version: int) -> Filter:
    """The pre-filter covering the target prefixes of SCOPES in family VERSION (CIDR blocks, as it wants them)."""
    blocks = {address_range(p) for scope in scopes.values() for p in scope.target_prefixes if p.version == version}
    if not blocks:
        return None, []
    return destination_filter(version, blocks, shortest=1)  # at least /1: a /0 target is two blocks


def filter_name(version: int) -> str:
    return f"bdst{version}"


def _filter_changes(bd: Table, version: int, was: Filter, now: Filter, fresh: bool) -> list[JsonCommand]:
    """Family VERSION's pre-filter set from WAS to NOW: by difference at the same length; emptied and filled again
    when the length changes or the table is (re)built (FRESH: its content is unknown). No `size`: nft then gives
    it a resizable hash, so it never has to be re-created to grow (its name stays that of every length)."""
    name = filter_name(version)
    commands: list[JsonCommand] = []
    if fresh:
        commands.append({"add": {"set": bd.ref(name=name, type="ipv4_addr" if version == 4 else "ipv6_addr")}})
    if fresh or was[0] != now[0]:
        commands.append({"flush": {"set": bd.ref(name=name)}})
        gone, added = [], now[1]
    else:
        old_set, new_set = set(was[1]), set(now[1])
        gone = [block for block in was[1] if block not in new_set]
        added = [block for block in now[1] if block not in old_set]
    if gone:
        commands.append({"delete": {"element": bd.ref(name=name, elem=[_base(b, version) for b in gone])}})
    if added:
        commands.append({"add": {"element": bd.ref(name=name, elem=[_base(b, version) for b in added])}})
    return commands


def _base(block: Range, version: int) -> str:
    return render_address((block[0], block[0]), version)  # the set holds addresses masked to the filter's length


def _goto(version: int, length: int | None) -> list[dict[str, object]]:
    """`ip daddr & MASK @bdst4 goto targets4`: the base chain's way into family VERSION's counting rules."""
    daddr: dict[str, object] = {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": "daddr"}}
    bits = 32 if version == 4 else 128
    assert length is not None
    if length < bits:
        mask = ((1 << length) - 1) << (bits - length)
        daddr = {"&": [daddr, render_address((mask, mask), version)]}
    match = {"match": {"op": "==", "left": daddr, "right": f"@{filter_name(version)}"}}
    return [match, {"goto": {"target": family_chain(version)}}]


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
    dport = {"payload": {"protocol": "th", "field": "dport"}}
    with_ports = {"match": {"op": "==", "left": l4proto, "right": {"set": list(PORT_PROTOCOLS)}}}
    gate = {"match": {"op": "==", "left": dport, "right": f"@{PORT_GATE}"}}
    return [
        [_count({"concat": [daddr, l4proto]}, map_name("proto", version))],
        [with_ports, gate, _count({"concat": [daddr, dport]}, map_name("port", version))],
    ]


PORT_GATE = "bports"
"""The hash set of every port counted (both families): a packet to a target on a port no mitigation counts is
spared the (address . port) lookup (bench/mitigate.py, a flood to a target host on another port)."""


def _port_gate_changes(
    bd: Table, before: Mapping[str, MitigationScope], after: Mapping[str, MitigationScope]
) -> list[JsonCommand]:
    """The port gate from BEFORE's ports to AFTER's, by difference (BEFORE empty: made, emptied, filled)."""
    old = {port for scope in before.values() for port in Breakdown.of(scope).ports}
    new = {port for scope in after.values() for port in Breakdown.of(scope).ports}
    commands: list[JsonCommand] = []
    if not before:
        commands.append({"add": {"set": bd.ref(name=PORT_GATE, type="inet_service")}})
        commands.append({"flush": {"set": bd.ref(name=PORT_GATE)}})
    if old - new:
        commands.append({"delete": {"element": bd.ref(name=PORT_GATE, elem=sorted(old - new))}})
    if new - old:
        commands.append({"add": {"element": bd.ref(name=PORT_GATE, elem=sorted(new - old))}})
    return commands


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
