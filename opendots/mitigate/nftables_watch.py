"""What still reaches a target behind the nftables mitigator's drop: the passed-traffic counters of the top-talker
policy (opendots.mitigate.top_talkers), as libnftables JSON commands, pure data.

A second netdev table (`<table>_tt`) hooks the same interface one priority step after the mitigator's chain, so it
sees only the packets that chain let through. One rule per watched mitigation and address family counts, in a named
counter, the packets toward the mitigation's whole scope (its target prefixes, protocols and destination ports, and
its source prefixes for Call Home) that were not dropped. The mitigator puts these commands in the same `nft -f`
batch as its own change, so a narrow drop and its watch start (and a widening and the watch's removal happen)
atomically.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Mapping
from typing import Any

from opendots.domain import IPNetwork, MitigationScope
from opendots.mitigate.nftables_keys import PORT_PROTOCOLS, JsonCommand
from opendots.mitigate.nftables_render import CHAIN, CHAIN_PRIORITY, Table

WATCH_PRIORITY = CHAIN_PRIORITY + 1  # right behind the drop: only what it accepted is counted


def watch_table(table: Table) -> Table:
    """The watch table beside TABLE (same family and interface); names stay within nft's 64 characters."""
    return Table(name=f"{table.name[:61]}_tt", interface=table.interface, family=table.family)


def passed_counter_name(key: str) -> str:
    """The named counter of what still reaches mitigation KEY's targets."""
    return "p" + hashlib.sha256(key.encode()).hexdigest()[:24]


def watch_commands(table: Table, before: Collection[str], watched: Mapping[str, MitigationScope]) -> list[JsonCommand]:
    """The commands taking the watch table from counting the keys BEFORE to counting WATCHED (key → whole scope).

    The chain is rewritten whole (a handful of rules: only mitigations in their narrow phase are watched); the
    counters of keys watched before and after are kept. No key left: the table goes."""
    watch = watch_table(table)
    if not watched:
        return watch.reset_commands() if before else []
    commands: list[JsonCommand] = []
    if not before:
        commands += watch.reset_commands()
        commands.append({"add": {"table": watch.table_object()}})
        chain = watch.ref(
            name=CHAIN, type="filter", hook="ingress", dev=watch.interface, prio=WATCH_PRIORITY, policy="accept"
        )
        commands.append({"add": {"chain": chain}})
    else:
        commands.append({"flush": {"chain": watch.ref(name=CHAIN)}})
    for key in watched:
        if key not in before:
            commands.append({"add": {"counter": watch.ref(name=passed_counter_name(key), comment=key[:120])}})
    for key, scope in watched.items():
        for expressions in watch_rules(scope, passed_counter_name(key)):
            commands.append({"add": {"rule": watch.ref(chain=CHAIN, expr=expressions)}})
    for key in before:
        if key not in watched:
            commands.append({"delete": {"counter": watch.ref(name=passed_counter_name(key))}})
    return commands


def watch_rules(scope: MitigationScope, counter: str) -> list[list[dict[str, Any]]]:
    """The rules (expression lists) counting, in COUNTER, the packets SCOPE as a whole would drop."""
    rules = []
    protocols = sorted(set(scope.target_protocols))
    ports = [_number_element(p.lower, p.upper) for p in scope.target_port_ranges]
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
            protocol = [_match({"meta": {"key": "l4proto"}}, {"set": protocols})] if protocols else []
            rules.append([*address, *protocol, {"counter": counter}])
            continue
        with_ports = [p for p in protocols if p in PORT_PROTOCOLS] if protocols else list(PORT_PROTOCOLS)
        without_ports = [p for p in protocols if p not in PORT_PROTOCOLS]
        port_match = _match({"payload": {"protocol": "th", "field": "dport"}}, {"set": ports})
        if with_ports:
            protocol = _match({"meta": {"key": "l4proto"}}, {"set": with_ports})
            rules.append([*address, protocol, port_match, {"counter": counter}])
        if without_ports:
            protocol = _match({"meta": {"key": "l4proto"}}, {"set": without_ports})
            rules.append([*address, protocol, {"counter": counter}])
    return rules


def _collapsed(prefixes: Any) -> list[IPNetwork]:
    # An anonymous interval set refuses overlapping elements: merge nested and adjacent prefixes first.
    return list(ipaddress.collapse_addresses(list(prefixes)))


def _match(left: dict[str, Any], right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


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


def _number_element(lower: int, upper: int) -> Any:
    return lower if lower == upper else {"range": [lower, upper]}
