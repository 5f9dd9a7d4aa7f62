"""ACL → nftables rule compilation (pure). Enforcement on real traffic is in tests/e2e/test_nft_acl.py."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendots.mitigate.base import MitigationScope, MitigatorError
from opendots.mitigate.nftables_acl import (
    Ace,
    AceMatch,
    AclPolicy,
    BitmaskMatch,
    Fragment,
    PortMatch,
    _fragment_alternatives,
    _fragment_data,
    ace_limit_name,
    ace_rules,
    policy_counters,
    policy_from_record,
    policy_limits,
    validate_policy,
)
from opendots.mitigate.nftables_ruleset import RulesetState, Table, plan_change

DOMAIN = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32"))
TABLE = Table(name="opendots", interface="eth0")


def policy(*aces: Ace, domain=DOMAIN) -> AclPolicy:
    return AclPolicy("c/acl", domain, aces)


@pytest.mark.parametrize(
    ("operator", "negate", "data", "expected"),
    [
        ("match", False, 0b0110, True),
        ("match", False, 0b0100, False),
        ("any", False, 0b0100, True),
        ("any", False, 0b1000, False),
        ("match", True, 0b0100, True),
        ("any", True, 0b0000, True),
    ],
)
def test_bitmask_operators_follow_rfc_8783(operator, negate, data, expected):
    assert BitmaskMatch(0b0110, operator, negate).holds(data) is expected


def frag_off_value(df: bool, more: bool, offset: int) -> int:
    return (df << 14) | (more << 13) | offset


@given(
    bitmask=st.integers(1, 15),
    operator=st.sampled_from(["match", "any"]),
    negate=st.booleans(),
    df=st.booleans(),
    more=st.booleans(),
    offset=st.sampled_from([0, 1, 185, 0x1FFF]),
)
def test_ipv4_fragment_set_selects_exactly_the_packets_the_operator_selects(
    bitmask, operator, negate, df, more, offset
):
    fragment = BitmaskMatch(bitmask, operator, negate)
    expected = fragment.holds(_fragment_data(df, more, offset != 0))
    alternatives = _fragment_alternatives(4, fragment)
    if alternatives is None:
        assert expected
        return
    if not alternatives:
        assert not expected
        return
    (only,) = alternatives
    elements = only[0]["match"]["right"]["set"]
    value = frag_off_value(df, more, offset)
    inside = any(
        element == value if isinstance(element, int) else element["range"][0] <= value <= element["range"][1]
        for element in elements
    )
    assert inside is expected


def test_ace_is_confined_to_the_client_domain_and_skipped_for_a_family_it_lacks():
    ace = Ace("x", AceMatch(6, protocol=17), "drop")
    (rule,) = ace_rules(policy(ace), ace)
    assert rule[1]["match"]["right"] == {"set": [{"prefix": {"addr": "2001:db8::", "len": 32}}]}
    assert ace_rules(policy(ace, domain=DOMAIN[:1]), ace) == []


def test_rate_limit_is_a_limited_drop_rule_then_the_accept_rule():
    ace = Ace("x", AceMatch(4, protocol=17), "accept", rate_limit=1234.5)
    over, rest = ace_rules(policy(ace), ace)
    assert {"limit": ace_limit_name("c/acl", "x")} in over
    assert policy_limits(policy(ace)) == {ace_limit_name("c/acl", "x"): 1235}
    assert over[-1] == {"drop": None} and rest[-1] == {"accept": None}


def test_limit_objects_outlive_acl_rewrites_and_a_new_rate_replaces_them():
    limited = Ace("x", AceMatch(4, protocol=17), "accept", rate_limit=1000.0)
    other = Ace("y", AceMatch(4, protocol=6), "drop")
    state = plan_change(TABLE, RulesetState(), put_acls=[policy(limited)]).state
    unrelated = plan_change(TABLE, state, put_acls=[AclPolicy("c/other", DOMAIN, (other,))])
    assert not [c for c in unrelated.commands if "limit" in next(iter(c.values()))]  # bucket kept as it is
    faster = Ace("x", AceMatch(4, protocol=17), "accept", rate_limit=2000.0)
    changed = plan_change(TABLE, unrelated.state, put_acls=[policy(faster)])
    kinds = [(verb, next(iter(body))) for command in changed.commands for verb, body in command.items()]
    assert kinds.index(("flush", "chain")) < kinds.index(("delete", "limit")) < kinds.index(("add", "limit"))
    assert kinds.index(("add", "limit")) < kinds.index(("add", "rule"))


def test_plan_adds_the_acl_chain_before_the_mitigation_rules_and_removes_it_with_the_last_acl():
    ace = Ace("x", AceMatch(4, protocol=17), "drop")
    state = plan_change(TABLE, RulesetState(), put=[MitigationScope("m", (DOMAIN[0],))]).state
    with_acl = plan_change(TABLE, state, put_acls=[policy(ace)])
    ingress = [
        c["add"]["rule"] for c in with_acl.commands if c.get("add", {}).get("rule", {}).get("chain") == "ingress"
    ]
    assert ingress[0]["expr"] == [{"jump": {"target": "acl"}}]
    without = plan_change(TABLE, with_acl.state, remove_acls=["c/acl"])
    kinds = [(verb, next(iter(body))) for command in without.commands for verb, body in command.items()]
    assert ("delete", "chain") in kinds and ("delete", "counter") in kinds
    assert kinds.index(("flush", "chain")) < kinds.index(("delete", "chain"))


@pytest.mark.parametrize(
    "ace",
    [
        Ace("", AceMatch(4), "drop"),
        Ace("x" * 65, AceMatch(4), "drop"),
        Ace("x", AceMatch(5), "drop"),
        Ace("x", AceMatch(4, dscp=64), "drop"),
        Ace("x", AceMatch(4, protocol=6, tcp_flags=BitmaskMatch(0x1000)), "drop"),
        Ace("x", AceMatch(4, fragment=BitmaskMatch(0)), "drop"),
        Ace("x", AceMatch(4), "accept", rate_limit=-1.0),
    ],
)
def test_invalid_aces_are_refused(ace: Ace):
    with pytest.raises(MitigatorError):
        validate_policy(policy(ace))


def test_duplicate_ace_names_are_refused():
    ace = Ace("x", AceMatch(4), "drop")
    with pytest.raises(MitigatorError):
        validate_policy(policy(ace, ace))


def test_fragment_bits_of_packets():
    assert _fragment_data(False, False, False) == 0
    assert _fragment_data(True, True, False) == Fragment.DF | Fragment.ISF | Fragment.FF
    assert _fragment_data(False, False, True) == Fragment.ISF | Fragment.LF
    assert _fragment_data(False, True, True) == Fragment.ISF


# ---- from the data channel's ACL records ----


def record(aces: list[dict], acl_type: str | None = "ietf-access-control-list:ipv4-acl-type"):
    from opendots.data.records import Acl

    entry = {"name": "sample-acl", "aces": {"ace": aces}}
    if acl_type:
        entry["type"] = acl_type
    return Acl.from_json("cuid-1", entry)


def test_rfc_8783_style_acl_record_converts_field_by_field():
    acl = record(
        [
            {
                "name": "syn-flood",
                "matches": {
                    "ipv4": {"destination-ipv4-network": "203.0.113.0/24", "fragment": {"type": "isf ff"}},
                    "tcp": {
                        "flags-bitmask": {"operator": "not any", "bitmask": 2},
                        "destination-port-range-or-operator": {"operator": "gte", "port": 1024},
                    },
                },
                "actions": {"forwarding": "ietf-access-control-list:accept", "rate-limit": "20.00"},
            },
            {
                "name": "udp-len",
                "matches": {
                    "udp": {"length": 100, "source-port-range-or-operator": {"lower-port": 1, "upper-port": 9}}
                },
                "actions": {"forwarding": "ietf-access-control-list:drop"},
            },
        ]
    )
    converted = policy_from_record(acl, DOMAIN)
    assert converted.key == "cuid-1/sample-acl"
    syn, udp = converted.aces
    assert syn.match == AceMatch(
        4,
        destination=ipaddress.ip_network("203.0.113.0/24"),
        protocol=6,
        fragment=BitmaskMatch(int(Fragment.ISF | Fragment.FF)),
        destination_port=PortMatch(1024, 65535),
        tcp_flags=BitmaskMatch(2, "any", negate=True),
    )
    assert (syn.action, syn.rate_limit) == ("accept", 20.0)
    assert udp.match == AceMatch(4, protocol=17, source_port=PortMatch(1, 9), udp_length=100)
    assert udp.action == "drop"


def test_an_untyped_ace_without_family_covers_both_families_with_one_counter():
    acl = record(
        [{"name": "all-udp", "matches": {"udp": {}}, "actions": {"forwarding": "ietf-access-control-list:drop"}}],
        acl_type=None,
    )
    converted = policy_from_record(acl, DOMAIN)
    assert [(ace.name, ace.match.version) for ace in converted.aces] == [("all-udp", 4), ("all-udp", 6)]
    assert len(policy_counters(converted)) == 1


def test_unenforceable_records_are_refused():
    bad_dscp = record(
        [{"name": "x", "matches": {"ipv4": {"dscp": 70}}, "actions": {"forwarding": "ietf-access-control-list:drop"}}]
    )
    with pytest.raises(MitigatorError):
        policy_from_record(bad_dscp, DOMAIN)
