"""The nftables planner with `rate_limit_pps`: a dynamic rate set per map and a rate check before each counted drop."""

from __future__ import annotations

import ipaddress

import pytest

from opendots.config import ConfigError
from opendots.domain import MitigationScope
from opendots.mitigate.nftables_ruleset import RulesetState, Table, plan_change
from opendots.mitigate.router import build_actuator

SCOPE = MitigationScope(
    "k", (ipaddress.ip_network("203.0.113.2/32"),), source_prefixes=(ipaddress.ip_network("10.77.0.10/32"),)
)


def rules(commands):
    return [command["add"]["rule"]["expr"] for command in commands if "rule" in command.get("add", {})]


def test_a_rate_limited_table_checks_the_rate_per_flow_key_before_counting_and_dropping() -> None:
    plan = plan_change(Table("t", "lan0", rate_limit=250), RulesetState(), put=[SCOPE])
    sets = [c["add"]["set"] for c in plan.commands if "set" in c.get("add", {})]
    assert [s["name"] for s in sets if s["name"].startswith("rl_")] == ["rl_src_dst_proto4"]
    (drop,) = [expr for expr in rules(plan.commands) if any("drop" in e for e in expr)]
    update, counter, verdict = drop
    assert update["set"]["op"] == "update" and update["set"]["set"] == "@rl_src_dst_proto4"
    assert update["set"]["stmt"] == [{"limit": {"rate": 250, "per": "second", "inv": True}}]
    assert update["set"]["elem"] == counter["counter"]["map"]["key"] and verdict == {"drop": None}
    removed = plan_change(Table("t", "lan0", rate_limit=250), plan.state, remove=["k"])
    assert removed.state == RulesetState()  # the last one gone: the whole table goes, rate sets with it


def test_without_a_rate_limit_every_matched_packet_is_dropped_and_no_rate_set_exists() -> None:
    plan = plan_change(Table("t", "lan0"), RulesetState(), put=[SCOPE])
    assert not any(c["add"]["set"]["name"].startswith("rl_") for c in plan.commands if "set" in c.get("add", {}))
    assert all(len(expr) == 2 for expr in rules(plan.commands) if any("drop" in e for e in expr))


@pytest.mark.parametrize("rate", [0, -5, 1.5, "100"])
def test_a_rate_limit_that_is_not_a_positive_integer_is_a_configuration_error(rate: object) -> None:
    with pytest.raises(ConfigError, match="rate limit"):
        build_actuator({"type": "nftables", "interface": "lan0", "rate_limit_pps": rate})
