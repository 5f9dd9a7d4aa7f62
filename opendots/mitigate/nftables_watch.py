"""The counting table beside the nftables mitigator's: what still reaches each mitigation's targets behind the drop
(RFC 9244 total-traffic = dropped + passed), and for the top-talker policy (opendots.mitigate.top_talkers) what
reaches a narrow mitigation's scope and the rate limit of named talkers, as libnftables JSON commands, pure data.

A second netdev table (`<table>_tt`) hooks the same interface one priority step after the mitigator's chain, so it
sees only the packets that chain let through. For every enforced mitigation, a target counter counts the packets
toward its target prefixes (any protocol or port, sources ignored): what passed toward its targets. One rule per
address family, `counter name ip daddr map @passed4`, looks the destination up in an interval map from disjoint
address ranges to those counters: one lookup per packet however many mitigations (a rule per mitigation would make
every packet walk them all). Nested prefixes are split so the most specific one counts, identical ones count for the
mitigation applied first: the ownership rule of the drop maps (opendots.mitigate.nftables_ruleset), so a packet is
counted once, dropped or passed. The elements change by difference, like the drop maps. For each mitigation in its
narrow phase, besides: with the "rate-limit" action,
first one rule per address family dropping (and counting, in the mitigation's dropped counter here) the named
talkers' packets toward the target beyond a byte rate they share; then one rule per family counting, in a passed
counter, the packets toward the mitigation's whole scope (its target prefixes, protocols and destination ports,
and its source prefixes for Call Home) that were not dropped. The mitigator puts these commands in the same
`nft -f` batch as its own change, so a narrow phase starts, and a widening ends it, atomically.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opendots.domain import IPNetwork, MitigationScope
from opendots.mitigate.nftables_keys import PORT_PROTOCOLS, JsonCommand, Range, address_range, split_nested
from opendots.mitigate.nftables_render import CHAIN, CHAIN_PRIORITY, Table, render_address

WATCH_PRIORITY = CHAIN_PRIORITY + 1  # right behind the drop: only what it accepted is counted


def watch_table(table: Table) -> Table:
    """The watch table beside TABLE (same family and interface); names stay within nft's 64 characters."""
    return Table(name=f"{table.name[:61]}_tt", interface=table.interface, family=table.family)


def _name(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:24]


def passed_counter_name(key: str) -> str:
    """The named counter of what still reaches mitigation KEY's targets."""
    return _name("p", key)


def limited_counter_name(key: str) -> str:
    """The named counter of what the rate limit of mitigation KEY's named talkers dropped."""
    return _name("d", key)


def target_counter_name(key: str) -> str:
    """The named counter of everything that still reaches mitigation KEY's target prefixes."""
    return _name("t", key)


def limit_name(key: str) -> str:
    return _name("r", key)


@dataclass(frozen=True)
class Watch:
    """One mitigation in its narrow phase, as the watch table sees it."""

    scope: MitigationScope
    """The whole scope: what reaches it is counted as passed."""
    limited: MitigationScope | None = None
    """The "rate-limit" action: the narrow scope, limited here to `rate` bytes per second (None: the narrow scope is
    dropped by the mitigator's own table)."""
    rate: int = 0
    seed: tuple[int, int] = (0, 0)
    """(packets, bytes) the dropped counter starts from: the mitigation's counts so far."""


def target_map_name(version: int) -> str:
    return f"passed{version}"


def target_elements(counted: Mapping[str, MitigationScope], version: int) -> dict[Range, str]:
    """The elements of family VERSION's target map for COUNTED (key → scope, in the order applied): disjoint address
    ranges → target counter name."""
    blocks: list[tuple[Range, str | None]] = [
        (address_range(prefix), target_counter_name(key))
        for key, scope in counted.items()
        for prefix in scope.target_prefixes
        if prefix.version == version
    ]
    return {block: owner for block, owner in split_nested(blocks).items() if owner is not None}


def watch_commands(
    table: Table,
    before: Mapping[str, bool],
    watched: Mapping[str, Watch],
    counted_before: Mapping[str, MitigationScope] | None = None,
    counted: Mapping[str, MitigationScope] | None = None,
) -> list[JsonCommand]:
    """The commands taking the watch table from BEFORE (key → whether its talkers were rate-limited) to WATCHED,
    and its target counters from COUNTED_BEFORE to COUNTED (key → scope whose target prefixes are counted).

    The chain is rewritten whole (two rules for the target maps, and the narrow mitigations': a handful); the target
    maps change by difference; counters and limits of keys present before and after are kept. No key left: the table
    goes."""
    watch = watch_table(table)
    counted, counted_before = counted or {}, counted_before or {}
    if not watched and not counted:
        return watch.reset_commands() if before or counted_before else []
    commands: list[JsonCommand] = []
    if not before and not counted_before:
        commands += watch.reset_commands()
        commands.append({"add": {"table": watch.table_object()}})
        chain = watch.ref(
            name=CHAIN, type="filter", hook="ingress", dev=watch.interface, prio=WATCH_PRIORITY, policy="accept"
        )
        commands.append({"add": {"chain": chain}})
    else:
        commands.append({"flush": {"chain": watch.ref(name=CHAIN)}})
    for key, entry in watched.items():
        if key not in before:
            commands.append({"add": {"counter": watch.ref(name=passed_counter_name(key), comment=key[:120])}})
        if entry.limited is not None and not before.get(key, False):
            packets, bytes_ = entry.seed
            counter = watch.ref(name=limited_counter_name(key), comment=key[:120], packets=packets, bytes=bytes_)
            commands.append({"add": {"counter": counter}})
            commands.append({"add": {"limit": watch.limit_object(limit_name(key), entry.rate)}})
    for key, entry in watched.items():  # every limit before any count: a packet dropped there has not passed
        if entry.limited is not None:
            verdict = [{"limit": limit_name(key)}, {"counter": limited_counter_name(key)}, {"drop": None}]
            for matches in scope_matches(entry.limited):
                commands.append({"add": {"rule": watch.ref(chain=CHAIN, expr=[*matches, *verdict])}})
    for key, entry in watched.items():
        for matches in scope_matches(entry.scope):
            expressions = [*matches, {"counter": passed_counter_name(key)}]
            commands.append({"add": {"rule": watch.ref(chain=CHAIN, expr=expressions)}})
    for key in counted:
        if key not in counted_before:
            commands.append({"add": {"counter": watch.ref(name=target_counter_name(key), comment=key[:120])}})
    if not before and not counted_before:  # the maps after the counters: nft 1.0.6 refuses the elements otherwise
        for version in (4, 6):
            address = "ipv4_addr" if version == 4 else "ipv6_addr"
            target_map = watch.ref(name=target_map_name(version), type=address, map="counter", flags=["interval"])
            commands.append({"add": {"map": target_map}})
    for version in (4, 6):
        old, new = target_elements(counted_before, version), target_elements(counted, version)
        name = target_map_name(version)
        gone = [render_address(block, version) for block, owner in old.items() if new.get(block) != owner]
        added = [[render_address(block, version), owner] for block, owner in new.items() if old.get(block) != owner]
        if gone:
            commands.append({"delete": {"element": watch.ref(name=name, elem=gone)}})
        if added:
            commands.append({"add": {"element": watch.ref(name=name, elem=added)}})
        daddr = {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": "daddr"}}
        rule = [{"counter": {"map": {"key": daddr, "data": f"@{name}"}}}]  # no element: the rule does nothing
        if counted:
            commands.append({"add": {"rule": watch.ref(chain=CHAIN, expr=rule)}})
    for key in counted_before:
        if key not in counted:
            commands.append({"delete": {"counter": watch.ref(name=target_counter_name(key))}})
    for key, limited in before.items():
        if key not in watched:
            commands.append({"delete": {"counter": watch.ref(name=passed_counter_name(key))}})
        if limited and (key not in watched or watched[key].limited is None):
            commands.append({"delete": {"counter": watch.ref(name=limited_counter_name(key))}})
            commands.append({"delete": {"limit": watch.ref(name=limit_name(key))}})
    return commands


def scope_matches(scope: MitigationScope) -> list[list[dict[str, Any]]]:
    """The match expressions, one list per rule, of the packets SCOPE would drop: target prefixes, protocols,
    destination ports, source prefixes. Source ports are left out: a superset of the scope's traffic."""
    rules = []
    protocols = sorted(set(scope.target_protocols))
    ports = [p.lower if p.lower == p.upper else {"range": [p.lower, p.upper]} for p in scope.target_port_ranges]
    for version in (4, 6):
        targets = _collapsed(p for p in scope.target_prefixes if p.version == version)
        if not targets:
            continue
        address = [_match(_address_field(version, "daddr"), _address_set(targets))]
        if scope.source_prefixes:
            sources = _collapsed(p for p in scope.source_prefixes if p.version == version)
            if not sources:
                continue
            address.append(_match(_address_field(version, "saddr"), _address_set(sources)))
        if not ports:
            rules.append([*address, *([_protocols(protocols)] if protocols else [])])
            continue
        with_ports = [p for p in protocols if p in PORT_PROTOCOLS] if protocols else list(PORT_PROTOCOLS)
        without_ports = [p for p in protocols if p not in PORT_PROTOCOLS]
        if with_ports:
            port_match = _match({"payload": {"protocol": "th", "field": "dport"}}, {"set": ports})
            rules.append([*address, _protocols(with_ports), port_match])
        if without_ports:
            rules.append([*address, _protocols(without_ports)])
    return rules


def _collapsed(prefixes: Iterable[IPNetwork]) -> list[IPNetwork]:
    # An anonymous interval set refuses overlapping elements: merge nested and adjacent prefixes first.
    return list(ipaddress.collapse_addresses(list(prefixes)))  # type: ignore[arg-type]


def _match(left: dict[str, Any], right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


def _protocols(protocols: list[int]) -> dict[str, Any]:
    return _match({"meta": {"key": "l4proto"}}, {"set": protocols})


def _address_field(version: int, field_name: str) -> dict[str, Any]:
    return {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": field_name}}


def _address_set(prefixes: list[IPNetwork]) -> dict[str, Any]:
    elements: list[Any] = []
    for prefix in prefixes:
        if prefix.prefixlen == prefix.max_prefixlen:
            elements.append(str(prefix.network_address))
        else:
            elements.append({"prefix": {"addr": str(prefix.network_address), "len": prefix.prefixlen}})
    return {"set": elements}
