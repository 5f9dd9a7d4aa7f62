"""The nftables ruleset of the nftables mitigator, as pure data: scopes in, one libnftables JSON batch out.

No I/O here (the shell is opendots.mitigate.nftables). Layout of the table (family netdev, one ingress base chain,
plus a regular chain per address family that has a pre-filter, and the ACL chain):

* one named counter per mitigation: exact dropped packets/bytes per DOTS mitigation;
* maps from a match key to the counter of the mitigation that owns it, and exactly one rule
  `counter name <key> map @<map> drop` per non-empty map: a few rules, however many targets;
* match shapes: destination only (so every fragment matches); destination + protocol; destination + protocol +
  destination port; and two source-aware variants for RFC 9066 call home;
* destination only: one hash map per prefix length in use (the rule masks the address to that length), for the
  MAX_HASHED_LENGTHS most used lengths per family; other lengths share an interval map;
* other shapes: keys of exact values only (a host, one protocol, one port) in a hash map, keys with a prefix or a
  range in an interval map of the same shape;
* hash maps and sets have a `size`, so the kernel picks its fixed-size hash (nft_hash, nft_hash_fast for 4-byte
  keys) instead of the resizable rhashtable (no deferred resizing after a 10,000-element batch); one that outgrows
  its size is re-created, twice as big as needed, in the same batch (capacity_for);
* a destination pre-filter per address family: when that family needs more than one lookup, or a lookup dearer
  than one address hash (concatenations, intervals: pipapo), its rules move to a chain of their own
  (`targets4`/`targets6`) that the ingress chain enters only through one `goto` rule matching the destination
  against a hash set of every target's destination block at one prefix length (see _filter_sets: a superset, so
  nothing to drop is missed). Traffic to no target then pays one address hash lookup, whatever the number and
  shape of the targets: with 10,000 prefix.port-range targets the forwarding rate went from 83 % to 94 % of the
  rate with no table, because the pipapo lookup of a concatenation of ranges is only paid by traffic to a target
  (bench/mitigate.py). Ownership and counting are unchanged: the map rules, in the same order, decide;
* a destination-port gate inside a pre-filtered family: the rules of each port-keyed shape move to a chain
  (`dports4`, `sdports4`) entered by `th dport @ports4 jump ...` at the place they had, where `ports4` is an
  interval set of every such element's destination ports. Traffic to a target host on a port no mitigation
  names then skips the concatenated lookup too (a flood to such a host/port: 69 % → 89 % of the no-table rate).

Overlaps between mitigations: identical keys are owned by the mitigation applied first (it alone counts those
drops). Destination-only prefixes are matched most specific first (the interval map's ranges are split around
every more specific prefix, then the hash maps go from the longest length down), so the most specific
mitigation counts the drop. Packets are dropped either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opendots.domain import MitigationScope
from opendots.mitigate.nftables_acl import (
    ACL_CHAIN,
    AclPolicy,
    acl_rules,
    policy_counters,
    policy_limits,
    validate_policy,
)
from opendots.mitigate.nftables_keys import (
    ANY_PORT,
    ANY_PROTOCOL,
    MAX_ELEMENTS_PER_SCOPE,
    PORT_PROTOCOLS,
    ElementKey,
    JsonCommand,
    MapId,
    Range,
    Shape,
    capacity_for,
    counter_name,
    family_chain,
    scope_elements,
    split_nested,
    validate_scope,
)
from opendots.mitigate.nftables_render import CHAIN, CHAIN_PRIORITY, Table, batch, limit_set_name, render_key

__all__ = [  # the planner's public names, with those of its parts that callers import from here
    "ANY_PORT",
    "ANY_PROTOCOL",
    "CHAIN",
    "CHAIN_PRIORITY",
    "MAX_ELEMENTS_PER_SCOPE",
    "PORT_PROTOCOLS",
    "MapId",
    "Plan",
    "RulesetState",
    "Shape",
    "Table",
    "batch",
    "capacity_for",
    "chain_layout",
    "counter_name",
    "destination_filter",
    "plan_change",
    "render_key",
    "scope_elements",
    "split_nested",
    "validate_scope",
]

MAX_HASHED_LENGTHS = 6  # destination-only prefix lengths with a hash map of their own, per address family
FILTER_BUDGET = 4096  # pre-filter entries allowed (or 4 per target block, if more) before choosing a shorter length


# ---- The planner: current state + a change → one batch and the state after it ----


@dataclass
class RulesetState:
    """What this mitigator has installed in the kernel (valid once a batch of it succeeded)."""

    initialized: bool = False
    scopes: dict[str, MitigationScope] = field(default_factory=dict)  # insertion order = ownership priority
    elements: dict[str, dict[MapId, list[ElementKey]]] = field(default_factory=dict)
    installed: dict[MapId, dict[ElementKey, str]] = field(default_factory=dict)  # element → counter name
    rules: set[MapId] = field(default_factory=set)
    acls: dict[str, AclPolicy] = field(default_factory=dict)  # data-channel filtering rules, in order
    capacity: dict[MapId, int] = field(default_factory=dict)  # `size` of each installed hash map / set

    def copy(self) -> RulesetState:
        return RulesetState(
            initialized=self.initialized,
            scopes=dict(self.scopes),
            elements=dict(self.elements),
            installed={map_id: dict(owners) for map_id, owners in self.installed.items()},
            rules=set(self.rules),
            acls=dict(self.acls),
            capacity=dict(self.capacity),
        )


@dataclass
class Plan:
    commands: list[JsonCommand]
    state: RulesetState


def _desired(map_id: MapId, state: RulesetState) -> dict[ElementKey, str]:
    owned = ((element, counter_name(key)) for key in state.scopes for element in state.elements[key].get(map_id, ()))
    desired: dict[ElementKey, str] = {}
    for element, owner in owned:
        desired.setdefault(element, owner)
    return desired


def _prefix_len(block: Range, version: int) -> int:
    return (32 if version == 4 else 128) - (block[1] - block[0] + 1).bit_length() + 1


def _destination_maps(version: int, state: RulesetState) -> dict[MapId, dict[ElementKey, str]]:
    """The physical layout of the destination-only prefixes of one family.

    The MAX_HASHED_LENGTHS most used prefix lengths get a hash map each (the rule masks the address to that
    length: one O(1) lookup per length); any other length goes to the interval map. Interval ranges are split
    around every more specific prefix, hashed ones included, so whichever map matches, the most specific prefix
    owns the drop. Identical prefixes belong to the mitigation applied first.
    """
    first = _desired(MapId(version, Shape.DST.name), state)
    per_length: dict[int, int] = {}
    for (block,) in first:
        length = _prefix_len(block, version)
        per_length[length] = per_length.get(length, 0) + 1
    hashed = set(sorted(per_length, key=lambda length: (-per_length[length], -length))[:MAX_HASHED_LENGTHS])
    maps: dict[MapId, dict[ElementKey, str]] = {}
    ranged: list[tuple[Range, str | None]] = []
    for (block,), owner in first.items():
        length = _prefix_len(block, version)
        if length in hashed:
            maps.setdefault(MapId(version, Shape.DST.name, True, length), {})[(block,)] = owner
            ranged.append((block, None))  # splits the ranges of less specific prefixes, owns no range itself
        else:
            ranged.append((block, owner))
    if len(hashed) < len(per_length):
        split = split_nested(ranged)
        maps[MapId(version, Shape.DST.name)] = {(block,): owner for block, owner in split.items() if owner is not None}
    return maps


def _filter_sets(version: int, maps: set[MapId], state: RulesetState) -> dict[MapId, dict[ElementKey, str]]:
    """The destination pre-filter of one family: one hash set of destination blocks at one prefix length L, or {}.

    MAPS are the family's non-empty maps; one destination-only hash map is already a single address lookup, so it
    gets no pre-filter. L is the longest length at which the set stays within FILTER_BUDGET entries: a block
    longer than L is widened to its L-bit block (a superset: a packet to a neighbour of a target pays the map
    lookups it would have paid anyway), a shorter one is expanded into its L-bit blocks (exact). One lookup, with
    no mask at all when every target is a host, whatever the mix of prefix lengths.
    """
    if not maps or (len(maps) == 1 and all(m.shape is Shape.DST and m.prefix_len is not None for m in maps)):
        return {}
    blocks: set[Range] = set()
    for elements in state.elements.values():
        for map_id, keys in elements.items():
            if map_id.version == version:
                position = map_id.shape.value.index("daddr")
                blocks.update(key[position] for key in keys)
    length, filtered = destination_filter(version, blocks)
    if length == 0:
        return {}  # a zero-length target: everything goes to the maps anyway
    return {MapId(version, Shape.DST.name, True, length, filter=True): {(block,): "" for block in filtered}}


def destination_filter(version: int, blocks: Iterable[Range], shortest: int = 0) -> tuple[int, list[Range]]:
    """(L, the L-bit blocks) covering BLOCKS (address ranges of one family, CIDR blocks), for a hash set of
    destinations masked to L: the longest length among theirs (and at least SHORTEST) at which the set stays
    within FILTER_BUDGET entries (or 4 per block, if more). A block longer than L is widened to its L-bit block,
    a shorter one is expanded into its L-bit blocks, so the set matches every address of BLOCKS (and some more)."""
    blocks = set(blocks)
    if not blocks:
        return shortest, []
    lengths = sorted({_prefix_len(block, version) for block in blocks}, reverse=True)
    budget = max(FILTER_BUDGET, 4 * len(blocks))
    length = next(
        candidate
        for candidate in lengths  # at the shortest length nothing is expanded: that one always fits
        if sum(1 << max(0, candidate - _prefix_len(block, version)) for block in blocks) <= budget
    )
    length = max(length, shortest)
    bits = 32 if version == 4 else 128
    host_bits = bits - length
    keys: dict[Range, None] = {}
    for lower, upper in blocks:
        first = lower >> host_bits
        for network in range(first, max(first, upper >> host_bits) + 1):
            base = network << host_bits
            keys[(base, base | ((1 << host_bits) - 1))] = None
    return length, list(keys)


PORT_CHAINS = {Shape.DST_PROTO_PORT: "dports", Shape.SRC_DST_PROTO_PORTS: "sdports"}


def chain_layout(rules: Iterable[MapId]) -> dict[str, list[tuple[MapId, str | None]]]:
    """The rules of each chain, in evaluation order: (map or set, the chain its rule jumps to, if it does).

    The ACL jump, when any, goes before the ingress rules. A family with a pre-filter: the ingress chain has its
    `goto` and its chain (`targets4`) has its map rules; a family without: its map rules are in the ingress chain.
    When the family also has a port gate, the rules of each port-keyed shape move to a chain of their own
    (`dports4`, `sdports4`) entered by a `jump` through the gate at the place they had: same order, same owner.
    IPv4 first, then IPv6; within a family, rule_order.
    """
    rules = set(rules)
    layout: dict[str, list[tuple[MapId, str | None]]] = {CHAIN: []}
    for version in (4, 6):
        maps = sorted((m for m in rules if m.version == version and not m.filter), key=lambda m: m.rule_order)
        filters = [m for m in rules if m.version == version and m.filter and not m.gate]
        gates = [m for m in rules if m.version == version and m.gate]
        if not filters:
            layout[CHAIN] += [(map_id, None) for map_id in maps]
            continue
        family = family_chain(version)
        layout[CHAIN] += [(m, family) for m in sorted(filters, key=lambda m: -(m.prefix_len or 0))]
        layout[family] = []
        for map_id in maps:
            gated = PORT_CHAINS.get(map_id.shape) if gates else None
            if gated is None:
                layout[family].append((map_id, None))
                continue
            gated = f"{gated}{version}"
            if gated not in layout:
                layout[family].append((gates[0], gated))
                layout[gated] = []
            layout[gated].append((map_id, None))
    return layout


def _port_gate(version: int, state: RulesetState) -> dict[MapId, dict[ElementKey, str]]:
    """The destination ports of every port-keyed element of a family, merged into disjoint ranges, as the gate
    in front of those maps; {} when there is none or one of them is any port (the gate would let all through)."""
    ranges: set[Range] = set()
    for elements in state.elements.values():
        for map_id, keys in elements.items():
            if map_id.version == version and map_id.shape in PORT_CHAINS:
                position = map_id.shape.value.index("dport")
                ranges.update(key[position] for key in keys)
    if not ranges or ANY_PORT in ranges:
        return {}
    merged: list[list[int]] = []
    for lower, upper in sorted(ranges):
        if merged and lower <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], upper)
        else:
            merged.append([lower, upper])
    return {MapId(version, Shape.DST_PROTO_PORT.name, filter=True): {((lower, upper),): "" for lower, upper in merged}}


def plan_change(
    table: Table,
    current: RulesetState,
    put: Iterable[MitigationScope] = (),
    remove: Iterable[str] = (),
    carried_counters: Mapping[str, tuple[int, int]] | None = None,
    put_acls: Iterable[AclPolicy] = (),
    remove_acls: Iterable[str] = (),
) -> Plan:
    """The batch that takes CURRENT to CURRENT + PUT − REMOVE (and the same for ACLs), and the resulting state.

    From an uninitialized state the batch first removes any leftover table of the same name (a previous run), so
    what is enforced is exactly what this mitigator knows about. When nothing is left to enforce, the batch
    deletes the whole table: an idle mitigator leaves no hook on the interface. CARRIED_COUNTERS (counter name →
    packets, bytes) seeds the counters of re-created mitigations and ACEs, so a restart keeps what was counted.
    Raises MitigatorError, before anything is planned, for an invalid scope or ACL.
    """
    put = list(put)
    put_acls = list(put_acls)
    fresh = not current.initialized
    new = RulesetState(initialized=True) if fresh else current.copy()
    touched: set[MapId] = set()
    added_keys: list[str] = []
    removed_keys: list[str] = []
    for key in remove:
        if key in new.scopes:
            del new.scopes[key]
            touched.update(new.elements.pop(key))
            removed_keys.append(key)
    for scope in put:
        elements = scope_elements(scope)
        if scope.key in new.scopes:
            touched.update(new.elements[scope.key])
        else:
            added_keys.append(scope.key)
        new.scopes[scope.key] = scope
        new.elements[scope.key] = elements
        touched.update(elements)
    for policy in put_acls:
        validate_policy(policy)
        new.acls[policy.key] = policy
    for key in remove_acls:
        new.acls.pop(key, None)

    if not new.scopes and not new.acls:
        return Plan(commands=table.reset_commands(), state=RulesetState())

    carried = carried_counters or {}
    commands: list[JsonCommand] = []
    if fresh:
        commands += table.reset_commands()
        commands += [{"add": {"table": table.table_object()}}, {"add": {"chain": table.chain_object()}}]
    for key in added_keys:
        packets, bytes_ = carried.get(counter_name(key), (0, 0))
        commands.append({"add": {"counter": table.counter_object(key, packets, bytes_)}})
    old_ace_counters = (
        set() if fresh else {name for policy in current.acls.values() for name in policy_counters(policy)}
    )
    new_ace_counters = {name: policy.key for policy in new.acls.values() for name in policy_counters(policy)}
    for name, key in new_ace_counters.items():
        if name not in old_ace_counters:
            packets, bytes_ = carried.get(name, (0, 0))
            counter = table.ref(name=name, comment=key[:120], packets=packets, bytes=bytes_)
            commands.append({"add": {"counter": counter}})
    old_limits = {} if fresh else {name: rate for p in current.acls.values() for name, rate in policy_limits(p).items()}
    new_limits = {name: rate for policy in new.acls.values() for name, rate in policy_limits(policy).items()}
    changed_limits = [name for name, rate in new_limits.items() if name in old_limits and old_limits[name] != rate]
    for name, rate in new_limits.items():
        if name not in old_limits:
            commands.append({"add": {"limit": table.limit_object(name, rate)}})

    element_changes: list[JsonCommand] = []
    recreations: list[JsonCommand] = []  # maps that outgrew their size: deleted and re-created after the flush
    emptied: list[MapId] = []
    layout: dict[MapId, dict[ElementKey, str]] = {}
    previous: dict[MapId, dict[ElementKey, str]] = {} if fresh else current.installed
    for logical in touched:
        if logical.shape is Shape.DST:
            layout.update(_destination_maps(logical.version, new))
            layout.update(  # maps of this family's old layout that the new one no longer has
                {
                    map_id: {}
                    for map_id in previous
                    if map_id.shape is Shape.DST
                    and not map_id.filter
                    and map_id.version == logical.version
                    and map_id not in layout
                }
            )
        else:
            layout[logical] = _desired(logical, new)
    for version in sorted({logical.version for logical in touched}):
        maps = {
            map_id
            for map_id in (*layout, *previous)
            if map_id.version == version and not map_id.filter and layout.get(map_id, previous.get(map_id))
        }
        filters = _filter_sets(version, maps, new)
        if filters:
            filters.update(_port_gate(version, new))
        layout.update(filters)
        layout.update({m: {} for m in previous if m.filter and m.version == version and m not in filters})
    for map_id in sorted(layout, key=lambda map_id: map_id.sort_key):
        before = previous.get(map_id, {})
        after = layout[map_id]
        if before and not after:
            emptied.append(map_id)
            new.installed.pop(map_id, None)
            new.capacity.pop(map_id, None)
            continue
        new.installed[map_id] = after
        kind = "set" if map_id.filter else "map"
        if before and map_id.hashed and len(after) > new.capacity[map_id]:
            # A full fixed-size hash refuses more elements: a bigger one replaces it (its rule is rewritten).
            new.capacity[map_id] = capacity_for(len(after))
            recreations.append({"delete": {kind: table.ref(name=map_id.name)}})
            recreations.append({"add": {kind: table.map_object(map_id, new.capacity[map_id])}})
            recreations.append({"add": {"element": table.elements(map_id, after, after)}})
            continue
        if after and not before:
            capacity = capacity_for(len(after)) if map_id.hashed else None
            if capacity is not None:
                new.capacity[map_id] = capacity
            commands.append({"add": {kind: table.map_object(map_id, capacity)}})
            if table.rate_limit is not None and not map_id.filter:
                commands.append({"add": {"set": table.limit_set_object(map_id)}})
        gone = [element for element, owner in before.items() if after.get(element) != owner]
        coming = [element for element, owner in after.items() if before.get(element) != owner]
        if gone:
            element_changes.append({"delete": {"element": table.elements(map_id, gone, None)}})
        if coming:
            element_changes.append({"add": {"element": table.elements(map_id, coming, after)}})

    had_acls = bool(current.acls) and not fresh
    acl_changed = fresh or new.acls != current.acls
    if new.acls and not had_acls:
        commands.append({"add": {"chain": table.ref(name=ACL_CHAIN)}})

    # Rules: the jump to the ACL chain when there are ACLs, then the pre-filters' gotos and the map rules (see
    # chain_layout). When they change, or a map they refer to is re-created, every chain of ours is rewritten in
    # the same batch, so no packet ever sees a half-built chain and no rule is left pointing at an empty map.
    new.rules = {map_id for map_id, owners in new.installed.items() if owners}
    rewrite_chain = fresh or new.rules != current.rules or bool(new.acls) != had_acls or bool(recreations)
    old_chains = set() if fresh else set(chain_layout(current.rules))
    new_chains = set(chain_layout(new.rules))
    if rewrite_chain and not fresh:
        commands += [{"flush": {"chain": table.ref(name=name)}} for name in sorted(old_chains)]
    commands += recreations
    commands += element_changes
    if acl_changed and had_acls:
        commands.append({"flush": {"chain": table.ref(name=ACL_CHAIN)}})
        # Limits nothing refers to any more (the flush dropped their rules) go; a changed rate is a new object.
        gone_limits = [name for name in old_limits if name not in new_limits] + changed_limits
        commands += [{"delete": {"limit": table.ref(name=name)}} for name in gone_limits]
        commands += [{"add": {"limit": table.limit_object(name, new_limits[name])}} for name in changed_limits]
    if acl_changed and new.acls:
        rules = acl_rules(new.acls.values())
        commands += [{"add": {"rule": table.ref(chain=ACL_CHAIN, expr=expressions)}} for expressions in rules]
    commands += [{"delete": {"set" if map_id.filter else "map": table.ref(name=map_id.name)}} for map_id in emptied]
    if table.rate_limit is not None:
        limited = [map_id for map_id in emptied if not map_id.filter]
        commands += [{"delete": {"set": table.ref(name=limit_set_name(map_id))}} for map_id in limited]
    if had_acls and not new.acls:
        commands.append({"delete": {"chain": table.ref(name=ACL_CHAIN)}})
    commands += [{"delete": {"chain": table.ref(name=name)}} for name in sorted(old_chains - new_chains)]
    if rewrite_chain:
        commands += [{"add": {"chain": table.ref(name=name)}} for name in sorted(new_chains - old_chains - {CHAIN})]
        if new.acls:
            commands.append({"add": {"rule": table.ref(chain=CHAIN, expr=[{"jump": {"target": ACL_CHAIN}}])}})
        for chain, entries in chain_layout(new.rules).items():
            commands += [{"add": {"rule": table.rule_object(map_id, chain, target)}} for map_id, target in entries]
    commands += [{"delete": {"counter": table.ref(name=counter_name(key))}} for key in removed_keys]
    commands += [{"delete": {"counter": table.ref(name=name)}} for name in old_ace_counters - set(new_ace_counters)]
    return Plan(commands=commands, state=new)
