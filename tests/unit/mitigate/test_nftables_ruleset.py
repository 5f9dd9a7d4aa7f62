"""The nftables planner (pure): scopes → map elements → one JSON batch. The kernel side is in tests/e2e."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendots.mitigate.base import MitigationScope, MitigatorError, PortRange
from opendots.mitigate.nftables import DropRates
from opendots.mitigate.nftables_ruleset import (
    ANY_PORT,
    ANY_PROTOCOL,
    PORT_PROTOCOLS,
    MapId,
    RulesetState,
    Table,
    capacity_for,
    chain_layout,
    counter_name,
    plan_change,
    render_key,
    scope_elements,
    split_nested,
)

TABLE = Table(name="opendots", interface="eth0")


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def block(text: str) -> tuple[int, int]:
    network = net(text)
    return int(network.network_address), int(network.broadcast_address)


def verbs(commands: list[dict]) -> list[tuple[str, str]]:
    return [(verb, next(iter(body))) for command in commands for verb, body in command.items()]


# ---- scope → elements ----


def test_destination_only_scope_uses_the_destination_map_of_each_family():
    elements = scope_elements(MitigationScope("k", (net("203.0.113.0/24"), net("2001:db8::/48"))))
    assert elements == {
        MapId(4, "DST"): [(block("203.0.113.0/24"),)],
        MapId(6, "DST"): [(block("2001:db8::/48"),)],
    }


def test_ports_without_protocols_mean_every_port_carrying_protocol():
    elements = scope_elements(MitigationScope("k", (net("203.0.113.5/32"),), target_port_ranges=(PortRange(53, 53),)))
    assert elements == {
        MapId(4, "DST_PROTO_PORT", exact=True): [(block("203.0.113.5/32"), (p, p), (53, 53)) for p in PORT_PROTOCOLS]
    }


def test_portless_protocols_in_a_port_scope_match_the_whole_protocol():
    scope = MitigationScope(
        "k", (net("203.0.113.5/32"),), target_port_ranges=(PortRange(1, 2), PortRange(8, 9)), target_protocols=(1, 17)
    )
    elements = scope_elements(scope)
    target = block("203.0.113.5/32")
    assert elements[MapId(4, "DST_PROTO_PORT")] == [(target, (17, 17), (1, 2)), (target, (17, 17), (8, 9))]
    assert elements[MapId(4, "DST_PROTO", exact=True)] == [(target, (1, 1))]


def test_source_prefixes_pair_only_with_targets_of_their_family():
    scope = MitigationScope(
        "k", (net("203.0.113.0/24"), net("2001:db8:1::/48")), source_prefixes=(net("198.51.100.0/24"),)
    )
    assert scope_elements(scope) == {
        MapId(4, "SRC_DST_PROTO"): [(block("198.51.100.0/24"), block("203.0.113.0/24"), ANY_PROTOCOL)]
    }


def test_source_ports_without_source_prefix_match_any_source():
    scope = MitigationScope(
        "k", (net("2001:db8::1/128"),), source_port_ranges=(PortRange(123, 123),), target_protocols=(17,)
    )
    assert scope_elements(scope) == {
        MapId(6, "SRC_DST_PROTO_PORTS"): [(block("::/0"), block("2001:db8::1/128"), (17, 17), (123, 123), ANY_PORT)]
    }


@pytest.mark.parametrize(
    "scope",
    [
        MitigationScope("k", ()),
        MitigationScope("", (net("192.0.2.1/32"),)),
        MitigationScope("k", (net("192.0.2.1/32"),), target_port_ranges=(PortRange(0, 65536),)),
        MitigationScope("k", (net("192.0.2.1/32"),), source_port_ranges=(PortRange(-1, 5),)),
        MitigationScope("k", (net("192.0.2.1/32"),), target_port_ranges=(PortRange(9, 8),)),
        MitigationScope("k", (net("192.0.2.1/32"),), target_protocols=(-1,)),
        MitigationScope("k", ("192.0.2.1/32",)),  # type: ignore[arg-type]
        MitigationScope("k", (net("2001:db8::/32"),), source_prefixes=(net("192.0.2.0/24"),)),
        MitigationScope(
            "k",
            tuple(net(f"2001:db8::{i:x}/128") for i in range(1000)),
            target_port_ranges=tuple(PortRange(p, p) for p in range(300)),
            target_protocols=(6,),
        ),
    ],
)
def test_invalid_or_oversized_scopes_are_refused(scope: MitigationScope):
    with pytest.raises(MitigatorError):
        scope_elements(scope)


# ---- nested prefixes ----


def test_nested_blocks_are_split_and_the_most_specific_owner_wins():
    outer, inner = block("203.0.113.0/24"), block("203.0.113.8/29")
    assert split_nested([(outer, "a"), (inner, "b")]) == {
        (outer[0], inner[0] - 1): "a",
        inner: "b",
        (inner[1] + 1, outer[1]): "a",
    }


def test_identical_blocks_belong_to_the_first_owner_and_same_owner_nesting_is_not_split():
    outer, inner = block("203.0.113.0/24"), block("203.0.113.8/29")
    assert split_nested([(outer, "a"), (outer, "b")]) == {outer: "a"}
    assert split_nested([(outer, "a"), (inner, "a")]) == {outer: "a"}


prefixes = st.builds(
    lambda length, host: ipaddress.ip_network(f"192.0.2.{host}/{length}", strict=False),
    st.integers(24, 32),
    st.integers(0, 255),
)


@given(st.lists(st.tuples(prefixes, st.sampled_from("abc")), max_size=12))
def test_split_ranges_are_disjoint_and_every_address_goes_to_its_most_specific_first_owner(entries):
    entries = [(network, owner) for network, owner in entries]
    result = split_nested([((int(n.network_address), int(n.broadcast_address)), owner) for n, owner in entries])
    ordered = sorted(result)
    assert all(left[1] < right[0] for left, right in itertools.pairwise(ordered))
    base = int(ipaddress.ip_address("192.0.2.0"))
    for address in range(base, base + 256):
        covering = [(n, o) for n, o in entries if int(n.network_address) <= address <= int(n.broadcast_address)]
        owners = [owner for (lower, upper), owner in result.items() if lower <= address <= upper]
        if not covering:
            assert owners == []
            continue
        longest = max(n.prefixlen for n, _ in covering)
        first_most_specific = next(o for n, o in covering if n.prefixlen == longest)
        assert owners == [first_most_specific]


# ---- rendering ----


def test_keys_render_as_prefixes_hosts_and_ranges():
    assert render_key(MapId(4, "DST"), (block("203.0.113.0/24"),)) == {"prefix": {"addr": "203.0.113.0", "len": 24}}
    assert render_key(MapId(6, "DST"), (block("2001:db8::1/128"),)) == "2001:db8::1"
    lower, upper = int(ipaddress.ip_address("203.0.113.3")), int(ipaddress.ip_address("203.0.113.9"))
    assert render_key(MapId(4, "DST"), ((lower, upper),)) == {"range": ["203.0.113.3", "203.0.113.9"]}
    key = (block("203.0.113.1/32"), (17, 17), (1000, 2000))
    assert render_key(MapId(4, "DST_PROTO_PORT"), key) == {"concat": ["203.0.113.1", 17, {"range": [1000, 2000]}]}


# ---- planning batches ----


def test_first_change_replaces_leftovers_then_creates_table_chain_counter_map_rule_and_elements():
    plan = plan_change(TABLE, RulesetState(), put=[MitigationScope("c/1", (net("203.0.113.0/24"),))])
    assert verbs(plan.commands) == [
        ("add", "table"),
        ("delete", "table"),
        ("add", "table"),
        ("add", "chain"),
        ("add", "counter"),
        ("add", "map"),
        ("add", "element"),
        ("add", "rule"),
    ]
    chain = plan.commands[3]["add"]["chain"]
    assert (chain["hook"], chain["dev"], chain["type"]) == ("ingress", "eth0", "filter")
    assert plan.state.rules == {MapId(4, "DST", exact=True, prefix_len=24)}


def test_one_batch_per_change_regardless_of_the_number_of_targets():
    targets = tuple(net(f"2001:db8:{i:x}::/48") for i in range(10_000))
    plan = plan_change(TABLE, RulesetState(), put=[MitigationScope("c/1", targets)])
    rules = [command for command in plan.commands if "rule" in command.get("add", {})]
    elements = [command["add"]["element"] for command in plan.commands if "element" in command.get("add", {})]
    assert len(rules) == 1 and len(elements) == 1 and len(elements[0]["elem"]) == 10_000


def test_nested_prefixes_get_per_length_hash_maps_longest_first_and_the_last_withdraw_drops_the_table():
    wide = MitigationScope("c/wide", (net("203.0.113.0/24"),))
    narrow = MitigationScope("c/narrow", (net("203.0.113.8/29"),))
    state = plan_change(TABLE, RulesetState(), put=[wide]).state
    with_narrow = plan_change(TABLE, state, put=[narrow])
    assert verbs(with_narrow.commands) == [
        ("add", "counter"),
        ("add", "map"),
        ("add", "set"),  # two lookups now: one pre-filter lookup in front of them (the /24 as eight /29s)
        ("flush", "chain"),
        ("add", "element"),
        ("add", "element"),
        ("add", "chain"),
        ("add", "rule"),
        ("add", "rule"),
        ("add", "rule"),
    ]
    assert filter_contents(with_narrow.state, 4) == {29: {f"203.0.113.{8 * i}" for i in range(32)}}
    rules = [
        c["add"]["rule"]["expr"][0]["counter"]["map"]
        for c in with_narrow.commands
        if "counter" in c.get("add", {}).get("rule", {"expr": [{}]})["expr"][0]
    ]
    assert [rule["data"] for rule in rules] == ["@dst4_len29", "@dst4_len24"]
    assert rules[0]["key"] == {"&": [{"payload": {"protocol": "ip", "field": "daddr"}}, "255.255.255.248"]}
    element = next(c["add"]["element"] for c in with_narrow.commands if "element" in c.get("add", {}))
    assert element["elem"] == [["203.0.113.8", counter_name("c/narrow")]]

    without = plan_change(TABLE, with_narrow.state, remove=["c/narrow"])
    assert verbs(without.commands) == [
        ("flush", "chain"),
        ("flush", "chain"),
        ("delete", "map"),
        ("delete", "set"),
        ("delete", "chain"),
        ("add", "rule"),
        ("delete", "counter"),
    ]
    empty = plan_change(TABLE, without.state, remove=["c/wide"])
    assert verbs(empty.commands) == [("add", "table"), ("delete", "table")]
    assert not empty.state.initialized


def test_rarely_used_prefix_lengths_share_an_interval_map_split_around_more_specific_prefixes():
    # Seven lengths: the six with most prefixes are hashed, the /36 (one prefix) goes to the interval map.
    lengths = (48, 56, 60, 62, 63, 64)
    scopes = [MitigationScope(f"c/{n}-{i}", (net(f"2001:db8:{i:x}::/{n}"),)) for n in lengths for i in (0x10, 0x20)]
    outer = MitigationScope("c/outer", (net("2001:db8::/36"),))  # covers every prefix above
    state = plan_change(TABLE, RulesetState(), put=[*scopes, outer]).state
    interval = state.installed[MapId(6, "DST")]
    hashed = [m.prefix_len for m in state.installed if m.prefix_len is not None and not m.filter]
    assert sorted(hashed) == list(lengths)
    outer_block = block("2001:db8::/36")
    # The /36's ranges cover it all except the hashed /48s (which hold every more specific prefix).
    first, second = block("2001:db8:10::/48"), block("2001:db8:20::/48")
    assert sorted(interval) == [
        ((outer_block[0], first[0] - 1),),
        ((first[1] + 1, second[0] - 1),),
        ((second[1] + 1, outer_block[1]),),
    ]
    assert set(interval.values()) == {counter_name("c/outer")}
    ordered = sorted((m for m in state.rules if not m.filter), key=lambda map_id: map_id.rule_order)
    assert ordered[0] == MapId(6, "DST")  # the interval rule first, then the hashed lengths, longest first
    assert [map_id.prefix_len for map_id in ordered[1:]] == sorted(lengths, reverse=True)


def test_exact_keys_go_to_hash_maps_whose_rules_come_before_the_ranges():
    hosts = MitigationScope("c/hosts", (net("203.0.113.7/32"), net("2001:db8::7/128")), target_protocols=(17,))
    ranges = MitigationScope("c/ranges", (net("203.0.113.0/24"),), target_protocols=(6,))
    plan = plan_change(TABLE, RulesetState(), put=[ranges, hosts])
    maps = [command["add"]["map"] for command in plan.commands if "map" in command.get("add", {})]
    assert {m["name"]: ("flags" in m, "size" in m) for m in maps} == {
        "dst_proto4": (True, False),  # interval: no size
        "dst_proto4_exact": (False, True),  # hash: sized, the kernel picks its fixed-size hash
        "dst_proto6_exact": (False, True),
    }
    rules = [command["add"]["rule"] for command in plan.commands if "rule" in command.get("add", {})]
    map_rules = [
        (rule["chain"], rule["expr"][0]["counter"]["map"]["data"]) for rule in rules if "counter" in rule["expr"][0]
    ]
    assert map_rules == [
        ("targets4", "@dst_proto4_exact"),
        ("targets4", "@dst_proto4"),
        ("targets6", "@dst_proto6_exact"),
    ]


def pre_filters(plan) -> dict[str, tuple[str, list[str]]]:
    """Pre-filter rules of the ingress chain: set name → (goto target, ...) and the sets' planned contents."""
    gotos = {}
    for command in plan.commands:
        rule = command.get("add", {}).get("rule")
        if rule and rule["chain"] == "ingress" and "goto" in rule["expr"][-1]:
            gotos[rule["expr"][0]["match"]["right"].lstrip("@")] = rule["expr"][-1]["goto"]["target"]
    return gotos


def filter_contents(state: RulesetState, version: int) -> dict[int, set[str]]:
    return {
        map_id.prefix_len: {str(ipaddress.ip_address(key[0][0])) for key in keys}
        for map_id, keys in state.installed.items()
        if map_id.filter and not map_id.gate and map_id.version == version and keys
    }


def test_a_concatenated_or_interval_lookup_goes_behind_a_destination_pre_filter():
    ports = MitigationScope("c/p", (net("192.0.2.1/32"), net("192.0.2.2/32")), target_port_ranges=(PortRange(53, 53),))
    plan = plan_change(TABLE, RulesetState(), put=[ports])
    assert pre_filters(plan) == {"pre4_len32": "targets4"}
    sets = [command["add"]["set"] for command in plan.commands if "set" in command.get("add", {})]
    assert sets == [
        TABLE.ref(name="pre4_len32", type="ipv4_addr", size=256),
        TABLE.ref(name="ports4", type="inet_service", flags=["interval"]),  # the port gate: 53 only
    ]
    assert plan.state.installed[MapId(4, "DST_PROTO_PORT", filter=True)] == {((53, 53),): ""}
    assert filter_contents(plan.state, 4) == {32: {"192.0.2.1", "192.0.2.2"}}
    assert ("add", "chain") in verbs(plan.commands[4:])  # targets4, after the table's own ingress chain

    # One destination-only hash map is already a single address lookup: no pre-filter for IPv6 hosts.
    with_v6 = plan_change(TABLE, plan.state, put=[MitigationScope("c/h6", (net("2001:db8::1/128"),))])
    assert filter_contents(with_v6.state, 6) == {}
    assert chain_layout(with_v6.state.rules) == {
        "ingress": [(MapId(4, "DST", True, 32, filter=True), "targets4"), (MapId(6, "DST", True, 128), None)],
        "targets4": [(MapId(4, "DST_PROTO_PORT", filter=True), "dports4")],
        "dports4": [(MapId(4, "DST_PROTO_PORT", True), None)],
    }


def test_the_pre_filter_follows_every_add_and_remove_at_the_longest_length_its_budget_allows():
    host = MitigationScope("c/host", (net("192.0.2.1/32"),), target_protocols=(17,))
    wide = MitigationScope("c/wide", (net("198.51.100.0/30"),), target_port_ranges=(PortRange(80, 80),))
    state = plan_change(TABLE, RulesetState(), put=[host, wide]).state
    # One lookup without a mask: the /30 is expanded into its four hosts.
    assert filter_contents(state, 4) == {32: {"192.0.2.1", *(f"198.51.100.{i}" for i in range(4))}}

    # Same length, one more block: only elements change, no rule is rewritten.
    middle = MitigationScope("c/middle", (net("203.0.113.16/31"),), target_port_ranges=(PortRange(443, 443),))
    plan = plan_change(TABLE, state, put=[middle])
    added = [c["add"]["element"] for c in plan.commands if "element" in c.get("add", {})]
    assert [sorted(e["elem"]) for e in added if e["name"] == "pre4_len32"] == [["203.0.113.16", "203.0.113.17"]]
    assert ("flush", "chain") not in verbs(plan.commands)

    # A /32 of IPv6 would expand into 2^96 hosts: over budget, so the IPv6 set is at /32, the hosts widened to it.
    host6 = MitigationScope("c/host6", (net("2001:db8:1::1/128"), net("2001:db8:2::1/128")), target_protocols=(17,))
    plan = plan_change(TABLE, plan.state, put=[host6])
    assert filter_contents(plan.state, 6) == {128: {"2001:db8:1::1", "2001:db8:2::1"}}
    huge = MitigationScope("c/huge", (net("2001:db8::/32"),), target_protocols=(6,))
    plan = plan_change(TABLE, plan.state, put=[huge])
    assert filter_contents(plan.state, 6) == {32: {"2001:db8::"}}
    kinds = verbs(plan.commands)
    assert kinds.index(("flush", "chain")) < kinds.index(("delete", "set")) < kinds.index(("add", "rule"))
    assert set(pre_filters(plan)) == {"pre4_len32", "pre6_len32"}
    plan = plan_change(TABLE, plan.state, remove=["c/huge", "c/host6"])
    assert filter_contents(plan.state, 6) == {} and set(filter_contents(plan.state, 4)) == {32}

    # The last port/protocol-keyed scope gone: no pre-filter, no family chain.
    plan = plan_change(TABLE, plan.state, put=[MitigationScope("c/all", (net("192.0.2.0/24"),))])
    plan = plan_change(TABLE, plan.state, remove=["c/host", "c/middle", "c/wide"])
    assert filter_contents(plan.state, 4) == {}
    assert chain_layout(plan.state.rules) == {"ingress": [(MapId(4, "DST", True, 24), None)]}
    kinds = verbs(plan.commands)
    assert kinds.index(("flush", "chain")) < kinds.index(("delete", "set")) < kinds.index(("delete", "chain"))


def test_a_hash_map_that_outgrows_its_size_is_recreated_bigger_in_the_same_batch():
    def hosts(key: str, start: int, count: int) -> MitigationScope:
        targets = tuple(net(f"2001:db8::{start + i:x}/128") for i in range(count))
        return MitigationScope(key, targets, target_protocols=(17,))

    first = plan_change(TABLE, RulesetState(), put=[hosts("c/1", 0, 200)])
    exact = MapId(6, "DST_PROTO", True)
    assert first.state.capacity[exact] == capacity_for(200) == 512
    second = plan_change(TABLE, first.state, put=[hosts("c/2", 200, 100)])  # 300 ≤ 512: elements only
    assert ("delete", "map") not in verbs(second.commands) and ("flush", "chain") not in verbs(second.commands)

    third = plan_change(TABLE, second.state, put=[hosts("c/3", 300, 300)])  # 600 > 512: a bigger map
    assert third.state.capacity[exact] == 2048
    kinds = verbs(third.commands)
    recreated = [c for c in third.commands if c.get("add", {}).get("map", {}).get("name") == exact.name]
    assert recreated[0]["add"]["map"]["size"] == 2048
    elements = [
        c["add"]["element"] for c in third.commands if c.get("add", {}).get("element", {}).get("name") == exact.name
    ]
    assert len(elements) == 1 and len(elements[0]["elem"]) == 600  # all of them, into the new map
    assert kinds.index(("flush", "chain")) < kinds.index(("delete", "map")) < kinds.index(("add", "map"))
    assert kinds.index(("add", "map")) < kinds.index(("add", "element")) < kinds.index(("add", "rule"))
    # The pre-filter set (600 addresses) outgrew its size too.
    assert third.state.capacity[MapId(6, "DST", True, 128, filter=True)] == 2048
    assert ("delete", "set") in kinds
    # Counters are separate objects: re-creating a map never touches them.
    assert ("delete", "counter") not in kinds and kinds.count(("add", "counter")) == 1


def test_a_map_that_becomes_empty_loses_its_rule_in_the_same_batch():
    everything = MitigationScope("c/1", (net("203.0.113.0/24"),))
    udp = MitigationScope("c/2", (net("192.0.2.1/32"),), target_protocols=(17,))
    state = plan_change(TABLE, RulesetState(), put=[everything, udp]).state
    pre_filter = MapId(4, "DST", True, 32, filter=True)  # the /24 expanded into 256 hosts, plus the host
    assert state.rules == {MapId(4, "DST", exact=True, prefix_len=24), MapId(4, "DST_PROTO", exact=True), pre_filter}
    assert len(state.installed[pre_filter]) == 257
    plan = plan_change(TABLE, state, remove=["c/2"])
    assert verbs(plan.commands) == [
        ("flush", "chain"),  # ingress
        ("flush", "chain"),  # targets4
        ("delete", "map"),
        ("delete", "set"),
        ("delete", "chain"),  # targets4: one hash lookup left, no pre-filter needed
        ("add", "rule"),
        ("delete", "counter"),
    ]
    assert plan.state.rules == {MapId(4, "DST", exact=True, prefix_len=24)}


def test_updating_a_scope_keeps_its_counter_and_moves_its_elements():
    state = plan_change(TABLE, RulesetState(), put=[MitigationScope("c/1", (net("192.0.2.1/32"),))]).state
    plan = plan_change(TABLE, state, put=[MitigationScope("c/1", (net("192.0.2.2/32"),))])
    assert verbs(plan.commands) == [("delete", "element"), ("add", "element")]


def test_carried_counters_seed_recreated_mitigations():
    scope = MitigationScope("c/1", (net("192.0.2.1/32"),))
    plan = plan_change(TABLE, RulesetState(), put=[scope], carried_counters={counter_name("c/1"): (7, 700)})
    counter = next(command["add"]["counter"] for command in plan.commands if "counter" in command.get("add", {}))
    assert (counter["packets"], counter["bytes"], counter["comment"]) == (7, 700, "c/1")


def test_an_invalid_scope_plans_nothing_and_leaves_the_state_alone():
    state = plan_change(TABLE, RulesetState(), put=[MitigationScope("c/1", (net("192.0.2.1/32"),))]).state
    snapshot = state.copy()
    with pytest.raises(MitigatorError):
        plan_change(TABLE, state, put=[MitigationScope("c/2", (net("192.0.2.2/32"),), target_protocols=(300,))])
    assert state == snapshot


# ---- rates ----


def test_drop_rates_average_over_the_window():
    rates = DropRates(window=300.0, at=0.0)
    assert rates.add(10.0, 1000, 100_000) == (100, 10_000)
    assert rates.add(10.0, 1000, 100_000) == (100, 10_000)  # same instant: still the average since the start
    rates.add(400.0, 1000, 100_000)  # nothing dropped for a while
    assert rates.add(710.0, 1000, 100_000) == (0, 0)  # the old burst has left the window


def lookup(state: RulesetState, address: int) -> str | None:
    """What the kernel does with an IPv4 packet and the destination-only maps: the ingress rules in order, a
    pre-filter's goto into the family chain (whose end is the end), the first matching map rule wins."""
    layout = chain_layout(state.rules)

    def hit(map_id: MapId) -> str | None:
        for key, owner in state.installed[map_id].items():
            lower, upper = key[0]
            if map_id.prefix_len is None and lower <= address <= upper:
                return owner
            if map_id.prefix_len is not None and address >> (32 - map_id.prefix_len) == lower >> (
                32 - map_id.prefix_len
            ):
                return owner
        return None

    for map_id, _ in layout["ingress"]:
        owner = hit(map_id)
        if owner is not None and map_id.filter:
            return next((found for found in (hit(m) for m, _ in layout["targets4"]) if found is not None), None)
        if owner is not None:
            return owner
    return None


@given(st.lists(st.tuples(prefixes, st.sampled_from("abc")), min_size=1, max_size=10), st.integers(1, 3))
def test_every_address_is_counted_by_its_most_specific_first_mitigation_whatever_the_layout(entries, hashed_lengths):
    import opendots.mitigate.nftables_ruleset as ruleset

    saved = ruleset.MAX_HASHED_LENGTHS
    ruleset.MAX_HASHED_LENGTHS = hashed_lengths  # few hash maps: the interval map gets the other lengths
    try:
        scopes = [MitigationScope(f"{owner}{i}", (network,)) for i, (network, owner) in enumerate(entries)]
        state = plan_change(TABLE, RulesetState(), put=scopes).state
    finally:
        ruleset.MAX_HASHED_LENGTHS = saved
    base = int(ipaddress.ip_address("192.0.2.0"))
    for address in range(base, base + 256):
        covering = [
            (s.target_prefixes[0], s.key)
            for s in scopes
            if int(s.target_prefixes[0].network_address) <= address <= int(s.target_prefixes[0].broadcast_address)
        ]
        expected = None
        if covering:
            longest = max(n.prefixlen for n, _ in covering)
            expected = counter_name(next(k for n, k in covering if n.prefixlen == longest))
        assert lookup(state, address) == expected


@given(st.lists(st.tuples(prefixes, st.sampled_from(["all", "udp", "udp:53", "tcp:80-90"])), min_size=1, max_size=8))
def test_the_pre_filter_lets_every_target_address_through_whatever_the_mix_of_shapes(entries):
    def scope(i: int, network, kind: str) -> MitigationScope:
        if kind == "all":
            return MitigationScope(f"s{i}", (network,))
        protocol, _, ports = kind.partition(":")
        lower, _, upper = ports.partition("-")
        port_ranges = (PortRange(int(lower), int(upper or lower)),) if ports else ()
        return MitigationScope(
            f"s{i}", (network,), target_protocols=(17 if protocol == "udp" else 6,), target_port_ranges=port_ranges
        )

    state = plan_change(TABLE, RulesetState(), put=[scope(i, n, kind) for i, (n, kind) in enumerate(entries)]).state
    layout = chain_layout(state.rules)
    filters = [map_id for map_id, _ in layout["ingress"] if map_id.filter]
    maps = [map_id for map_id in state.rules if not map_id.filter]
    laid_out = [m for chain, entries in layout.items() if chain != "ingress" for m, _ in entries if not m.filter]
    if not filters:  # a single destination-only hash map is a single lookup already
        assert len(maps) == 1 and maps[0].shape_name == "DST" and maps[0].prefix_len is not None
        assert set(layout) == {"ingress"}
        return
    assert len(filters) == 1 and sorted(laid_out, key=str) == sorted(maps, key=str)
    base = int(ipaddress.ip_address("192.0.2.0"))
    for address in range(base, base + 256):
        if any(int(n.network_address) <= address <= int(n.broadcast_address) for n, _ in entries):
            assert any(
                address >> (32 - f.prefix_len) == key[0][0] >> (32 - f.prefix_len)
                for f in filters
                for key in state.installed[f]
            )


def test_port_keyed_maps_sit_behind_a_port_gate_at_their_place_in_the_rule_order():
    proto = MitigationScope("c/proto", (net("192.0.2.1/32"),), target_protocols=(6,))
    dns = MitigationScope(
        "c/dns", (net("192.0.2.2/32"),), target_port_ranges=(PortRange(53, 53),), target_protocols=(17,)
    )
    web = MitigationScope("c/web", (net("192.0.2.0/30"),), target_port_ranges=(PortRange(80, 90), PortRange(91, 443)))
    source = MitigationScope("c/src", (net("192.0.2.3/32"),), source_prefixes=(net("198.51.100.0/24"),))
    state = plan_change(TABLE, RulesetState(), put=[proto, dns, web, source]).state
    gate = MapId(4, "DST_PROTO_PORT", filter=True)
    assert state.installed[gate] == {((53, 53),): "", ((80, 443),): ""}  # adjacent ranges merged
    assert chain_layout(state.rules)["targets4"] == [
        (MapId(4, "DST_PROTO", True), None),
        (gate, "dports4"),
        (MapId(4, "SRC_DST_PROTO"), None),
    ]
    assert chain_layout(state.rules)["dports4"] == [
        (MapId(4, "DST_PROTO_PORT", True), None),
        (MapId(4, "DST_PROTO_PORT"), None),
    ]
    rule = TABLE.rule_object(gate, "targets4", "dports4")
    assert rule["expr"] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": "@ports4"}},
        {"jump": {"target": "dports4"}},  # a jump: the rules after it still run, in the same order as before
    ]

    # Source ports only: every destination port may match, a gate would let everything through.
    any_port = MitigationScope(
        "c/sport", (net("192.0.2.9/32"),), source_port_ranges=(PortRange(1, 1),), target_protocols=(17,)
    )
    plan = plan_change(TABLE, state, put=[any_port])
    assert gate not in plan.state.rules and "dports4" not in chain_layout(plan.state.rules)
    assert ("delete", "set") in verbs(plan.commands)
    plan = plan_change(TABLE, plan.state, remove=["c/sport"])
    assert gate in plan.state.rules
