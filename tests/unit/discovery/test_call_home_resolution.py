"""RFC 8973 for the other two users of the procedure: a Call Home DOTS server finding its Call Home DOTS client
("DOTS-CALL-HOME", Figure 9, `_dots-call-home._udp/_tcp`) and a DOTS client finding its data channel server
("data.tcp"), without sockets: the zones are dicts (tests/helpers/dns_zone.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from opendots.discovery.dhcp import encode_name
from opendots.discovery.discover import SIGNAL_PROTOCOLS, Discoverer, DiscoverySettings
from opendots.discovery.naptr import SERVICE_CALL_HOME, Srv, srv_service
from opendots.discovery.records import DiscoveryResult
from tests.helpers.dns_zone import Zone
from tests.helpers.dns_zone import naptr as _naptr

FIGURE_9 = {
    ("NAPTR", "example.net"): [
        _naptr(100, "", "DOTS-CALL-HOME:signal.udp", "signal.example.net"),
        _naptr(200, "", "DOTS-CALL-HOME:signal.tcp", "signal.example.net"),
        _naptr(300, "", "DOTS:signal.udp", "dots.example.net"),  # the base DOTS service: not Call Home's
    ],
    ("NAPTR", "signal.example.net"): [
        _naptr(100, "s", "DOTS-CALL-HOME:signal.udp", "_dots-call-home._udp.example.net"),
        _naptr(200, "s", "DOTS-CALL-HOME:signal.tcp", "_dots-call-home._tcp.example.net"),
    ],
    ("NAPTR", "dots.example.net"): [_naptr(100, "s", "DOTS:signal.udp", "_dots-signal._udp.example.net")],
    ("SRV", "_dots-call-home._udp.example.net"): [Srv(0, 0, 6000, "b.example.net", 300)],
    ("SRV", "_dots-call-home._tcp.example.net"): [Srv(0, 0, 6001, "b.example.net", 300)],
    ("SRV", "_dots-signal._udp.example.net"): [Srv(0, 0, 4646, "a.example.net", 300)],
    ("ADDR", "a.example.net"): [("2001:db8::1", 300.0)],
    ("ADDR", "b.example.net"): [("2001:db8::2", 300.0)],
}


def _call_home(**keys: object) -> DiscoverySettings:
    return DiscoverySettings(signal_port=4647, service=SERVICE_CALL_HOME, **keys)  # type: ignore[arg-type]


def _discover(
    settings: DiscoverySettings, zone: Zone, protocols: tuple[str, ...] = SIGNAL_PROTOCOLS
) -> DiscoveryResult:
    return asyncio.run(Discoverer(settings, zone, random.Random(1)).discover(protocols))


def test_figure_9_resolves_to_the_two_tuples_of_table_2_and_ignores_the_base_dots_records_rfc8973_6() -> None:
    zone = Zone(FIGURE_9)
    result = _discover(_call_home(domain="example.net"), zone)
    found = [(s.transport, s.address, s.port, s.peer_name, s.source) for s in result.servers]
    assert found == [
        ("dtls", "2001:db8::2", 6000, "example.net", "dns"),
        ("tls", "2001:db8::2", 6001, "example.net", "dns"),
    ]
    assert ("NAPTR", "dots.example.net") not in zone.queries  # "DOTS:" is another application service
    assert ("PTR", "_dots-call-home._udp.example.net") in zone.queries  # DNS-SD under Call Home's service names


def test_a_dots_client_does_not_take_a_call_home_client_for_its_server_rfc8973_9_4() -> None:
    result = _discover(DiscoverySettings(domain="example.net"), Zone(FIGURE_9))
    assert [(s.address, s.port) for s in result.servers] == [("2001:db8::1", 4646)]


def test_call_home_dns_sd_browses_dots_call_home_service_names_rfc8973_7() -> None:
    zone = Zone(
        {
            ("PTR", "_dots-call-home._tcp.sd.net"): [("p._dots-call-home._tcp.sd.net", 60.0)],
            ("SRV", "p._dots-call-home._tcp.sd.net"): [Srv(0, 0, 4647, "p.sd.net", 60)],
            ("ADDR", "p.sd.net"): [("192.0.2.7", 60.0)],
        }
    )
    result = _discover(_call_home(domain="sd.net"), zone)
    assert [(s.source, s.transport, s.address, s.port, s.peer_name) for s in result.servers] == [
        ("dns-sd", "tls", "192.0.2.7", 4647, "sd.net")
    ]
    assert srv_service(SERVICE_CALL_HOME, "data.tcp") is None  # Call Home has no data channel (§9.1)


def test_dhcp_addresses_are_dialed_at_the_call_home_port_rfc8973_5(tmp_path: Path) -> None:
    options = tmp_path / "dhcp.env"
    options.write_text(f"opt147={encode_name('provider.example.net').hex()}\nopt148=c0000202c0000203\nlease=600\n")
    result = _discover(_call_home(dhcp_file=options), Zone({}))
    assert [(s.address, s.port, s.peer_name, s.ttl) for s in result.servers if s.transport == "dtls"] == [
        ("192.0.2.2", 4647, "provider.example.net", 600.0),
        ("192.0.2.3", 4647, "provider.example.net", 600.0),
    ]


def test_dhcp_and_configured_addresses_serve_the_data_channel_too_at_data_port_rfc8973_5(tmp_path: Path) -> None:
    options = tmp_path / "dhcp.env"
    options.write_text(f"opt147={encode_name('dots.example.net').hex()}\nopt148=c0000202\n")
    settings = DiscoverySettings(dhcp_file=options, data_port=8443, server_name="192.0.2.9")
    result = _discover(settings, Zone({}), ("data.tcp",))
    assert [(s.source, s.channel, s.transport, s.address, s.port) for s in result.servers] == [
        ("config", "data", "tls", "192.0.2.9", 8443),
        ("dhcp", "data", "tls", "192.0.2.2", 8443),
    ]
    assert all(s.channel == "signal" for s in _discover(settings, Zone({})).servers)  # asked for signal only
