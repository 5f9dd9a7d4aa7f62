"""RFC 8973 beyond the signal-channel client: a Call Home DOTS server (`opendots callhome server`) finding its Call
Home DOTS client (`opendots callhome client run`) through "DOTS-CALL-HOME" S-NAPTR/SRV records and through a DHCP
answer, and `opendots data` finding its RESTCONF server through "DOTS:data.tcp" records; dnsmasq serves the records
(and udhcpc reads the DHCP options) in namespaces tests/e2e/discovery_lab.py creates. A peer whose certificate lacks
the looked-up name is refused (§8)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendots.config import ServerConfig
from opendots.discovery.dhcp import encode_name
from opendots.lab.processes import ProcessStack
from tests.e2e.discovery_lab import DiscoveryLab, discovery_lab
from tests.helpers.callhome_processes import CallHomePair, call_home_pair, wait_until
from tests.helpers.cli import invoke
from tests.helpers.discovery import call_home_records, data_records, discovering, name_the_provider, signal_records

DOMAIN = "isp.test"  # in the provider's certificate: the reference identifier of the S-NAPTR results (§8.2)
DATA_DOMAIN = "example.test"  # in the DOTS server's certificate


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[DiscoveryLab]:
    yield from discovery_lab(tmp_path)


@pytest.fixture
def pair(tmp_path: Path, lab: DiscoveryLab) -> Iterator[CallHomePair]:
    yield from call_home_pair(tmp_path / "callhome", "dtls")


def _discovering_cpe(pair: CallHomePair, **table: Any) -> None:
    """cpe.toml with no [[providers]]: the Call Home DOTS client is found as `[call_home]` says, or not at all."""
    name_the_provider(pair.directory, pair.cpe_toml, [DOMAIN])
    config = ServerConfig.load(pair.cpe_toml)
    config.providers = []
    config.call_home = {"discovery": "auto", **table}
    config.save(pair.cpe_toml)


def _provider_port(pair: CallHomePair) -> int:
    from opendots.callhome.provider_config import ProviderConfig

    return ProviderConfig.load(pair.provider_toml).port


def _callhome_discover(pair: CallHomePair) -> dict[str, Any]:
    result = invoke("callhome", "discover", "-c", str(pair.cpe_toml), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_cpe_finds_its_call_home_dots_client_through_dots_call_home_s_naptr_and_srv_rfc8973_6_figure_9(
    lab: DiscoveryLab, pair: CallHomePair
) -> None:
    port = _provider_port(pair)
    resolver = lab.serve_dns(call_home_records(DOMAIN, port))
    _discovering_cpe(pair, discovery_domain=DOMAIN, discovery_resolver=resolver)
    found = _callhome_discover(pair)
    assert [
        (p["source"], p["transport"], p["host"], p["port"], p["server_name"], p["ttl"]) for p in found["providers"]
    ] == [
        ("dns", "dtls", "127.0.0.1", port, DOMAIN, 60.0),
        ("dns", "tls", "127.0.0.1", port, DOMAIN, 60.0),
    ]
    table = invoke("callhome", "discover", "-c", str(pair.cpe_toml))
    assert "dns" in table.output and DOMAIN in table.output and "DOTS-CALL-HOME" in table.output
    pair.provider()
    pair.cpe()
    home = pair.wait_connected()
    assert home["connected"]
    pair.wait_log("cpe.log", "found by RFC 8973 dns")


def test_a_spoofed_answer_whose_name_the_provider_certificate_lacks_is_refused_rfc8973_8_2(
    lab: DiscoveryLab, pair: CallHomePair
) -> None:
    spoofed = "spoofed.test"  # the real provider's address and port, under a name its certificate does not carry
    resolver = lab.serve_dns(call_home_records(spoofed, _provider_port(pair)))
    _discovering_cpe(pair, discovery_domain=spoofed, discovery_resolver=resolver)
    assert {p["server_name"] for p in _callhome_discover(pair)["providers"]} == {spoofed}
    pair.provider()
    pair.cpe()
    # DTLS refused, saying where the expected name came from (not "client.toml": this is the CPE).
    pair.wait_log("cpe.log", f"names provider, {DOMAIN}, not '{spoofed}' (RFC 8973 DNS S-NAPTR for {spoofed})", 40)
    pair.wait_log("cpe.log", f"certificate is not valid for '{spoofed}'", timeout=40)  # then TLS, refused too
    assert "session up" not in pair.log("cpe.log"), pair.log("cpe.log")
    assert not any(peer["connected"] for peer in pair.peers())


def test_a_dhcpv4_name_read_by_udhcpc_leads_the_cpe_to_its_call_home_dots_client_rfc8973_5_2(
    tmp_path: Path, lab: DiscoveryLab, pair: CallHomePair
) -> None:
    # Option 147 alone: the name is passed to S-NAPTR (§5) and is the reference identifier (§8.1).
    resolver = lab.serve_dns(call_home_records(DOMAIN, _provider_port(pair)))
    lab.serve_dhcp([f"147,{':'.join(f'{byte:02x}' for byte in encode_name(DOMAIN))}"])
    options = tmp_path / "dhcp.env"
    answer = lab.run_dhcp_client(options)
    assert options.exists(), answer.stdout + answer.stderr
    _discovering_cpe(pair, discovery_dhcp_file=str(options), discovery_resolver=resolver)  # no domain: DHCP only
    found = _callhome_discover(pair)
    assert {(p["source"], p["server_name"]) for p in found["providers"]} == {("dhcp", DOMAIN)}
    pair.provider()
    pair.cpe()
    pair.wait_connected()
    pair.wait_log("cpe.log", "found by RFC 8973 dhcp")


@pytest.fixture
def stack(tmp_path: Path, lab: DiscoveryLab) -> Iterator[ProcessStack]:
    with ProcessStack(tmp_path / "stack", [], transport="auto", server_names=[DATA_DOMAIN]) as built:
        built.start_server()
        yield built


def test_opendots_data_finds_the_restconf_server_through_dots_data_tcp_s_naptr_srv_and_host_meta_rfc8973_6(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:
    resolver = lab.serve_dns(data_records(DATA_DOMAIN, stack.server_config.data_port))
    discovering(stack, discovery_domain=DATA_DOMAIN, discovery_resolver=resolver)
    found = json.loads(stack.cli("client", "discover", "--json").stdout)
    assert [(s["source"], s["channel"], s["port"]) for s in found["servers"]] == [
        ("dns", "data", stack.server_config.data_port)
    ]
    registered = stack.cli("data", "register", "--json")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert json.loads(registered.stdout)["status"] == 201
    capabilities = stack.cli("data", "capabilities", "--json")  # a GET after the first host-meta lookup
    assert capabilities.returncode == 0, capabilities.stdout + capabilities.stderr


def test_opendots_data_refuses_a_spoofed_data_channel_server_whose_certificate_lacks_the_name_rfc8973_8_2(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:
    spoofed = "spoofed.test"
    resolver = lab.serve_dns(data_records(spoofed, stack.server_config.data_port))
    discovering(stack, discovery_domain=spoofed, discovery_resolver=resolver)
    refused = stack.cli("data", "register")
    assert refused.returncode == 69, refused.stdout + refused.stderr  # EX_UNAVAILABLE
    assert "certificate is refused for 'spoofed.test'" in refused.stderr
    discovering(
        stack,
        discovery_domain=DATA_DOMAIN,
        discovery_resolver=lab.restart_dns(data_records(DATA_DOMAIN, stack.server_config.data_port)),
    )
    assert stack.cli("data", "register").returncode == 0


def test_a_call_home_client_that_cannot_be_reached_makes_the_cpe_discover_again_rfc8973_4(
    lab: DiscoveryLab, pair: CallHomePair
) -> None:
    from opendots.lab.processes import free_udp_tcp_port

    resolver = lab.serve_dns(call_home_records(DOMAIN, free_udp_tcp_port()), ttl=3600)  # only a failure refreshes
    _discovering_cpe(pair, discovery_domain=DOMAIN, discovery_resolver=resolver)
    pair.provider()
    pair.cpe()
    pair.wait_log("cpe.log", "call home coaps+tcp://127.0.0.1:", timeout=30)  # DTLS then TLS failed
    # The operator moves the SRV records to the live port; the CPE, failing, looks them up again.
    lab.restart_dns(call_home_records(DOMAIN, _provider_port(pair)), ttl=3600)
    pair.wait_connected(timeout=60)
    pair.wait_log("cpe.log", "found by RFC 8973 dns")


def test_opendots_data_falls_back_from_a_dhcp_address_that_does_not_answer_to_the_dns_one_rfc8973_4(
    tmp_path: Path, lab: DiscoveryLab, stack: ProcessStack
) -> None:
    resolver = lab.serve_dns(data_records(DATA_DOMAIN, stack.server_config.data_port))
    options = tmp_path / "dhcp.env"  # what the udhcpc hook writes; an address where no data channel listens
    address = bytes(int(part) for part in lab.dns_address.split("."))
    options.write_text(f"opt147={encode_name(DATA_DOMAIN).hex()}\nopt148={address.hex()}\nlease=3600\n")
    discovering(stack, discovery_domain=DATA_DOMAIN, discovery_resolver=resolver, discovery_dhcp_file=options)
    found = json.loads(stack.cli("client", "discover", "--json").stdout)
    data = [(s["source"], s["address"]) for s in found["servers"] if s["channel"] == "data"]
    assert data == [("dhcp", lab.dns_address), ("dns", "127.0.0.1")]  # DHCP first (§4), at data_port (§5)
    registered = stack.cli("data", "register", "--json")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert json.loads(registered.stdout)["status"] == 201


def test_a_server_domain_gateway_relays_the_data_channel_to_the_upstream_server_rfc8973_finds_rfc8783_3_3(
    tmp_path: Path, lab: DiscoveryLab
) -> None:
    from opendots.config import TlsFiles
    from opendots.data.client import DataChannelClient
    from tests.helpers.gateway import in_front_of

    with ProcessStack(tmp_path / "chain", [], server_names=[DATA_DOMAIN]) as stack:
        port, data_port = stack.port, stack.server_config.data_port
        resolver = lab.serve_dns(
            list(dict.fromkeys([*signal_records(DATA_DOMAIN, port), *data_records(DATA_DOMAIN, data_port)]))
        )
        gateway = in_front_of(stack, "server-domain", "sgw", only_gateway=True, extra={"data_channel": True})
        gateway.upstream_keys = {
            "discovery": "auto",
            "server_configured": False,  # no server in the upstream file: both legs find it by RFC 8973
            "signal_port": 9,
            "data_port": 9,  # wrong ports: the SRV records' must be used
            "discovery_domain": DATA_DOMAIN,
            "discovery_resolver": resolver,
        }
        stack.start_server()
        gateway.start()
        try:
            files = TlsFiles(stack.directory / "ca.crt", stack.directory / "client.crt", stack.directory / "client.key")

            async def register() -> int:
                base = f"https://127.0.0.1:{gateway.data_port}"
                async with DataChannelClient(base, files, server_hostname="localhost") as client:
                    return (await client.register()).status

            assert asyncio.run(register()) == 201
            status = gateway.status()
            assert status is not None and status["data-channel"]["relayed"] >= 1
        finally:
            gateway.stop()


def test_at_the_ttl_expiry_the_cpe_discovers_again_keeps_its_client_then_moves_to_a_new_srv_target_rfc8973_4(
    lab: DiscoveryLab, pair: CallHomePair
) -> None:
    # The provider listens on two addresses: the SRV target moving from one to the other is a new client.
    from opendots.callhome.provider_config import ProviderConfig

    provider = ProviderConfig.load(pair.provider_toml)
    provider.listen = ["127.0.0.1", lab.root_address]
    provider.save(pair.provider_toml)
    port = provider.port
    resolver = lab.serve_dns(call_home_records(DOMAIN, port), ttl=5)  # 5 s: the cache's floor (MIN_TTL)
    _discovering_cpe(pair, discovery_domain=DOMAIN, discovery_resolver=resolver)
    pair.provider()
    pair.cpe()
    pair.wait_connected()
    pair.wait_log("cpe.log", f"://127.0.0.1:{port}: session up")  # coaps:// or coaps+tcp://, whichever answered
    # The TTL expires with the records unchanged: the CPE looks them up again and keeps its session.
    queries = lab.directory / "dnsmasq-dns.log"
    wait_until(lambda: queries.read_text().count(f"query[NAPTR] {DOMAIN} ") >= 2, 30, "a second S-NAPTR lookup")
    assert pair.log("cpe.log").count("session up") == 1, pair.log("cpe.log")
    lab.restart_dns(call_home_records(DOMAIN, port, target=lab.root_address, host="provider2"), ttl=5)
    # Either transport: a lookup that straddles the restart sees a mix of old and new records (DTLS or TLS first).
    pair.wait_log("cpe.log", f"://{lab.root_address}:{port}: session up", timeout=60)
    log = pair.log("cpe.log")
    assert "moving to coaps://" in log and log.count("session up") == 2, log
    assert pair.wait_connected()["connected"]


def test_a_dhcpv6_name_read_by_dhclient_leads_the_cpe_to_its_call_home_dots_client_over_ipv6_rfc8973_5_1(
    tmp_path: Path, lab: DiscoveryLab, pair: CallHomePair
) -> None:
    # Option 141 alone: the name goes to S-NAPTR (§5), whose AAAA record leads to the provider's IPv6 address.
    from opendots.callhome.provider_config import ProviderConfig

    provider = ProviderConfig.load(pair.provider_toml)
    provider.listen = [lab.root_v6]
    provider.save(pair.provider_toml)
    resolver = lab.serve_dns(call_home_records(DOMAIN, provider.port, target=lab.root_v6))
    lab.serve_dhcp6([f"option6:141,{':'.join(f'{byte:02x}' for byte in encode_name(DOMAIN))}"])
    options = tmp_path / "dhcp6.env"
    output = lab.run_dhcp6_client(options)
    assert options.exists(), output
    _discovering_cpe(pair, discovery_dhcp_file=str(options), discovery_resolver=resolver)  # no domain: DHCP only
    found = _callhome_discover(pair)
    assert {(p["source"], p["server_name"], p["host"]) for p in found["providers"]} == {("dhcp", DOMAIN, lab.root_v6)}
    assert any(note.startswith(f"dhcp: DHCPv6 name {DOMAIN}") for note in found["notes"]), found["notes"]
    pair.provider()
    pair.cpe()
    pair.wait_connected()
    pair.wait_log("cpe.log", f"://[{lab.root_v6}]:{provider.port}: session up")  # over DTLS, or TLS after it
    pair.wait_log("cpe.log", "found by RFC 8973 dhcp")
