"""Server-originated telemetry from real nftables counters (RFC 9244 §9.2): a mitigation enforced by the nftables
mitigator on the lab's router drops a bounded flood; the server reads the named counter twice, and the observer's
notification carries the dropped rate those counter values give (skips without root/netns/nft)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.lab.flood import flood
from opendots.lab.netns import Lab
from opendots.mitigate.nftables_ruleset import counter_name
from opendots.model import decode_signal, encode_signal, encode_telemetry
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.nft import counter_values
from tests.helpers.server_telemetry import SERVER_ORIGINATED_SETUP, Clock
from tests.helpers.signal_server import BASE, cuid_of, request

pytestmark = pytest.mark.lab

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
TAT = "ietf-dots-telemetry:total-attack-traffic"
PACKETS = 1500
SETUP = SERVER_ORIGINATED_SETUP


async def test_the_observed_dropped_rate_is_the_nftables_counters_over_the_read_interval(
    lab: Lab, table_name: str, pki_dir: Path, tmp_path: Path
):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.signal = {**config.signal, "telemetry_server_originated": True, "counters_interval": 3600}
    config.mitigators = [
        {"type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name}
    ]
    clock = Clock()
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], clock=clock)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri, cuid = f"coaps://{host}:{port}{BASE}", cuid_of(config, "client")
    try:
        setup = encode_telemetry(SETUP)
        assert (await request(client, aiocoap.PUT, f"{uri}/tm-setup/cuid={cuid}/tsid=1", setup)).code.is_successful()
        victim = lab.victim_v4[0]
        body = {SCOPE: {"scope": [{"target-prefix": [f"{victim}/32"], "lifetime": 3600}]}}
        put = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=1", encode_signal(body))
        assert put.code == aiocoap.CREATED
        await running.service.idle()
        observe = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/mitigate/cuid={cuid}/mid=1", observe=0))
        await asyncio.wait_for(observe.response, 10)
        notifications = observe.observation.__aiter__()

        key = f"{cuid}/1"
        await running.service.refresh_counters()  # the baseline reading
        before = counter_values(lab, table_name, counter_name(key))
        sent = await asyncio.to_thread(
            flood, lab.attacker, str(victim), 5005, count=PACKETS, duration=10.0, pps=15_000, protocol=17
        )
        assert sent.sent == PACKETS
        clock.now += 10
        await running.service.refresh_counters()
        after = counter_values(lab, table_name, counter_name(key))
        packets, bytes_ = after[0] - before[0], after[1] - before[1]
        assert packets == PACKETS  # every packet of the flood was dropped and counted

        entry: dict = {}
        while TAT not in entry:
            entry = decode_signal((await asyncio.wait_for(notifications.__anext__(), 10)).payload)[SCOPE]["scope"][0]
        rates = {item["unit"]: item for item in entry[TAT]}
        assert rates["packet-ps"]["current-g"] == str(round(packets / 10)) == "150"
        assert rates["bit-ps"]["current-g"] == str(round(bytes_ * 8 / 10))
        assert rates["byte-ps"]["peak-g"] == str(round(bytes_ / 10))
        assert entry["pkts-dropped"] == str(after[0])
        observe.observation.cancel()
    finally:
        await client.shutdown()
        await running.stop()
