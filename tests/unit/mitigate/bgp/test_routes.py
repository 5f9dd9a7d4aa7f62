"""The sans-I/O core of the BGP actuator: scopes -> routes, and the shared route table."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opendots.mitigate.base import MitigationScope, MitigatorError, PortRange
from opendots.mitigate.bgp.routes import (
    BLACKHOLE_COMMUNITY,
    FlowspecRoute,
    RoutePolicy,
    RouteTable,
    RtbhRoute,
    routes_for_scope,
)

net = ipaddress.ip_network
V4 = net("203.0.113.7/32")
V6 = net("2001:db8:5::7/128")


def test_rtbh_route_per_target_with_blackhole_community_and_family_next_hop():
    policy = RoutePolicy(mode="rtbh", extra_communities=("64496:9999",))
    routes = routes_for_scope(MitigationScope("c/1", (V4, V6), target_port_ranges=(PortRange(80, 80),)), policy)
    assert routes == {
        RtbhRoute(V4, ipaddress.ip_address("192.0.2.1"), (BLACKHOLE_COMMUNITY, "64496:9999")),
        RtbhRoute(V6, ipaddress.ip_address("100::1"), (BLACKHOLE_COMMUNITY, "64496:9999")),
    }


def test_rtbh_refuses_a_prefix_shorter_than_allowed_unless_configured():
    scope = MitigationScope("c/1", (net("203.0.113.0/24"),))
    with pytest.raises(MitigatorError, match="only /32"):
        routes_for_scope(scope, RoutePolicy(mode="rtbh"))
    assert routes_for_scope(scope, RoutePolicy(mode="rtbh", rtbh_min_prefix_length_v4=24))


def test_flowspec_pairs_each_target_with_sources_of_its_own_family():
    scope = MitigationScope(
        "c/1",
        (V4, V6),
        target_port_ranges=(PortRange(443, 443), PortRange(80, 90), PortRange(443, 443)),
        target_protocols=(17, 6, 6),
        source_prefixes=(net("198.51.100.0/24"), net("2001:db8:9::/48"), net("192.0.2.0/25")),
        source_port_ranges=(PortRange(53, 53),),
    )
    routes = routes_for_scope(scope, RoutePolicy(mode="flowspec", flowspec_rate_limit_bytes_per_second=1000))
    common = {
        "protocols": (6, 17),
        "destination_ports": (PortRange(80, 90), PortRange(443, 443)),
        "source_ports": (PortRange(53, 53),),
        "rate_limit_bytes_per_second": 1000,
    }
    assert routes == {
        FlowspecRoute(V4, net("198.51.100.0/24"), **common),
        FlowspecRoute(V4, net("192.0.2.0/25"), **common),
        FlowspecRoute(V6, net("2001:db8:9::/48"), **common),
    }


def test_both_mode_gives_rtbh_and_flowspec():
    routes = routes_for_scope(MitigationScope("c/1", (V4,)), RoutePolicy(mode="both"))
    assert {type(route) for route in routes} == {RtbhRoute, FlowspecRoute}


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        (MitigationScope("c/1", ()), "no target prefix"),
        (MitigationScope("", (V4,)), "without a key"),
        (MitigationScope("c/1", (net("0.0.0.0/0"),)), "default route"),
        (MitigationScope("c/1", (V4,), target_protocols=(256,)), "protocol"),
        (MitigationScope("c/1", (V4,), target_port_ranges=(PortRange(90, 80),)), "destination port"),
        (MitigationScope("c/1", (V4,), target_port_ranges=(PortRange(0, 65536),)), "destination port"),
        (MitigationScope("c/1", (V4,), source_port_ranges=(PortRange(-1, 3),)), "source port"),
        (MitigationScope("c/1", (V4,), source_prefixes=(net("2001:db8::/32"),)), "address family"),
        (MitigationScope("c/1", ("203.0.113.7/32",)), "not an IP prefix"),  # type: ignore[arg-type]
    ],
)
def test_invalid_scopes_are_refused_with_a_reason(scope: MitigationScope, message: str):
    with pytest.raises(MitigatorError, match=message):
        routes_for_scope(scope, RoutePolicy(mode="flowspec"))


def test_route_count_per_mitigation_is_capped():
    targets = tuple(net(f"203.0.113.{i}/32") for i in range(10))
    sources = tuple(net(f"198.51.100.{i}/32") for i in range(10))
    scope = MitigationScope("c/1", targets, source_prefixes=sources)
    assert len(routes_for_scope(scope, RoutePolicy(mode="flowspec", max_routes_per_mitigation=100))) == 100
    with pytest.raises(MitigatorError, match="110 BGP routes"):
        routes_for_scope(scope, RoutePolicy(mode="both", max_routes_per_mitigation=100))


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RoutePolicy(mode="nullroute")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RoutePolicy(discard_next_hop_v4=ipaddress.ip_address("2001:db8::1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RoutePolicy(extra_communities=("65536:1",))
    for bad in ({"rtbh_min_prefix_length_v4": 33}, {"rtbh_min_prefix_length_v6": -1}, {"max_routes_per_mitigation": 0}):
        with pytest.raises(ValueError):
            RoutePolicy(**bad)
    for rate in (-1, float("nan"), float("inf"), 1e39):
        with pytest.raises(ValueError):
            RoutePolicy(flowspec_rate_limit_bytes_per_second=rate)


def test_route_table_announces_once_and_withdraws_after_the_last_holder():
    table = RouteTable()
    a, b, c = (FlowspecRoute(net(f"203.0.113.{i}/32")) for i in (1, 2, 3))
    assert table.set("k1", frozenset({a, b})).announce == tuple(sorted((a, b), key=repr))
    changes = table.set("k2", frozenset({b, c}))
    assert changes.announce == (c,) and changes.withdraw == ()
    changes = table.set("k1", frozenset({a}))  # b is still held by k2
    assert changes.announce == () and changes.withdraw == ()
    changes = table.remove("k2")
    assert set(changes.withdraw) == {b, c}
    assert table.remove("k1").withdraw == (a,)
    assert table.routes() == [] and table.by_key == {}
    assert table.remove("unknown") == table.remove("unknown")  # harmless, nothing to do


routes_strategy = st.frozensets(st.sampled_from([FlowspecRoute(net(f"203.0.113.{i}/32")) for i in range(6)]))


@given(st.lists(st.tuples(st.sampled_from(["k1", "k2", "k3"]), routes_strategy), max_size=30))
def test_route_table_wire_state_always_equals_the_union_of_what_keys_hold(operations):
    table = RouteTable()
    on_the_wire: set = set()
    for key, routes in operations:
        changes = table.set(key, routes)
        assert not (set(changes.announce) & on_the_wire), "announced a route twice"
        assert set(changes.withdraw) <= on_the_wire, "withdrew a route never announced"
        on_the_wire |= set(changes.announce)
        on_the_wire -= set(changes.withdraw)
        assert on_the_wire == set().union(*table.by_key.values())
