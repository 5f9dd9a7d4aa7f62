"""A peer certificate lacking the expected name is reported with where that name came from (opendots.pki.verify):
the configured server_name, a Call Home `[[providers]]` name or `--provider`, or the RFC 8973 §4 mechanism that
discovered it (§8: the reference identifier is the domain looked up, or the DHCP-supplied name)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from opendots.callhome.cpe import ProviderAddress
from opendots.cli.callhome import parse_provider, providers_of
from opendots.discovery.records import name_origin


def test_each_rfc8973_source_names_itself_and_the_name_looked_up() -> None:
    assert name_origin("config", "dots.example.net") == "server_name in client.toml"
    assert name_origin("config", "isp.example", "[[providers]] name") == "[[providers]] name"
    assert name_origin("dhcp", "dots.example.net") == "RFC 8973 DHCP answer naming dots.example.net"
    assert name_origin("dns", "example.net") == "RFC 8973 DNS S-NAPTR for example.net"
    assert name_origin("dns-sd", "example.net") == "RFC 8973 DNS-SD under example.net"


def test_a_call_home_provider_name_comes_from_its_providers_entry_or_the_provider_argument(tmp_path: Path) -> None:
    config = SimpleNamespace(providers=[{"name": "isp.example", "address": "192.0.2.1"}])  # all providers_of reads
    (configured,) = providers_of(config, tmp_path / "cpe.toml")  # type: ignore[arg-type]
    assert configured.origin == "[[providers]] name in cpe.toml"
    assert parse_provider("isp.example@192.0.2.1", "tls").origin == "--provider isp.example@192.0.2.1"
    # Where a name came from is not part of the address: the same provider is the same dial target.
    assert configured == ProviderAddress("192.0.2.1", "isp.example", origin="elsewhere")
