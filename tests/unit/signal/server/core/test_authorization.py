"""The integer shortcuts on the request path decide exactly like ipaddress and the order-free comparison."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.config import ClientAuthorization
from opendots.mitigate.base import PortRange
from opendots.signal.server.core.authorization import check_authorized
from opendots.signal.server.core.messages import Rejected
from opendots.signal.server.core.scope import MitigationRequest, Targets

IPV4 = st.builds(
    lambda address, length: ipaddress.ip_network(f"{ipaddress.IPv4Address(address)}/{length}", strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
IPV6 = st.builds(
    lambda address, length: ipaddress.ip_network(f"{ipaddress.IPv6Address(address)}/{length}", strict=False),
    st.integers(0, 2**128 - 1) | st.integers(0x20010DB8 << 96, (0x20010DB8 << 96) + 2**96 - 1),
    st.integers(0, 128),
)
PREFIX = IPV4 | IPV6


@settings(max_examples=400, deadline=None)
@given(own=st.lists(PREFIX, max_size=4), asked=PREFIX)
def test_covers_prefix_agrees_with_subnet_of(own: list, asked) -> None:
    client = ClientAuthorization(name="c", cuid="x", prefixes=tuple(own))
    expected = any(asked.version == mine.version and asked.subnet_of(mine) for mine in own)
    assert client.covers_prefix(asked) is expected


@settings(max_examples=200, deadline=None)
@given(own=st.lists(PREFIX, max_size=3), asked=st.lists(PREFIX, min_size=1, max_size=3))
def test_check_authorized_refuses_the_first_prefix_outside_and_names_it(own: list, asked: list) -> None:
    client = ClientAuthorization(name="c", cuid="x", prefixes=tuple(own))
    outside = [p for p in asked if not any(p.version == m.version and p.subnet_of(m) for m in own)]
    try:
        check_authorized(client, Targets(target_prefixes=tuple(asked)))
    except Rejected as refused:
        assert outside, "refused although every prefix is covered"
        assert str(outside[0]) in str(refused)
    else:
        assert not outside


def _request(prefixes: tuple, ports: tuple = (), protocols: tuple = ()) -> MitigationRequest:
    return MitigationRequest(
        targets=Targets(target_prefixes=prefixes, target_port_ranges=ports, target_protocols=protocols), lifetime=3600
    )


def test_same_parameters_ignores_order_and_sees_every_difference() -> None:
    a, b = ipaddress.ip_network("2001:db8:1::/64"), ipaddress.ip_network("192.0.2.0/24")
    web, dns = PortRange(80, 80), PortRange(53, 53)
    assert _request((a, b), (web, dns), (6, 17)).same_parameters(_request((a, b), (web, dns), (6, 17)))
    assert _request((a, b), (web, dns), (6, 17)).same_parameters(_request((b, a), (dns, web), (17, 6)))
    assert not _request((a, b)).same_parameters(_request((a,)))
    assert not _request((a,), (web,)).same_parameters(_request((a,), (dns,)))
    assert not _request((a,), (), (6,)).same_parameters(_request((a,), (), (17,)))
    flipped = MitigationRequest(targets=Targets(target_prefixes=(a,)), lifetime=3600, trigger_mitigation=False)
    assert not _request((a,)).same_parameters(flipped)


@settings(max_examples=300, deadline=None)
@given(prefixes=st.lists(PREFIX, max_size=4))
def test_prefix_ranges_are_each_prefix_first_and_last_address(prefixes: list) -> None:
    expected = tuple((p.version, int(p.network_address), int(p.broadcast_address)) for p in prefixes)
    assert Targets(target_prefixes=tuple(prefixes)).prefix_ranges == expected
