"""[client] discovery keys in client.toml, and discovered servers as Happy Eyeballs candidates."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from opendots.config import ClientConfig, ConfigError
from opendots.discovery.discover import settings_from
from opendots.discovery.records import DiscoveredServer
from opendots.signal.client.shell.connect import discovered_candidates


def _client_toml(pki_dir: Path, tmp_path: Path, keys: str, drop_server: bool = False) -> Path:
    data = tomllib.loads((pki_dir / "client.toml").read_text())
    if drop_server:
        del data["client"]["server_name"], data["client"]["server_addresses"]
    text = tomli_w.dumps(data).replace("[client]\n", f"[client]\n{keys}\n", 1)
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_bytes((pki_dir / name).read_bytes())
    path = tmp_path / "client.toml"
    path.write_text(text)
    return path


def test_discovery_auto_reads_domain_resolver_dhcp_file_and_trusted_names_and_saves_them(
    pki_dir: Path, tmp_path: Path
) -> None:
    keys = (
        'discovery = "auto"\ndiscovery_domain = "example.net"\ndiscovery_resolver = "10.0.0.53:5353"\n'
        'discovery_dhcp_file = "dhcp.env"\ndiscovery_trusted_names = ["*.example.net"]'
    )
    config = ClientConfig.load(_client_toml(pki_dir, tmp_path, keys, drop_server=True))
    assert (config.discovery, config.discovery_domain, config.discovery_resolver) == (
        "auto",
        "example.net",
        "10.0.0.53:5353",
    )
    assert config.discovery_dhcp_file == tmp_path / "dhcp.env"
    assert not config.server_configured  # the "localhost" default is not explicit configuration (RFC 8973 §4)
    assert settings_from(config).server_name is None
    config.save(tmp_path / "again.toml")
    again = ClientConfig.load(tmp_path / "again.toml")
    assert again.discovery_trusted_names == ["*.example.net"] and again.discovery_dhcp_file == tmp_path / "dhcp.env"


def test_without_discovery_keys_nothing_changes(pki_dir: Path, tmp_path: Path) -> None:
    config = ClientConfig.load(_client_toml(pki_dir, tmp_path, ""))
    assert config.discovery == "off" and config.server_configured
    assert "discovery" not in (tmp_path / "client.toml").read_text()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('discovery = "dhcp"', "discovery must be off or auto"),
        ('discovery_resolver = "dns.example.net"', "is not an address"),
        ('discovery_resolver = "10.0.0.53:70000"', "is not an address"),
        ("discovery_trusted_names = 3", "must be a list of strings"),
        ('discovery_domian = "x"', "unknown key 'discovery_domian'"),
    ],
)
def test_a_bad_discovery_key_is_a_config_error_naming_it(
    pki_dir: Path, tmp_path: Path, keys: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ClientConfig.load(_client_toml(pki_dir, tmp_path, keys))


def test_discovered_servers_race_dtls_first_then_ipv6_first_keeping_their_srv_ports_rfc9132_4_3() -> None:
    def server(address: str, port: int, transport: str) -> DiscoveredServer:
        return DiscoveredServer(address, port, transport, "signal", "example.net", "dns", 60.0)  # type: ignore[arg-type]

    servers = [server("192.0.2.1", 5001, "tls"), server("192.0.2.1", 5000, "dtls"), server("2001:db8::1", 5000, "dtls")]
    assert [str(c) for c in discovered_candidates(servers + servers[:1])] == [
        "DTLS/IPv6 coaps://[2001:db8::1]:5000",
        "DTLS/IPv4 coaps://192.0.2.1:5000",
        "TLS/IPv4 coaps+tcp://192.0.2.1:5001",
    ]
