"""The counting table's target counters (opendots.mitigate.nftables_watch): what passes toward each enforced
mitigation's target prefixes, the passed half of RFC 9244 total-traffic."""

from __future__ import annotations

import ipaddress

from opendots.domain import MitigationScope, PortRange
from opendots.mitigate.nftables_render import Table
from opendots.mitigate.nftables_watch import Watch, passed_counter_name, target_counter_name, watch_commands

TABLE = Table(name="odt", interface="r-att")
WATCH = Table(name="odt_tt", interface="r-att")
V4 = ipaddress.ip_network("192.0.2.0/24")
V6 = ipaddress.ip_network("2001:db8::/64")
PORT_SCOPE = MitigationScope("c/1", (V4, V6), target_port_ranges=(PortRange(80, 80),), target_protocols=(6,))


def rules(commands: list) -> list[list]:
    return [c["add"]["rule"]["expr"] for c in commands if "rule" in c.get("add", {})]


def ref(name: str) -> dict[str, str]:
    return {"family": "netdev", "table": "odt_tt", "name": name}


def test_every_enforced_mitigation_counts_all_traffic_toward_its_targets_whatever_its_ports_rfc9244_9_2():
    created = watch_commands(TABLE, {}, {}, (), {"c/1": PORT_SCOPE})
    assert created[:2] == WATCH.reset_commands()  # the table is there without any top-talker policy
    counters = [c["add"]["counter"] for c in created if "counter" in c.get("add", {})]
    assert counters == [{**ref(target_counter_name("c/1")), "comment": "c/1"}]
    v4, v6 = rules(created)
    # Destination address only: the port-80 scope's counter also sees port 53 passing toward the target.
    assert v4 == [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                "right": {"set": [{"prefix": {"addr": "192.0.2.0", "len": 24}}]},
            }
        },
        {"counter": target_counter_name("c/1")},
    ]
    assert v6[0]["match"]["left"] == {"payload": {"protocol": "ip6", "field": "daddr"}} and len(v6) == 2


def test_target_counters_are_kept_while_their_mitigation_stays_and_deleted_when_it_goes():
    second = MitigationScope("c/2", (ipaddress.ip_network("198.51.100.7/32"),))
    grown = watch_commands(TABLE, {}, {}, ["c/1"], {"c/1": PORT_SCOPE, "c/2": second})
    assert grown[0] == {"flush": {"chain": ref("ingress")}}  # not re-created: c/1's count goes on
    assert [c["add"]["counter"]["name"] for c in grown if "counter" in c.get("add", {})] == [target_counter_name("c/2")]
    assert len(rules(grown)) == 3
    shrunk = watch_commands(TABLE, {}, {}, ["c/1", "c/2"], {"c/2": second})
    assert [c["delete"] for c in shrunk if "delete" in c] == [{"counter": ref(target_counter_name("c/1"))}]
    assert watch_commands(TABLE, {}, {}, ["c/2"], {}) == WATCH.reset_commands()


def test_a_narrow_mitigation_has_both_its_scope_counter_and_its_target_counter():
    narrow = Watch(PORT_SCOPE)
    commands = watch_commands(TABLE, {}, {"c/1": narrow}, (), {"c/1": PORT_SCOPE})
    counted = [expr[-1]["counter"] for expr in rules(commands)]
    assert counted == [passed_counter_name("c/1")] * 2 + [target_counter_name("c/1")] * 2
