"""Server-originated telemetry back through `opendots gateway` (a real gateway process between an aiocoap client and
a server on loopback, RFC 9244 §8.3, §9.2): the counters the server reads for the gateway's upstream mitigation
reach the client's observations of its mitigation and of its /tm request, under the client's own mid and tmid."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap

from opendots.model import decode_signal, decode_telemetry, encode_telemetry
from tests.helpers.gateway_chain import chain_in_loop
from tests.helpers.measured_mitigator import MeasuredMitigator
from tests.helpers.server_telemetry import SERVER_ORIGINATED_SETUP, Clock
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import request

TAT = "ietf-dots-telemetry:total-attack-traffic"
TM = "ietf-dots-telemetry:telemetry"


async def test_the_servers_measured_attack_traffic_reaches_the_client_through_a_client_domain_gateway_rfc9244_s9_2(
    pki_dir: Path, tmp_path: Path
) -> None:
    signal = {"telemetry_server_originated": True, "counters_interval": 3600}
    mitigator, clock = MeasuredMitigator(), Clock()
    async with chain_in_loop(pki_dir, tmp_path, signal=signal, mitigator=mitigator, clock=clock) as chain:
        client, uri, cuid, gateway, running = chain.client, chain.uri, chain.cuid, chain.gateway, chain.server
        setup = encode_telemetry(SERVER_ORIGINATED_SETUP)
        answer = await request(client, aiocoap.PUT, f"{uri}/tm-setup/cuid={cuid}/tsid=3", setup, content_format=271)
        assert answer.code == aiocoap.CREATED, answer.payload
        body = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.9/32"], "lifetime": 3600}]}}
        assert (await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=7", body)).code == aiocoap.CREATED
        wanted = encode_telemetry(
            {TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": ["203.0.113.0/24"]}}]}}
        )
        put_tm = await request(client, aiocoap.PUT, f"{uri}/tm/cuid={cuid}/tmid=567", wanted, content_format=271)
        assert put_tm.code == aiocoap.CHANGED, put_tm.payload
        status = await asyncio.to_thread(gateway.status)
        assert status is not None
        (link,) = status["links"]
        upstream_mid = int(link["upstream"].rsplit("=", 1)[1])

        mitigation = client.request(
            aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/mitigate/cuid={cuid}/mid=7", observe=0)
        )
        await asyncio.wait_for(mitigation.response, 10)
        notes = mitigation.observation.__aiter__()
        telemetry = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/tm/cuid={cuid}", observe=0))
        first = decode_telemetry((await asyncio.wait_for(telemetry.response, 10)).payload)
        assert [entry["tmid"] for entry in first[TM]["pre-or-ongoing-mitigation"]] == [567]
        tm_notes = telemetry.observation.__aiter__()

        key = f"{gateway.cuid}/{upstream_mid}"  # upstream, the mitigation is the gateway's
        for step, packets in enumerate((0, 50_000, 70_000)):  # 5,000 then 2,000 packets/s over 10 s
            clock.now = 1_700_000_000.0 + 10 * step
            mitigator.dropped[key] = (packets, packets * 100)
            await running.service.refresh_counters()
            await running.service.idle()

        latest: dict = {}
        while latest.get(TAT, [{}])[0].get("current-g") != "2000":
            note = await asyncio.wait_for(notes.__anext__(), 10)
            (latest,) = decode_signal(note.payload)[SCOPE]["scope"]
        assert latest["mid"] == 7 and latest[TAT][0]["peak-g"] == "5000"
        entry: dict = {}
        while entry.get("total-attack-traffic", [{}])[0].get("current-g") != "2000":
            note = await asyncio.wait_for(tm_notes.__anext__(), 10)
            (entry,) = decode_telemetry(note.payload)[TM]["pre-or-ongoing-mitigation"]
        assert entry["tmid"] == 567 and entry["total-attack-traffic"][0]["peak-g"] == "5000"
        mitigation.observation.cancel()
        telemetry.observation.cancel()
