"""The breakdown table's destination pre-filter (opendots.mitigate.nftables_breakdown): its counting rules, two
pipapo lookups per packet, are entered only by a `goto` through a hash set of the counted blocks, so traffic to no
target pays one hash lookup; the set covers every counted address, so the counts stay exact."""

from __future__ import annotations

import ipaddress
from typing import Any

from opendots.domain import MitigationScope, PortRange
from opendots.mitigate.nftables_breakdown import breakdown_commands
from opendots.mitigate.nftables_render import Table

TABLE = Table(name="opendots", interface="eth0")


def scope(key: str, *prefixes: str) -> MitigationScope:
    return MitigationScope(key, tuple(ipaddress.ip_network(p) for p in prefixes))


def rules(commands: list[dict[str, Any]], chain: str) -> list[list[dict[str, Any]]]:
    return [c["add"]["rule"]["expr"] for c in commands if c.get("add", {}).get("rule", {}).get("chain") == chain]


def set_elements(commands: list[dict[str, Any]], verb: str) -> list[Any]:
    found = [c[verb]["element"] for c in commands if "element" in c.get(verb, {})]
    return [elem for element in found if element["name"].startswith("bdst") for elem in element["elem"]]


def test_the_counting_rules_are_entered_only_through_a_hash_set_of_the_targets_destinations() -> None:
    hosts = {f"h{i}": scope(f"h{i}", f"192.0.2.{i}/32", f"2001:db8::{i}/128") for i in range(1, 4)}
    built = breakdown_commands(TABLE, {}, hosts)
    # The base chain: one goto per family, through the set (hosts: no mask); the lookups are in targets4/6.
    (goto4, goto6) = rules(built, "ingress")
    assert goto4 == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@bdst4"}},
        {"goto": {"target": "targets4"}},
    ]
    assert goto6[0]["match"]["right"] == "@bdst6" and goto6[1] == {"goto": {"target": "targets6"}}
    assert len(rules(built, "targets4")) == 2 and len(rules(built, "targets6")) == 2
    assert sorted(set_elements(built, "add")) == sorted(
        [f"192.0.2.{i}" for i in range(1, 4)] + [f"2001:db8::{i}" for i in range(1, 4)]
    )
    sets = [c["add"]["set"] for c in built if "set" in c.get("add", {})]
    assert all("size" not in s and "flags" not in s for s in sets)  # a resizable hash: never re-created to grow


def test_a_change_at_the_same_length_changes_the_set_by_difference_and_leaves_the_gotos() -> None:
    before = {"a": scope("a", "192.0.2.1/32"), "b": scope("b", "192.0.2.2/32")}
    after = {"b": before["b"], "c": scope("c", "192.0.2.3/32")}
    change = breakdown_commands(TABLE, before, after)
    assert set_elements(change, "delete") == ["192.0.2.1"] and set_elements(change, "add") == ["192.0.2.3"]
    assert rules(change, "ingress") == [] and not [c for c in change if "flush" in c]


def test_a_new_length_or_family_rewrites_the_gotos_and_refills_the_set() -> None:
    before = {"a": scope("a", "192.0.2.1/32")}
    after = {**before, "wide": scope("wide", "198.18.0.0/16"), "v6": scope("v6", "2001:db8::/64")}
    change = breakdown_commands(TABLE, before, after)
    flushed = [next(iter(c["flush"].values()))["name"] for c in change if "flush" in c]
    assert flushed == ["bdst4", "bdst6", "ingress"]
    goto4, goto6 = rules(change, "ingress")
    # 65,537 host entries would be too many: the /16 length covers both, the host widened to its /16.
    assert goto4[0]["match"]["left"]["&"][1] == "255.255.0.0"
    assert sorted(e for e in set_elements(change, "add") if "." in e) == ["192.0.0.0", "198.18.0.0"]
    assert goto6[0]["match"]["left"]["&"][1] == "ffff:ffff:ffff:ffff::"
    # At the same length a new /24 is its 256 hosts, by difference.
    hosts = breakdown_commands(TABLE, before, {**before, "net": scope("net", "198.51.100.0/24")})
    assert len(set_elements(hosts, "add")) == 256 and rules(hosts, "ingress") == []
    # A family with nothing left loses its goto; its set is emptied.
    gone = breakdown_commands(TABLE, after, {"v6": after["v6"]})
    assert [r[0]["match"]["right"] for r in rules(gone, "ingress")] == ["@bdst6"]


def test_a_zero_length_target_is_covered_by_two_halves() -> None:
    built = breakdown_commands(TABLE, {}, {"all": scope("all", "0.0.0.0/0")})
    (goto4,) = rules(built, "ingress")
    assert goto4[0]["match"]["left"]["&"][1] == "128.0.0.0"
    assert sorted(set_elements(built, "add")) == ["0.0.0.0", "128.0.0.0"]


def test_the_port_lookup_is_gated_by_the_ports_counted_which_change_by_difference() -> None:
    dns = MitigationScope("dns", (ipaddress.ip_network("192.0.2.1/32"),), (PortRange(53, 53),), (17,))
    web = MitigationScope("web", (ipaddress.ip_network("192.0.2.2/32"),), (PortRange(80, 80), PortRange(443, 443)))
    built = breakdown_commands(TABLE, {}, {"dns": dns})
    (_, by_port) = rules(built, "targets4")
    gate = {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": "@bports"}}
    assert by_port.index(gate) == 1 and "counter" in by_port[2]  # after the protocol check, before the lookup
    ports = [c["add"]["element"]["elem"] for c in built if c.get("add", {}).get("element", {}).get("name") == "bports"]
    assert ports == [[53]]
    change = breakdown_commands(TABLE, {"dns": dns}, {"web": web})
    by_verb = {v: c[v]["element"]["elem"] for c in change for v in c if c[v].get("element", {}).get("name") == "bports"}
    assert by_verb == {"delete": [53], "add": [80, 443]}
