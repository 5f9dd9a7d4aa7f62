"""RFC 8973 discovery end to end: dnsmasq serves NAPTR/SRV/A records (and, as a DHCPv4 server, options 147/148 that
busybox udhcpc reads) from namespaces the test creates; `opendots client discover` and a real agent use them to
reach a real `opendots server`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendots.discovery.dhcp import encode_name
from opendots.lab.processes import ProcessStack, StackError, free_udp_tcp_port, wait_for
from tests.e2e.discovery_lab import DiscoveryLab, discovery_lab
from tests.helpers.discovery import discovering, signal_records

DOMAIN = "example.test"  # in the server certificate: the reference identifier of S-NAPTR results (§8.2)
SD_DOMAIN = "sd.test"  # in the certificate too: the domain browsed with DNS-SD


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[DiscoveryLab]:
    yield from discovery_lab(tmp_path)


@pytest.fixture
def stack(tmp_path: Path, lab: DiscoveryLab) -> Iterator[ProcessStack]:
    with ProcessStack(tmp_path / "stack", [], transport="auto", server_names=[DOMAIN, SD_DOMAIN]) as built:
        built.server_config.listen = ["127.0.0.1", lab.root_address, lab.root_v6]
        built.server_config.save(built.server_config_path)
        built.start_server()
        yield built


def _discover(stack: ProcessStack) -> dict[str, Any]:
    result = stack.cli("client", "discover", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _session(stack: ProcessStack) -> dict[str, Any]:
    with stack.control() as control:
        return control.session()


def _where(session: dict[str, Any]) -> str:
    """address:port of the session's server, whichever transport won (coaps:// or coaps+tcp://)."""
    return (session["server"] or "").partition("://")[2]


def test_the_agent_reaches_the_server_through_s_naptr_srv_and_a_records_from_dnsmasq_rfc8973_6(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:
    resolver = lab.serve_dns(signal_records(DOMAIN, stack.port))
    discovering(stack, discovery_domain=DOMAIN, discovery_resolver=resolver)
    found = _discover(stack)
    dns = [(s["transport"], s["address"], s["port"], s["peer_name"], s["ttl"]) for s in found["servers"]]
    assert dns == [
        ("dtls", "127.0.0.1", stack.port, DOMAIN, 60.0),
        ("tls", "127.0.0.1", stack.port, DOMAIN, 60.0),
    ]
    assert {s["source"] for s in found["servers"]} == {"dns"}
    table = stack.cli("client", "discover")
    assert "dns" in table.stdout and f"{stack.port}" in table.stdout and DOMAIN in table.stdout
    oneshot = stack.cli("client", "status", "--json", oneshot=True)  # a one-shot verb discovers too
    assert oneshot.returncode == 0, oneshot.stdout + oneshot.stderr
    stack.start_agent()
    session = _session(stack)
    assert session["server"] == f"coaps://127.0.0.1:{stack.port}"
    assert session["discovered-from"] == "dns"
    assert f"connected to {DOMAIN}" in session["activity"]


def test_a_spoofed_dns_answer_whose_name_the_server_certificate_lacks_is_refused_rfc8973_8_2(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:
    spoofed = "spoofed.test"  # the same server, but its certificate does not name this domain
    resolver = lab.serve_dns(signal_records(spoofed, stack.port))
    discovering(stack, discovery_domain=spoofed, discovery_resolver=resolver)
    assert {s["peer_name"] for s in _discover(stack)["servers"]} == {spoofed}
    with pytest.raises(StackError, match="the agent's session"):
        stack.start_agent(timeout=8)
    session = _session(stack)
    assert not session["connected"]
    assert spoofed in (session["last-error"] or "")
    assert f"not '{spoofed}' (RFC 8973 DNS S-NAPTR for {spoofed})" in stack.agent_log.read_text()


def test_dhcpv4_options_147_148_read_by_udhcpc_win_over_dns_rfc8973_4_5_2(
    tmp_path: Path, lab: DiscoveryLab, stack: ProcessStack
) -> None:
    # DNS points at 127.0.0.1, DHCP at the server's other address: the session shows which source won.
    resolver = lab.serve_dns(signal_records(DOMAIN, stack.port))
    name = ":".join(f"{byte:02x}" for byte in encode_name(DOMAIN))
    lab.serve_dhcp([f"147,{name}", f"148,{lab.root_address}"])
    options = tmp_path / "dhcp.env"
    answer = lab.run_dhcp_client(options)
    assert options.exists(), answer.stdout + answer.stderr
    assert "opt147=" in options.read_text() and "lease=3600" in options.read_text()
    discovering(
        stack,
        discovery_domain=DOMAIN,
        discovery_resolver=resolver,
        discovery_dhcp_file=options,
        signal_port=stack.port,  # DHCP gives addresses only: the configured port applies (§5)
    )
    found = _discover(stack)
    signal = [s for s in found["servers"] if s["channel"] == "signal"]  # DHCP's address serves the data channel too
    assert [(s["source"], s["address"]) for s in signal] == [
        ("dhcp", lab.root_address),
        ("dhcp", lab.root_address),
        ("dns", "127.0.0.1"),
        ("dns", "127.0.0.1"),
    ]
    assert found["servers"][0]["ttl"] == 3600.0 and found["servers"][0]["peer_name"] == DOMAIN
    stack.start_agent()
    session = _session(stack)
    assert session["discovered-from"] == "dhcp"
    assert session["server"] == f"coaps://{lab.root_address}:{stack.port}"


def test_an_unreachable_discovered_server_makes_the_agent_discover_again_rfc8973_4(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:

    dead = free_udp_tcp_port()
    resolver = lab.serve_dns(signal_records(DOMAIN, dead), ttl=3600)  # a long TTL: only the failure can refresh it
    discovering(stack, discovery_domain=DOMAIN, discovery_resolver=resolver)
    with pytest.raises(StackError, match="the agent's session"):
        stack.start_agent(timeout=4)
    # The operator moves the SRV records to the live port; the agent, failing, looks them up again.
    lab.restart_dns(signal_records(DOMAIN, stack.port), ttl=3600)
    deadline = time.monotonic() + 30
    wait_for(lambda: _session(stack)["connected"] or time.monotonic() > deadline, 35, "the agent's session")
    session = _session(stack)
    assert session["connected"], stack.agent_log.read_text()[-2000:]
    assert session["server"] == f"coaps://127.0.0.1:{stack.port}"


def test_dns_sd_ptr_and_srv_records_from_dnsmasq_are_used_when_there_is_no_s_naptr_rfc8973_7(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:
    instance = f"a._dots-signal._tcp.{SD_DOMAIN}"  # TCP only: the agent connects over TLS
    resolver = lab.serve_dns(
        [
            f"--ptr-record=_dots-signal._tcp.{SD_DOMAIN},{instance}",
            f"--srv-host={instance},server.{SD_DOMAIN},{stack.port},0,0",
            f"--txt-record={instance}",
            f"--host-record=server.{SD_DOMAIN},127.0.0.1",
        ]
    )
    discovering(stack, discovery_domain=SD_DOMAIN, discovery_resolver=resolver)
    found = _discover(stack)
    assert [(s["source"], s["transport"], s["port"]) for s in found["servers"]] == [("dns-sd", "tls", stack.port)]
    assert any(note.startswith(f"dns: S-NAPTR DOTS at {SD_DOMAIN}: 0") for note in found["notes"])
    stack.start_agent()
    session = _session(stack)
    assert (session["discovered-from"], session["transport"]) == ("dns-sd", "tls")


def test_when_the_dhcp_supplied_server_does_not_answer_the_dns_one_is_used_rfc8973_4(
    tmp_path: Path, lab: DiscoveryLab, stack: ProcessStack
) -> None:
    resolver = lab.serve_dns(signal_records(DOMAIN, stack.port))
    options = tmp_path / "dhcp.env"  # what the udhcpc hook writes; here an address where no DOTS server listens
    address = bytes(int(part) for part in lab.dns_address.split("."))
    options.write_text(f"opt147={encode_name(DOMAIN).hex()}\nopt148={address.hex()}\nlease=3600\n")
    discovering(
        stack, discovery_domain=DOMAIN, discovery_resolver=resolver, discovery_dhcp_file=options, signal_port=stack.port
    )
    assert [s["source"] for s in _discover(stack)["servers"]][:2] == ["dhcp", "dhcp"]
    stack.start_agent()
    session = _session(stack)
    assert session["discovered-from"] == "dns"
    assert session["server"] == f"coaps://127.0.0.1:{stack.port}"


def test_dhcpv6_options_141_142_read_by_dhclient_lead_to_the_server_on_its_own_rfc8973_5_1(
    tmp_path: Path, lab: DiscoveryLab, stack: ProcessStack
) -> None:
    import ipaddress

    name = ":".join(f"{byte:02x}" for byte in encode_name(DOMAIN))
    address = ":".join(f"{byte:02x}" for byte in ipaddress.IPv6Address(lab.root_v6).packed)
    lab.serve_dhcp6([f"option6:141,{name}", f"option6:142,{address}"])
    options = tmp_path / "dhcp6.env"
    output = lab.run_dhcp6_client(options)
    assert options.exists(), output
    discovering(stack, discovery_dhcp_file=options, signal_port=stack.port)  # DHCP only: no domain, no resolver
    found = _discover(stack)
    signal = [s for s in found["servers"] if s["channel"] == "signal"]  # DHCP's address serves the data channel too
    assert [(s["source"], s["address"], s["peer_name"], s["ttl"]) for s in signal] == [
        ("dhcp", lab.root_v6, DOMAIN, 3600.0),
        ("dhcp", lab.root_v6, DOMAIN, 3600.0),
    ]
    stack.start_agent()
    session = _session(stack)
    assert session["discovered-from"] == "dhcp"
    assert session["server"] == f"coaps://[{lab.root_v6}]:{stack.port}"


def test_at_the_ttl_expiry_the_agent_discovers_again_keeps_its_server_then_moves_to_a_new_srv_target_rfc8973_4(
    lab: DiscoveryLab, stack: ProcessStack
) -> None:
    # One server listening on two addresses stands for two: the SRV target moves from one to the other.
    resolver = lab.serve_dns(signal_records(DOMAIN, stack.port), ttl=5)  # 5 s: the cache's floor (MIN_TTL)
    discovering(stack, discovery_domain=DOMAIN, discovery_resolver=resolver)
    stack.start_agent()
    with stack.control() as control:
        mid = control.mitigate({"target-prefix": ["198.51.100.0/24"], "lifetime": 600})["mid"]
    assert _session(stack)["sessions-established"] == 1
    # The TTL expires with the records unchanged: discovery runs again, the session stays.
    wait_for(lambda: _session(stack)["rediscoveries"] >= 1, 30, "a re-discovery at the TTL's expiry")
    session = _session(stack)
    assert (_where(session), session["sessions-established"]) == (f"127.0.0.1:{stack.port}", 1)
    # The operator points the SRV records at another host; after the TTL the agent moves there.
    lab.restart_dns(signal_records(DOMAIN, stack.port, target=lab.root_address, host="server2"), ttl=5)
    # Either transport: a lookup that straddles the restart sees a mix of old and new records (DTLS or TLS first).
    moved = f"{lab.root_address}:{stack.port}"
    wait_for(lambda: _where(_session(stack)) == moved, 60, "the session with the new SRV target")
    session = _session(stack)
    assert session["connected"] and session["discovered-from"] == "dns"
    assert session["sessions-established"] == 2, stack.agent_log.read_text()[-3000:]
    log = stack.agent_log.read_text()
    assert "moving the session" in log
    # RFC 9132 §4.7: the new session carries on the active mitigation (re-created there by the agent).
    assert mid in [entry["mid"] for entry in stack.status_entries()]
