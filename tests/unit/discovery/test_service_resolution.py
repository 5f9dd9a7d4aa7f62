"""RFC 8973 §4, §6, §7: S-NAPTR and DNS-SD ordering, source precedence and the TTL cache, without sockets.

The zone is RFC 8973 Figure 8 (and Figure 9 / Figure 10) held in a dict; tests/e2e/test_discovery.py serves the
same kind of zone from a real dnsmasq.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from opendots.discovery.cache import MIN_TTL, DiscoveryCache
from opendots.discovery.dhcp import encode_name
from opendots.discovery.discover import ALL_PROTOCOLS, Discoverer, DiscoverySettings, trusted
from opendots.discovery.naptr import SERVICE_CALL_HOME, Naptr, Srv, order_srv, select_naptr
from opendots.discovery.records import DiscoveredServer, DiscoveryResult
from opendots.discovery.resolve import parse_resolver
from tests.helpers.dns_zone import Zone
from tests.helpers.dns_zone import naptr as _naptr

FIGURE_8 = {
    ("NAPTR", "example.net"): [
        _naptr(100, "", "DOTS:signal.udp", "signal.example.net"),
        _naptr(200, "", "DOTS:signal.tcp", "signal.example.net"),
        _naptr(300, "", "DOTS:data.tcp", "data.example.net"),
    ],
    ("NAPTR", "signal.example.net"): [
        _naptr(100, "s", "DOTS:signal.udp", "_dots-signal._udp.example.net"),
        _naptr(200, "s", "DOTS:signal.tcp", "_dots-signal._tcp.example.net"),
    ],
    ("NAPTR", "data.example.net"): [
        _naptr(100, "s", "DOTS:data.tcp", "_dots-data._tcp.example.net"),
        _naptr(200, "a", "DOTS:data.tcp", "b.example.net"),
    ],
    ("SRV", "_dots-signal._udp.example.net"): [Srv(0, 0, 5000, "a.example.net", 120)],
    ("SRV", "_dots-signal._tcp.example.net"): [Srv(0, 0, 5001, "a.example.net", 300)],
    ("SRV", "_dots-data._tcp.example.net"): [Srv(0, 0, 5002, "a.example.net", 300)],
    ("ADDR", "a.example.net"): [("2001:db8::1", 60.0)],
    ("ADDR", "b.example.net"): [("2001:db8::2", 300.0)],
}


def _discover(settings: DiscoverySettings, zone: Zone, protocols: tuple[str, ...] = ALL_PROTOCOLS) -> DiscoveryResult:
    return asyncio.run(Discoverer(settings, zone, random.Random(1)).discover(protocols))


def test_figure_8_resolves_to_the_four_tuples_of_table_1_in_order_rfc8973_6() -> None:
    result = _discover(DiscoverySettings(domain="example.net"), Zone(FIGURE_8))
    dns = [(s.transport, s.address, s.port, s.channel) for s in result.servers if s.source == "dns"]
    assert dns == [
        ("dtls", "2001:db8::1", 5000, "signal"),
        ("tls", "2001:db8::1", 5001, "signal"),
        ("tls", "2001:db8::1", 5002, "data"),
        ("tls", "2001:db8::2", 443, "data"),  # "a" flag: the data channel's default port (§6)
    ]


def test_the_reference_identifier_is_the_domain_of_the_s_naptr_lookup_not_the_srv_target_rfc8973_8_2() -> None:
    result = _discover(DiscoverySettings(domain="example.net"), Zone(FIGURE_8))
    assert {s.peer_name for s in result.servers} == {"example.net"}


def test_the_ttl_is_the_shortest_along_the_naptr_srv_address_chain_rfc8973_4() -> None:
    result = _discover(DiscoverySettings(domain="example.net"), Zone(FIGURE_8), ("signal.udp",))
    (server,) = result.servers
    assert server.ttl == 60.0  # NAPTR 300, SRV 120, AAAA 60
    assert result.ttl == 60.0


def test_call_home_tags_are_not_taken_for_the_dots_service_rfc8973_9_4() -> None:
    records = [
        _naptr(100, "", "DOTS-CALL-HOME:signal.udp", "signal.example.net"),
        _naptr(200, "", "dots:signal.tcp", "signal.example.net"),  # service tags are case-insensitive
        Naptr(50, 10, "u", "DOTS:signal.udp", "!.*!x!", "", 300),  # U flag / regexp: not S-NAPTR
    ]
    assert [r.service for r in select_naptr(records, ("signal.udp", "signal.tcp"))] == ["dots:signal.tcp"]
    assert [r.order for r in select_naptr(records, ("signal.udp",), SERVICE_CALL_HOME)] == [100]


def test_srv_records_go_by_priority_and_weight_and_a_dot_target_is_dropped_rfc2782() -> None:
    records = [Srv(20, 0, 1, "late", 1), Srv(10, 0, 2, ".", 1), Srv(10, 60, 3, "heavy", 1), Srv(10, 0, 4, "light", 1)]
    firsts = [order_srv(records, random.Random(seed))[0].target for seed in range(200)]
    assert {target for target in firsts} <= {"heavy", "light"}
    assert firsts.count("heavy") > firsts.count("light")  # 60 to 0 weight (0 keeps a small chance, RFC 2782)
    assert order_srv(records, random.Random(3))[-1].target == "late"
    assert all(r.target != "." for r in order_srv(records, random.Random(4)))


def test_dns_sd_finds_instances_through_ptr_then_srv_rfc8973_7_figure_10() -> None:
    zone = Zone(
        {
            ("PTR", "_dots-signal._udp.example.net"): [
                ("a._dots-signal._udp.example.net", 200.0),
                ("b._dots-signal._udp.example.net", 200.0),
            ],
            ("SRV", "a._dots-signal._udp.example.net"): [Srv(0, 0, 4646, "a.example.net", 200)],
            ("SRV", "b._dots-signal._udp.example.net"): [Srv(0, 0, 4646, "b.example.net", 200)],
            ("ADDR", "a.example.net"): [("2001:db8::1", 200.0)],
            ("ADDR", "b.example.net"): [("192.0.2.2", 200.0)],
        }
    )
    result = _discover(DiscoverySettings(domain="example.net"), zone, ("signal.udp",))
    assert [(s.source, s.address, s.port, s.transport) for s in result.servers] == [
        ("dns-sd", "2001:db8::1", 4646, "dtls"),
        ("dns-sd", "192.0.2.2", 4646, "dtls"),
    ]


def test_sources_are_preferred_config_then_dhcp_then_dns_then_dns_sd_rfc8973_4(tmp_path: Path) -> None:
    dhcp = tmp_path / "dhcp.env"
    dhcp.write_text(f"opt147={encode_name('dhcp.example.net').hex()}\nopt148=c0000207\nlease=900\n")
    records = dict(FIGURE_8)
    records[("PTR", "_dots-signal._udp.example.net")] = [("x._dots-signal._udp.example.net", 60.0)]
    records[("SRV", "x._dots-signal._udp.example.net")] = [Srv(0, 0, 4646, "b.example.net", 60)]
    settings = DiscoverySettings(
        server_name="dots.example.org", server_addresses=["198.51.100.1"], domain="example.net", dhcp_file=dhcp
    )
    result = _discover(settings, Zone(records), ("signal.udp", "signal.tcp"))
    groups = [(name, *{s.source for s in servers}) for name, servers in result.signal_groups()]
    assert groups == [
        ("dots.example.org", "config"),
        ("dhcp.example.net", "dhcp"),
        ("example.net", "dns"),
        ("example.net", "dns-sd"),
    ]
    dhcp_servers = [s for s in result.servers if s.source == "dhcp"]
    assert {s.address for s in dhcp_servers} == {"192.0.2.7"} and {s.ttl for s in dhcp_servers} == {900.0}


def test_a_dhcp_name_outside_the_trusted_names_is_refused_rfc8973_8_1(tmp_path: Path) -> None:
    dhcp = tmp_path / "dhcp.env"
    dhcp.write_text(f"opt147={encode_name('dots.evil.example').hex()}\nopt148=c0000207\n")
    settings = DiscoverySettings(dhcp_file=dhcp, trusted_names=["*.example.com"])
    result = _discover(settings, Zone({}))
    assert result.servers == []
    assert any("not in discovery_trusted_names" in note for note in result.notes)
    assert trusted("dots-1.example.com", ["*.example.com"]) and not trusted("example.com", ["*.example.com"])
    assert not trusted("xexample.com", ["*.example.com"])


def test_a_dhcp_name_alone_goes_to_s_naptr_on_that_name_and_is_the_name_verified_rfc8973_5(tmp_path: Path) -> None:
    dhcp = tmp_path / "dhcp.env"
    dhcp.write_text(f"opt147={encode_name('example.net').hex()}\n")
    result = _discover(DiscoverySettings(dhcp_file=dhcp), Zone(FIGURE_8), ("signal.udp",))
    assert [(s.source, s.address, s.port, s.peer_name) for s in result.servers] == [
        ("dhcp", "2001:db8::1", 5000, "example.net")
    ]


def test_a_silent_resolver_is_reported_per_mechanism_and_does_not_stop_the_others() -> None:
    settings = DiscoverySettings(server_addresses=["192.0.2.1"], server_name="dots.example.org", domain="example.net")
    result = _discover(settings, Zone({}, fail=True), ("signal.udp",))
    assert [s.source for s in result.servers] == ["config", "config"]  # DTLS and TLS
    assert any(note.startswith("dns: the resolver did not answer") for note in result.notes)
    assert any(note.startswith("dns-sd: the resolver did not answer") for note in result.notes)


def test_the_result_is_cached_for_its_ttl_and_dropped_when_invalidated_rfc8973_4() -> None:
    server = DiscoveredServer("192.0.2.1", 4646, "dtls", "signal", "example.net", "dns", 60.0)
    cache = DiscoveryCache()
    cache.store(DiscoveryResult([server]), now=1000.0)
    assert cache.get(1059.9) is not None
    assert cache.get(1060.0) is None
    cache.store(DiscoveryResult([server]), now=2000.0)
    cache.invalidate()
    assert cache.get(2000.0) is None
    zero = DiscoveredServer("192.0.2.1", 4646, "dtls", "signal", "example.net", "dns", 0.0)
    cache.store(DiscoveryResult([zero]), now=0.0)
    assert cache.expires_at() == MIN_TTL
    cache.store(DiscoveryResult([]), now=0.0)  # nothing found: not cached, next attempt looks again
    assert cache.get(0.0) is None


def test_explicit_configuration_without_ttl_is_cached_until_invalidated() -> None:
    server = DiscoveredServer("192.0.2.1", 4646, "dtls", "signal", "dots.example.org", "config", None)
    cache = DiscoveryCache()
    cache.store(DiscoveryResult([server]), now=0.0)
    assert cache.get(10**9) is not None


def test_resolver_addresses_take_an_optional_port() -> None:
    assert parse_resolver("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_resolver("192.0.2.53:5353") == ("192.0.2.53", 5353)
    assert parse_resolver("2001:db8::53") == ("2001:db8::53", 53)
    assert parse_resolver("[2001:db8::53]:5353") == ("2001:db8::53", 5353)


def test_a_zone_that_fans_out_is_cut_at_the_lookup_budget_and_srv_port_0_is_dropped() -> None:
    # Every SRV target has its own name: without bounds, 1000 records would mean 1000 address lookups.
    records: dict[tuple[str, str], list] = {
        ("NAPTR", "example.net"): [_naptr(100, "s", "DOTS:signal.udp", "_dots-signal._udp.example.net")],
        ("SRV", "_dots-signal._udp.example.net"): [Srv(0, 0, 4646, f"h{i}.example.net", 60) for i in range(1000)]
        + [Srv(0, 0, 0, "zero.example.net", 60)],
    }
    for i in range(1000):
        records[("ADDR", f"h{i}.example.net")] = [(f"2001:db8::{i + 1:x}", 60.0)]
    records[("ADDR", "zero.example.net")] = [("2001:db8:0:1::1", 60.0)]
    zone = Zone(records)
    result = _discover(DiscoverySettings(domain="example.net"), zone, ("signal.udp",))
    assert len(zone.queries) <= 64  # discover.MAX_LOOKUPS
    assert len([s for s in result.servers if s.source == "dns"]) == 16  # discover.MAX_RECORDS SRV records kept
    assert all(s.port != 0 for s in result.servers)


def test_non_terminal_naptr_records_that_fan_out_stop_at_the_lookup_budget() -> None:
    class Fanning(Zone):
        """Every name has 16 non-terminal NAPTR records to 16 new names: 16^5 lookups without a budget."""

        async def naptr(self, name: str) -> list[Naptr]:
            await self._get("NAPTR", name)
            return [_naptr(100, "", "DOTS:signal.udp", f"n{i}.{name}") for i in range(16)]

    zone = Fanning({})
    result = _discover(DiscoverySettings(domain="example.net"), zone, ("signal.udp",))
    assert len(zone.queries) == 64
    assert any("more than 64 lookups" in note for note in result.notes)
