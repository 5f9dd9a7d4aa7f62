"""libcoap's coap-client (4.3.1) as the DOTS client of RFC 9244 server-originated telemetry, over DTLS and TLS: it
enables it with Figure 6, asks for it on a target with Figure 39 (2.04), observes its /tm, and hears the dropped rate
the server's counter reads give for its mitigation on that target (§8.3). Real binaries, real sockets, real SQLite;
the counters come from the in-process mitigator the tests set."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_telemetry
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port
from tests.helpers import FIXTURES
from tests.helpers.libcoap import CoapClient
from tests.helpers.measured_mitigator import MeasuredMitigator

pytestmark = pytest.mark.interop
TM = "ietf-dots-telemetry:telemetry"
SCOPE = "ietf-dots-signal-channel:mitigation-scope"


def figure(name: str) -> dict[str, Any]:
    (path,) = (FIXTURES / "rfc9244").glob(f"{name}-*.json")
    return json.loads(path.read_text())


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_coap_client_hears_server_originated_telemetry_on_its_tm_request_rfc9244_8_3(
    pki_dir: Path, tmp_path: Path, scheme: str
):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.signal = {**config.signal, "telemetry_server_originated": True, "counters_interval": 3600}
    mitigator, clock = MeasuredMitigator(), Clock()
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], mitigator=mitigator, clock=clock)
    try:
        addresses = running.endpoint.dtls_addresses if scheme == "coaps" else running.endpoint.tls_addresses
        host, port = addresses[0][:2]
        cuid = next(c.cuid for c in config.clients if c.name == "client")
        base = f"{scheme}://{host}:{port}/.well-known/dots"
        client = CoapClient(pki_dir, tmp_path)

        _, printed = await client.run("-m", "put", f"{base}/tm-setup/cuid={cuid}/tsid=1", payload=figure("fig06"))
        assert running.resource.requests[("PUT", "tm-setup", "2.01")] == 1, printed
        body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8::1/128"], "lifetime": 3600}]}}
        await client.run("-m", "put", f"{base}/mitigate/cuid={cuid}/mid=1", payload=body)
        await client.run("-m", "put", f"{base}/tm/cuid={cuid}/tmid=567", payload=figure("fig39"))
        assert running.resource.requests[("PUT", "tm", "2.04")] == 1

        observer, notifications = await client.start("-m", "get", "-s", "6", "-B", "12", f"{base}/tm/cuid={cuid}")
        for _ in range(100):
            if running.resource.observer_count("client") == 1:
                break
            await asyncio.sleep(0.05)
        assert running.resource.observer_count("client") == 1
        key = f"{cuid}/1"
        for packets in (0, 90_000):  # then 90,000 packets of 100 bytes in the minute of the default sample
            mitigator.dropped[key] = (packets, packets * 100)
            await running.service.refresh_counters()
            await running.service.idle()
            clock.now += 60
        _, stderr = await asyncio.wait_for(observer.communicate(), 30)
        assert observer.returncode == 0, stderr.decode(errors="replace")
        data, seen = notifications.read_bytes(), []
        stream = io.BytesIO(data)
        while stream.tell() < len(data):
            start = stream.tell()
            cbor2.CBORDecoder(stream).decode()
            seen.append(decode_telemetry(data[start : stream.tell()]))
        assert seen[0] == {
            TM: {"pre-or-ongoing-mitigation": [{"tmid": 567, **figure("fig39")[TM]["pre-or-ongoing-mitigation"][0]}]}
        }
        (entry,) = seen[-1][TM]["pre-or-ongoing-mitigation"]
        rates = {item["unit"]: item for item in entry["total-attack-traffic"]}
        assert rates["packet-ps"]["current-g"] == "1500"  # 90,000 packets over 60 s
        assert rates["bit-ps"]["current-g"] == "1200000"
    finally:
        await running.stop()
