"""A Call Home DOTS server finding its Call Home DOTS client (RFC 8973 §4 "also followed by a Call Home DOTS
server"): the `[call_home]` table, the order of the sources, the transports kept, and the TTL cache dropped when no
candidate answered. Zones are dicts (tests/helpers/dns_zone.py); the e2e test serves them from dnsmasq."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opendots.callhome.cpe import DISCOVERED, ProviderAddress, ProviderDialer
from opendots.callhome.discovery import CallHomeDiscoveryConfig, Candidate, ProviderDiscovery
from opendots.callhome.redirect import Redirect
from opendots.config import ServerConfig
from opendots.discovery.dhcp import encode_name
from opendots.discovery.naptr import Naptr, Srv
from opendots.errors import ConfigError
from opendots.pki.setup import init_call_home
from tests.helpers.dns_zone import Zone

ZONE = {
    ("NAPTR", "isp.example"): [
        Naptr(100, 10, "s", "DOTS-CALL-HOME:signal.udp", "", "_dots-call-home._udp.isp.example", 120),
        Naptr(200, 10, "s", "DOTS-CALL-HOME:signal.tcp", "", "_dots-call-home._tcp.isp.example", 120),
    ],
    ("SRV", "_dots-call-home._udp.isp.example"): [Srv(0, 0, 6000, "ch.isp.example", 120)],
    ("SRV", "_dots-call-home._tcp.isp.example"): [Srv(0, 0, 6001, "ch.isp.example", 120)],
    ("ADDR", "ch.isp.example"): [("2001:db8::2", 120.0)],
    ("PTR", "_dots-call-home._tcp.isp.example"): [("x._dots-call-home._tcp.isp.example", 120.0)],
    ("SRV", "x._dots-call-home._tcp.isp.example"): [Srv(0, 0, 4647, "sd.isp.example", 120)],
    ("ADDR", "sd.isp.example"): [("192.0.2.44", 120.0)],
}
EXPLICIT = Candidate("198.51.100.1", 4647, "tls", "provider", "config")


def _settings(tmp_path: Path, **table: object) -> CallHomeDiscoveryConfig:
    return CallHomeDiscoveryConfig.from_table({"discovery": "auto", **table}, tmp_path, "cpe.toml: [call_home]")


def _candidates(discovery: ProviderDiscovery, now: float = 0.0) -> list[tuple[str, str, str, int, str]]:
    found = asyncio.run(discovery.candidates(now))
    return [(c.source, c.transport, c.host, c.port, c.server_name) for c in found]


def test_explicit_providers_then_dhcp_then_s_naptr_then_dns_sd_rfc8973_4(tmp_path: Path) -> None:
    (tmp_path / "dhcp.env").write_text(f"opt147={encode_name('dhcp.isp.example').hex()}\nopt148=c0000263\n")
    settings = _settings(tmp_path, discovery_domain="isp.example", discovery_dhcp_file="dhcp.env")
    discovery = ProviderDiscovery(settings, Zone(ZONE), [EXPLICIT])
    assert _candidates(discovery) == [
        ("config", "tls", "198.51.100.1", 4647, "provider"),
        ("dhcp", "dtls", "192.0.2.99", 4647, "dhcp.isp.example"),
        ("dhcp", "tls", "192.0.2.99", 4647, "dhcp.isp.example"),
        ("dns", "dtls", "2001:db8::2", 6000, "isp.example"),
        ("dns", "tls", "2001:db8::2", 6001, "isp.example"),
        ("dns-sd", "tls", "192.0.2.44", 4647, "isp.example"),
    ]
    assert discovery.notes()[0] == "config: provider@198.51.100.1:4647"


def test_transport_tls_keeps_the_tls_candidates_only(tmp_path: Path) -> None:
    discovery = ProviderDiscovery(_settings(tmp_path, discovery_domain="isp.example", transport="tls"), Zone(ZONE))
    assert {transport for _, transport, *_ in _candidates(discovery)} == {"tls"}


def test_candidates_are_kept_for_their_ttl_and_looked_up_again_once_dropped_rfc8973_4(tmp_path: Path) -> None:
    zone = Zone(ZONE)
    discovery = ProviderDiscovery(_settings(tmp_path, discovery_domain="isp.example"), zone)
    first = _candidates(discovery, now=0.0)
    asked = len(zone.queries)
    assert _candidates(discovery, now=100.0) == first and len(zone.queries) == asked  # TTL 120 s holds
    _candidates(discovery, now=121.0)
    assert len(zone.queries) == 2 * asked  # expired: discovered again
    discovery.invalidate()  # what the dialer does when no candidate answered
    _candidates(discovery, now=122.0)
    assert len(zone.queries) == 3 * asked


def test_nothing_configured_and_nothing_found_says_why_per_source(tmp_path: Path) -> None:
    discovery = ProviderDiscovery(_settings(tmp_path), Zone({}))
    assert _candidates(discovery) == []
    notes = discovery.notes()
    assert notes[0].startswith("config: no [[providers]]")
    assert any(note.startswith("dhcp:") for note in notes) and any(note.startswith("dns, dns-sd:") for note in notes)


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"discovery": "yes"}, "discovery must be off or auto"),
        ({"transport": "quic"}, "transport must be auto, dtls or tls"),
        ({"discovery_resolver": "dns.example"}, "is not an address[:port]"),
        ({"discovery_trusted_names": "*.isp.example"}, "must be a list of names"),
        ({"discovery_domian": "isp.example"}, "unknown key 'discovery_domian'"),
    ],
)
def test_a_bad_call_home_table_is_refused_with_the_key_named(
    tmp_path: Path, table: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint.replace("[", r"\[")):
        CallHomeDiscoveryConfig.from_table(table, tmp_path, "cpe.toml: [call_home]")


def test_cpe_toml_keeps_its_call_home_table_and_checks_it_at_load(tmp_path: Path) -> None:
    cpe_toml, _ = init_call_home(tmp_path)
    config = ServerConfig.load(cpe_toml)
    config.call_home = {"discovery": "auto", "discovery_domain": "isp.example"}
    config.save(cpe_toml)
    assert ServerConfig.load(cpe_toml).call_home == {"discovery": "auto", "discovery_domain": "isp.example"}
    config.call_home = {"discovery": "sometimes"}
    config.save(cpe_toml)
    with pytest.raises(ConfigError, match=r"cpe.toml: \[call_home\] discovery must be off or auto"):
        ServerConfig.load(cpe_toml)


def _dialer(discovery: ProviderDiscovery, tmp_path: Path) -> ProviderDialer:
    config = ServerConfig.load(init_call_home(tmp_path)[0])
    return ProviderDialer(DISCOVERED, config, site=None, listeners=[], clock=lambda: 1000.0, discovery=discovery)


def test_a_discovering_dialer_dials_each_candidate_with_its_reference_identifier_rfc8973_8(tmp_path: Path) -> None:
    dialer = _dialer(ProviderDiscovery(_settings(tmp_path, discovery_domain="isp.example"), Zone(ZONE)), tmp_path)
    targets = asyncio.run(dialer._targets())
    assert targets[:2] == [
        ProviderAddress("2001:db8::2", "isp.example", 6000, "dtls"),
        ProviderAddress("2001:db8::2", "isp.example", 6001, "tls"),
    ]
    assert [dialer._sources[target] for target in targets] == ["dns", "dns", "dns-sd"]


def test_a_redirection_from_a_discovered_client_keeps_the_port_and_transport_it_was_dialed_on_rfc9066_5_2_2(
    tmp_path: Path,
) -> None:
    dialer = _dialer(ProviderDiscovery(_settings(tmp_path, discovery_domain="isp.example"), Zone(ZONE)), tmp_path)
    dialer.dialed = asyncio.run(dialer._targets())[1]
    dialer.redirect = Redirect("alt.isp.example", ("192.0.2.8",), None, 1000.0)
    [target] = asyncio.run(dialer._targets())
    assert (target.host, target.server_name, target.port, target.transport) == (
        "192.0.2.8",
        "alt.isp.example",
        6001,
        "tls",
    )


def test_a_dialer_that_discovers_nothing_says_why_and_dials_nothing(tmp_path: Path) -> None:
    dialer = _dialer(ProviderDiscovery(_settings(tmp_path), Zone({})), tmp_path)
    assert asyncio.run(dialer._targets()) == []
    assert dialer.last_error is not None and dialer.last_error.startswith("discovery found no Call Home DOTS client")
