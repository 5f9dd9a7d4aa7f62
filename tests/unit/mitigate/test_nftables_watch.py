"""The counting table's target counters (opendots.mitigate.nftables_watch): what passes toward each enforced
mitigation's target prefixes, the passed half of RFC 9244 total-traffic, looked up in one interval map per family."""

from __future__ import annotations

import ipaddress

from opendots.domain import MitigationScope, PortRange
from opendots.mitigate.nftables_render import Table
from opendots.mitigate.nftables_watch import (
    Watch,
    passed_counter_name,
    target_counter_name,
    target_elements,
    watch_commands,
)

TABLE = Table(name="odt", interface="r-att")
WATCH = Table(name="odt_tt", interface="r-att")
V4 = ipaddress.ip_network("192.0.2.0/24")
V6 = ipaddress.ip_network("2001:db8::/64")
PORT_SCOPE = MitigationScope("c/1", (V4, V6), target_port_ranges=(PortRange(80, 80),), target_protocols=(6,))
HOST = MitigationScope("c/2", (ipaddress.ip_network("192.0.2.7/32"),))


def rules(commands: list) -> list[list]:
    return [c["add"]["rule"]["expr"] for c in commands if "rule" in c.get("add", {})]


def elements(commands: list, verb: str, name: str) -> list:
    return [c[verb]["element"]["elem"] for c in commands if c.get(verb, {}).get("element", {}).get("name") == name]


def ref(name: str) -> dict[str, str]:
    return {"family": "netdev", "table": "odt_tt", "name": name}


def test_every_enforced_mitigation_counts_all_traffic_toward_its_targets_whatever_its_ports_rfc9244_9_2():
    created = watch_commands(TABLE, {}, {}, {}, {"c/1": PORT_SCOPE})
    assert created[:2] == WATCH.reset_commands()  # the table is there without any top-talker policy
    maps = [c["add"]["map"] for c in created if "map" in c.get("add", {})]
    assert [(m["name"], m["type"], m["map"], m["flags"]) for m in maps] == [
        ("passed4", "ipv4_addr", "counter", ["interval"]),
        ("passed6", "ipv6_addr", "counter", ["interval"]),
    ]
    counters = [c["add"]["counter"] for c in created if "counter" in c.get("add", {})]
    assert counters == [{**ref(target_counter_name("c/1")), "comment": "c/1"}]
    counter = target_counter_name("c/1")
    # Destination address only: the port-80 scope's counter also sees port 53 passing toward the target.
    assert elements(created, "add", "passed4") == [[[{"prefix": {"addr": "192.0.2.0", "len": 24}}, counter]]]
    assert elements(created, "add", "passed6") == [[[{"prefix": {"addr": "2001:db8::", "len": 64}}, counter]]]
    # Two rules, one lookup each, however many mitigations.
    daddr4 = {"payload": {"protocol": "ip", "field": "daddr"}}
    assert rules(created)[0] == [{"counter": {"map": {"key": daddr4, "data": "@passed4"}}}]
    assert len(rules(created)) == 2


def test_nested_targets_are_split_so_each_packet_counts_once_for_the_most_specific_mitigation():
    owners = target_elements({"c/1": PORT_SCOPE, "c/2": HOST}, 4)
    base = int(ipaddress.ip_address("192.0.2.0"))
    assert owners == {
        (base, base + 6): target_counter_name("c/1"),
        (base + 7, base + 7): target_counter_name("c/2"),
        (base + 8, base + 255): target_counter_name("c/1"),
    }
    # Identical targets: the mitigation applied first counts (as it owns the drop).
    twin = MitigationScope("c/3", HOST.target_prefixes)
    assert target_elements({"c/2": HOST, "c/3": twin}, 4) == {(base + 7, base + 7): target_counter_name("c/2")}


def test_target_elements_change_by_difference_and_counters_stay_while_their_mitigation_does():
    grown = watch_commands(TABLE, {}, {}, {"c/1": PORT_SCOPE}, {"c/1": PORT_SCOPE, "c/2": HOST})
    assert grown[0] == {"flush": {"chain": ref("ingress")}}  # not re-created: c/1's count goes on
    assert [c["add"]["counter"]["name"] for c in grown if "counter" in c.get("add", {})] == [target_counter_name("c/2")]
    assert elements(grown, "delete", "passed4") == [[{"prefix": {"addr": "192.0.2.0", "len": 24}}]]
    assert len(elements(grown, "add", "passed4")[0]) == 3  # the /24 split around the host
    assert elements(grown, "add", "passed6") == [] and elements(grown, "delete", "passed6") == []  # untouched

    shrunk = watch_commands(TABLE, {}, {}, {"c/1": PORT_SCOPE, "c/2": HOST}, {"c/2": HOST})
    assert shrunk[-1] == {"delete": {"counter": ref(target_counter_name("c/1"))}}  # after its elements went
    assert elements(shrunk, "add", "passed4") == []  # the host's element stays as it was
    assert watch_commands(TABLE, {}, {}, {"c/2": HOST}, {}) == WATCH.reset_commands()


def test_a_narrow_mitigation_has_both_its_scope_counter_and_its_target_counter():
    commands = watch_commands(TABLE, {}, {"c/1": Watch(PORT_SCOPE)}, {}, {"c/1": PORT_SCOPE})
    last = [expr[-1] for expr in rules(commands)]
    assert last[:2] == [{"counter": passed_counter_name("c/1")}] * 2  # the policy's scope counters come first
    assert [e["counter"]["map"]["data"] for e in last[2:]] == ["@passed4", "@passed6"]
