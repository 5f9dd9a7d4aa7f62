"""Server-originated telemetry over real DTLS (RFC 9244 §8.3, §9.2): a client that set server-originated-telemetry
observes its mitigation and its /tm request; the server polls the mitigator's counters and the notifications carry
the dropped rate those counters give over the time between the polls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal, decode_telemetry, encode_telemetry
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.measured_mitigator import MeasuredMitigator
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import BASE, cuid_of, request

TAT = "ietf-dots-telemetry:total-attack-traffic"
TM = "ietf-dots-telemetry:telemetry"
SETUP = {
    "ietf-dots-telemetry:telemetry-setup": {
        "telemetry": [
            {
                "current-config": {
                    "measurement-sample": "second",
                    "unit-config": [{"unit": "byte-ps", "unit-status": False}],
                    "server-originated-telemetry": True,
                }
            }
        ]
    }
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def measured(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.signal = {**config.signal, "telemetry_server_originated": True, "counters_interval": 3600}
    mitigator, clock = MeasuredMitigator(), Clock()
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], mitigator=mitigator, clock=clock)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    host, port = running.endpoint.dtls_addresses[0][:2]
    try:
        yield running, mitigator, clock, client, f"coaps://{host}:{port}{BASE}", cuid_of(config, "client")
    finally:
        await client.shutdown()
        await running.stop()


async def poll(running, mitigator: MeasuredMitigator, clock: Clock, at: float, key: str, packets: int) -> None:
    """The mitigator dropped PACKETS (of 100 bytes) by AT; the server's counter poll reads them."""
    clock.now = at
    mitigator.dropped[key] = (packets, packets * 100)
    await running.service.refresh_counters()
    await running.service.idle()


async def test_an_observer_gets_the_dropped_rate_the_counters_give_rfc9244_9_2_8_3(measured):
    running, mitigator, clock, client, uri, cuid = measured
    payload = encode_telemetry(SETUP)
    setup = await request(client, aiocoap.PUT, f"{uri}/tm-setup/cuid={cuid}/tsid=1", payload, content_format=271)
    assert setup.code == aiocoap.CREATED, setup.payload
    body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::1/128"], "lifetime": 3600}]}}
    assert (await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=7", body)).code == aiocoap.CREATED
    wanted = encode_telemetry({TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": ["2001:db8::/32"]}}]}})
    put_tm = await request(client, aiocoap.PUT, f"{uri}/tm/cuid={cuid}/tmid=567", wanted, content_format=271)
    assert put_tm.code == aiocoap.CHANGED
    await running.service.idle()

    mitigation = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/mitigate/cuid={cuid}/mid=7", observe=0))
    await asyncio.wait_for(mitigation.response, 10)
    status = mitigation.observation.__aiter__()
    telemetry = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/tm/cuid={cuid}", observe=0))
    first = decode_telemetry((await asyncio.wait_for(telemetry.response, 10)).payload)
    assert first == {TM: {"pre-or-ongoing-mitigation": [{"tmid": 567, "target": {"target-prefix": ["2001:db8::/32"]}}]}}
    tm_notes = telemetry.observation.__aiter__()

    key = f"{cuid}/7"
    start = clock.now
    await poll(running, mitigator, clock, start, key, 0)
    await poll(running, mitigator, clock, start + 10, key, 50_000)  # 5,000 pps, 4 Mbit/s
    await poll(running, mitigator, clock, start + 20, key, 70_000)  # 2,000 pps, 1.6 Mbit/s

    latest = None
    while latest is None or latest.get("pkts-dropped") != "70000" or TAT not in latest:
        note = await asyncio.wait_for(status.__anext__(), 10)
        assert note.mtype == aiocoap.NON
        (latest,) = decode_signal(note.payload)[SCOPE]["scope"]
    packets, bits = latest[TAT]
    assert (packets["unit"], packets["peak-g"], packets["current-g"], packets["low-percentile-g"]) == (
        "packet-ps",
        "5000",
        "2000",
        "2000",
    )
    assert (bits["unit"], bits["peak-g"], bits["current-g"]) == ("bit-ps", "4000000", "1600000")

    entry: dict = {}
    while entry.get("total-attack-traffic", [{}])[0].get("current-g") != "2000":
        note = await asyncio.wait_for(tm_notes.__anext__(), 10)
        (entry,) = decode_telemetry(note.payload)[TM]["pre-or-ongoing-mitigation"]
    assert entry["total-attack-traffic"][0]["peak-g"] == "5000"
    mitigation.observation.cancel()
    telemetry.observation.cancel()
