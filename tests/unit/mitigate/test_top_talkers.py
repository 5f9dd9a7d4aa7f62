"""The sources-first top-talker policy, driven by `now` and counter samples (opendots.mitigate.top_talkers)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from opendots.config import ConfigError
from opendots.domain import MitigationScope, PortRange
from opendots.mitigate.nftables_render import Table
from opendots.mitigate.nftables_watch import (
    Watch,
    limit_name,
    limited_counter_name,
    passed_counter_name,
    watch_commands,
)
from opendots.mitigate.top_talkers import Phase, SourcesFirst, TopTalkerSettings

net = ipaddress.ip_network
SETTINGS = TopTalkerSettings(policy="sources-first", window=10.0, max_passed_share=0.2, min_passed_pps=100.0)
SCOPE = MitigationScope(
    "c/1",
    (net("203.0.113.2/32"),),
    top_talkers=(net("198.51.100.7/32"), net("198.51.100.8/32")),
)


def drive(policy: SourcesFirst, samples: list[tuple[float, int, int]]) -> list[bool]:
    return [policy.observe(at, dropped, passed) for at, dropped, passed in samples]


def test_the_narrow_scope_drops_the_named_talkers_only_toward_the_target():
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0, (0, 0))
    assert policy.phase is Phase.NARROW
    assert policy.enforced.source_prefixes == SCOPE.top_talkers
    assert policy.enforced.target_prefixes == SCOPE.target_prefixes
    assert policy.enforced.top_talkers == ()
    assert policy.status().sources == SCOPE.top_talkers


def test_named_talkers_that_carry_the_attack_keep_the_narrow_drop():
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0, (0, 0))
    # 10,000 pps dropped, 200 pps of legitimate traffic still passes: 2 % of what goes to the target.
    results = drive(policy, [(5.0, 50_000, 1_000), (10.0, 100_000, 2_000), (20.0, 200_000, 4_000)])
    assert results == [False, False, False]
    assert policy.phase is Phase.NARROW
    assert policy.enforced.source_prefixes == SCOPE.top_talkers
    assert policy.status().reason.startswith("holding: 200 pps still reach the target")


def test_talkers_that_are_not_the_attackers_make_it_widen_once_the_window_is_measured():
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0, (0, 0))
    assert drive(policy, [(5.0, 0, 50_000)]) == [False]  # half a window: not judged yet
    assert policy.observe(10.0, 10, 100_000) is True
    assert policy.phase is Phase.WIDE
    assert policy.enforced == SCOPE
    assert policy.status().reason.startswith("widened: 10000 pps still reach the target")
    assert policy.observe(20.0, 10, 200_000) is False  # widened once, for good


def test_a_small_remainder_never_widens_whatever_its_share():
    """The attack stopped: all that passes is a trickle (100 % of the traffic, under the pps floor)."""
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0, (0, 0))
    assert drive(policy, [(10.0, 0, 500), (30.0, 0, 1_500)]) == [False, False]
    assert policy.phase is Phase.NARROW


def test_the_judgement_slides_with_the_window_so_an_attack_that_moves_later_widens():
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0, (0, 0))
    held = drive(policy, [(10.0, 100_000, 1_000), (20.0, 200_000, 2_000)])
    # New sources join at 20 s: the window back to 10 s sees 6,700 pps passing (40 %) against 10,000 dropped.
    assert held == [False, False]
    assert policy.observe(25.0, 250_000, 102_000) is True


def test_without_a_baseline_the_first_reading_starts_the_window():
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0)
    assert drive(policy, [(3.0, 500, 900_000), (12.0, 500, 950_000)]) == [False, False]
    assert policy.observe(13.0, 500, 1_000_000) is True


def test_counters_that_start_again_restart_the_measurement():
    policy = SourcesFirst(SETTINGS, SCOPE, 0.0, (0, 0))
    assert policy.observe(9.0, 90_000, 900) is False
    assert policy.observe(11.0, 10, 100_000) is False  # a re-created table: lower counts, a new baseline
    assert policy.observe(21.0, 10, 200_000) is True


def test_a_scope_whose_target_family_has_no_talker_is_enforced_whole_from_the_start():
    scope = MitigationScope(
        "c/2", (net("203.0.113.2/32"), net("2001:db8:b::2/128")), top_talkers=(net("198.51.100.7/32"),)
    )
    policy = SourcesFirst(SETTINGS, scope, 0.0, (0, 0))
    assert policy.phase is Phase.WIDE and policy.enforced == scope
    assert "no usable top talker" in policy.status().describe()


def test_call_home_sources_keep_only_the_talkers_inside_them_rfc9066():
    scope = MitigationScope(
        "c/3",
        (net("203.0.113.2/32"),),
        source_prefixes=(net("198.51.100.0/25"),),
        top_talkers=(net("198.51.100.7/32"), net("192.0.2.9/32")),
        top_talker_port_ranges=(PortRange(53, 53),),
    )
    narrow = scope.narrowed()
    assert narrow is not None
    assert narrow.source_prefixes == (net("198.51.100.7/32"),)
    assert narrow.source_port_ranges == (PortRange(53, 53),)
    outside = MitigationScope(
        "c/4", (net("203.0.113.2/32"),), source_prefixes=(net("10.0.0.0/8"),), top_talkers=(net("192.0.2.9/32"),)
    )
    assert outside.narrowed() is None


def test_settings_are_off_by_default_and_bad_values_are_refused_with_the_key():
    assert TopTalkerSettings.from_table({}).enabled is False
    on = TopTalkerSettings.from_table({"top_talker_policy": "sources-first", "top_talker_window": 5})
    assert on.enabled and on.window == 5.0
    for table, word in (
        ({"top_talker_policy": "everything"}, "top_talker_policy"),
        ({"top_talker_window": 0}, "top_talker_window"),
        ({"top_talker_max_passed_share": 1.5}, "top_talker_max_passed_share"),
        ({"top_talker_min_passed_pps": "many"}, "top_talker_min_passed_pps"),
        ({"top_talker_windw": 3}, "top_talker_windw"),
    ):
        with pytest.raises(ConfigError, match=word):
            TopTalkerSettings.from_table(table)


def test_the_policy_table_rate_limits_before_it_counts_and_keeps_what_stays_rfc9244_8_1_5():
    """The watch table's batches (opendots.mitigate.nftables_watch): created with the first narrow mitigation,
    rewritten whole after, counters and limits of a mitigation kept while it stays, removed when it goes."""
    table = Table(name="odt", interface="r-att")
    first = Watch(SCOPE, limited=SCOPE.narrowed(), rate=4600)
    created = watch_commands(table, {}, {"c/1": first})
    assert created[:2] == Table(name="odt_tt", interface="r-att").reset_commands()
    chain = next(c["add"]["chain"] for c in created if "chain" in c.get("add", {}))
    assert (chain["name"], chain["hook"], chain["dev"], chain["prio"]) == ("ingress", "ingress", "r-att", -499)
    rules = [c["add"]["rule"]["expr"] for c in created if "rule" in c.get("add", {})]
    assert [r[-1] for r in rules] == [{"drop": None}, {"counter": passed_counter_name("c/1")}]  # limit first
    assert {"limit": limit_name("c/1")} in rules[0] and {"counter": limited_counter_name("c/1")} in rules[0]
    assert rules[0][1]["match"]["right"] == {"set": ["198.51.100.7", "198.51.100.8"]}  # saddr: the talkers

    second = Watch(replace(SCOPE, key="c/2", target_port_ranges=(PortRange(53, 53),), target_protocols=(1, 17)))
    grown = watch_commands(table, {"c/1": True}, {"c/1": first, "c/2": second})
    assert grown[0] == {"flush": {"chain": table_ref("ingress")}}
    added = [c["add"] for c in grown if "add" in c and "rule" not in c["add"]]
    assert added == [{"counter": {**table_ref(passed_counter_name("c/2")), "comment": "c/2"}}]  # c/1's kept
    port_rules = [c["add"]["rule"]["expr"] for c in grown if "rule" in c.get("add", {})][2:]
    assert [len(r) for r in port_rules] == [4, 3]  # UDP with its port, ICMP without one

    shrunk = watch_commands(table, {"c/1": True, "c/2": False}, {"c/2": second})
    deleted = [c["delete"] for c in shrunk if "delete" in c]
    assert deleted == [
        {"counter": table_ref(passed_counter_name("c/1"))},
        {"counter": table_ref(limited_counter_name("c/1"))},
        {"limit": table_ref(limit_name("c/1"))},
    ]
    assert watch_commands(table, {"c/2": False}, {}) == Table(name="odt_tt", interface="r-att").reset_commands()
    assert watch_commands(table, {}, {}) == []


def table_ref(name: str) -> dict[str, str]:
    return {"family": "netdev", "table": "odt_tt", "name": name}
