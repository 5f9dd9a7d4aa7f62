"""The breakdown table's plan (opendots.mitigate.nftables_breakdown): what is counted per protocol and port, and
what is left uncounted rather than counted wrong."""

from __future__ import annotations

import ipaddress

from opendots.domain import MitigationScope, PortRange
from opendots.mitigate.nftables_breakdown import (
    DEFAULT_PROTOCOLS,
    MAX_PORTS,
    Breakdown,
    breakdown_commands,
    breakdown_values,
    complete,
    port_counter_name,
    protocol_counter_name,
)
from opendots.mitigate.nftables_render import Table

TABLE = Table(name="opendots", interface="eth0")


def scope(
    key: str, *prefixes: str, ports: tuple[PortRange, ...] = (), protocols: tuple[int, ...] = ()
) -> MitigationScope:
    return MitigationScope(key, tuple(ipaddress.ip_network(p) for p in prefixes), ports, protocols)


def test_the_named_protocols_are_counted_else_the_common_ones_and_ports_are_bounded() -> None:
    assert Breakdown.of(scope("a", "192.0.2.0/24", protocols=(17, 6))) == Breakdown((6, 17), ())
    assert Breakdown.of(scope("a", "192.0.2.0/24")).protocols == DEFAULT_PROTOCOLS
    wide = Breakdown.of(scope("a", "192.0.2.0/24", ports=(PortRange(1, 65535), PortRange(53, 53))))
    assert wide.ports == tuple(range(1, MAX_PORTS + 1))  # the lowest ones; a 65,535-counter range is not counted


def test_a_mitigation_another_one_owns_addresses_of_is_not_counted() -> None:
    """Packets to 192.0.2.1 count for the /32 (most specific, as the drop maps): the /24's count would miss them."""
    scopes = {
        "wide": scope("wide", "192.0.2.0/24"),
        "host": scope("host", "192.0.2.1/32"),
        "first": scope("first", "198.51.100.0/24", "2001:db8::/64"),
        "same": scope("same", "198.51.100.0/24"),  # identical prefix: the one applied first owns it
        "callhome": MitigationScope(
            "callhome", (ipaddress.ip_network("203.0.113.0/24"),), source_prefixes=(ipaddress.ip_network("10.0.0.0/8"),)
        ),
    }
    assert list(complete(scopes)) == ["host", "first"]


def test_counters_of_mitigations_still_counted_are_kept_and_the_others_deleted() -> None:
    one, two = scope("one", "192.0.2.1/32", ports=(PortRange(53, 53),)), scope("two", "192.0.2.2/32")
    first = breakdown_commands(TABLE, {}, {"one": one, "two": two})
    added = {c["add"]["counter"]["name"] for c in first if "counter" in c.get("add", {})}
    assert protocol_counter_name("one", 17) in added and port_counter_name("one", 53) in added
    second = breakdown_commands(TABLE, {"one": one, "two": two}, {"two": two})
    deleted = {c["delete"]["counter"]["name"] for c in second if "counter" in c.get("delete", {})}
    assert deleted == set(Breakdown.of(one).counters("one"))
    # By difference: only one's elements go, none of two's is touched, the table and its rules stay.
    deletions = [c["delete"]["element"] for c in second if "element" in c.get("delete", {})]
    gone = {deletion["name"]: len(deletion["elem"]) for deletion in deletions}
    assert gone == {"bproto4": len(DEFAULT_PROTOCOLS), "bport4": 1, "bdst4": 1, "bports": 1}  # and the gates
    assert not [c for c in second if "add" in c and set(c["add"]) & {"element", "rule", "table", "chain"}]
    assert breakdown_commands(TABLE, {"two": two}, {})[-1] == {"delete": {"table": {"family": "netdev",
        "name": "opendots_bd"}}}  # fmt: skip
    assert breakdown_commands(TABLE, {}, {}) == []


def test_values_are_read_per_protocol_and_port_and_none_when_a_counter_is_missing() -> None:
    one = scope("one", "192.0.2.1/32", protocols=(17,), ports=(PortRange(53, 54),))
    values = {protocol_counter_name("one", 17): (7, 700), port_counter_name("one", 53): (5, 500)}
    assert breakdown_values(one, "one", values) is None  # port 54 was not read: nothing is claimed
    values[port_counter_name("one", 54)] = (2, 200)
    assert breakdown_values(one, "one", values) == (((17, 7, 700),), ((53, 5, 500), (54, 2, 200)))
