"""The console's views in a real headless Chromium: each client's session configuration (RFC 9132 §4.5), a
mitigation's drop rates and its chart over time, the data channel's ACLs and aliases (RFC 8783, RFC 9133), and
the telemetry a client set up and reported (RFC 9244 §7, §8.2: baselines, attack details, top talkers)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiocoap
import aiohttp

from opendots.domain import Counters
from opendots.model import encode_telemetry
from opendots.signal.client.core.telemetry_bodies import (
    AttackDetail,
    baseline,
    baseline_entry,
    parse_talker,
    report_entry,
    report_put_request,
    setup_put_request,
)
from tests.helpers.console import open_live, open_with_mitigation, severe_console_messages, wait_for
from tests.helpers.data_harness import ROOT, Peer
from tests.integration.console.conftest import TOKEN


def _texts(selector: str) -> str:
    return f"return [...document.querySelectorAll('{selector}')].map(tr => [...tr.children].map(td => td.textContent))"


async def _coap_put(signal_client, request) -> aiocoap.Message:
    message = aiocoap.Message(
        code=aiocoap.PUT,
        uri=f"coaps://127.0.0.1:{signal_client.port}/" + "/".join(request.path),
        payload=encode_telemetry(request.body),
        content_format=271,
    )
    return await asyncio.wait_for(signal_client.context.request(message).response, 15)


async def test_a_mitigations_measured_drops_show_as_rates_and_a_chart(
    console_server, signal_client, browser, tmp_path: Path
):
    running, _ = console_server
    key = await open_with_mitigation(browser, running, TOKEN, signal_client, 4, "203.0.113.64/28")
    # What a mitigator's counter poll reports (nftables' counters in production: SignalService.refresh_counters).
    for packets in (1_000, 4_000, 10_000):
        running.signal.service.report_counters(key, Counters(pkts_dropped=packets, bytes_dropped=packets * 100))
        await asyncio.sleep(0.6)  # a snapshot between measurements (at most four a second)
    row = f"const tr = document.querySelector('#mitigations tr[data-key=\"{key}\"]');"
    rate = await wait_for(
        browser, row + "return tr && tr.children[7].textContent.includes('pkt/s') && tr.children[7].textContent", 5
    )
    # An interval between two measurements: thousands of packets of 100 bytes in about 0.6 s (never the zero a
    # snapshot between two polls would give).
    assert str(rate).endswith("kbit/s") or str(rate).endswith("Mbit/s"), rate
    assert " kpkt/s, " in str(rate), rate
    assert await wait_for(browser, row + "return tr.children[5].textContent === '10000'", 5)
    points = await wait_for(
        browser, row + "const l = tr.children[9].querySelector('svg polyline'); return l && l.getAttribute('points')", 5
    )
    assert len(str(points).split()) >= 2  # one point per interval between samples
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "rates.png"))
    assert severe_console_messages(browser) == []


async def test_clients_session_configuration_acls_aliases_and_telemetry_are_shown_per_client(
    console_server, signal_client, browser, tmp_path: Path
):
    running, directory = console_server
    # The data channel (RFC 8783) over real mutual TLS: an alias and an ACL for this client.
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    context.load_cert_chain(directory / "client.crt", directory / "client.key")
    data_port = running.config.data_port
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        peer = Peer(f"https://localhost:{data_port}", session, signal_client.cuid)
        reply = await peer.request("POST", ROOT, {"ietf-dots-data-channel:dots-client": [{"cuid": peer.cuid}]})
        assert reply.status == 201, reply.text
        mine = f"{ROOT}/dots-client={peer.cuid}"
        alias = {"name": "web", "target-prefix": ["203.0.113.0/28"], "target-port-range": [{"lower-port": 443}]}
        reply = await peer.request("POST", mine, {"ietf-dots-data-channel:aliases": {"alias": [alias]}})
        assert reply.status == 201, reply.text
        ace = {
            "name": "ntp",
            "matches": {"ipv4": {"destination-ipv4-network": "203.0.113.0/28", "protocol": 17}},
            "actions": {"forwarding": "drop"},
        }
        acl = {
            "name": "no-ntp",
            "type": "ipv4-acl-type",
            "activation-type": "activate-when-mitigating",
            "aces": {"ace": [ace]},
        }
        reply = await peer.request("POST", mine, {"ietf-dots-data-channel:acls": {"acl": [acl]}})
        assert reply.status == 201, reply.text
    # Telemetry (RFC 9244) over the signal channel: a baseline, then an attack with its top talkers.
    setup = setup_put_request(
        signal_client.cuid, 1, baseline_entry([baseline(1, ["203.0.113.0/28"], normal=["300:Mbps"])])
    )
    assert (await _coap_put(signal_client, setup)).code == aiocoap.CREATED
    talkers = (parse_talker("198.51.100.7:53"),)
    attack = AttackDetail(attack_id=3, description="DNS amplification", severity="high", talkers=talkers)
    entry = report_entry(["203.0.113.0/28"], total_attack_traffic=["25000:pps"], attack=attack)
    reported = await _coap_put(signal_client, report_put_request(signal_client.cuid, 1, [entry]))
    assert reported.code.is_successful(), reported

    await open_live(browser, running, TOKEN)
    clients = await wait_for(browser, _texts("#clients tr"), 5)
    config = clients[0][8]  # type: ignore[index]
    assert "idle: heartbeat" in config and "mitigating: heartbeat" in config and "server defaults" in config
    data_channel = await wait_for(browser, _texts("#data-channel tr") + ".filter(r => r.length)", 5)
    assert ["client", "alias", "web", "-", "203.0.113.0/28 port 443"] in data_channel  # type: ignore[operator]
    assert [
        "client",
        "ACL",
        "no-ntp",
        "activate-when-mitigating",
        "ntp: des 203.0.113.0/28 protocol 17 drop",
    ] in data_channel  # type: ignore[operator]
    setups = await wait_for(browser, _texts("#telemetry-setups tr"), 5)
    assert any(r[2] == "baseline" and "203.0.113.0/28" in r[3] and "300" in r[3] for r in setups)  # type: ignore[union-attr]
    reports = await wait_for(browser, _texts("#telemetry-reports tr"), 5)
    (report,) = reports  # type: ignore[misc]
    assert report[0:3] == ["client", "1", "203.0.113.0/28"]
    assert "25000" in report[4] and "DNS amplification" in report[5] and report[6] == "high"
    assert report[7] == "198.51.100.7/32:53"
    await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "details.png"))
    assert severe_console_messages(browser) == []
