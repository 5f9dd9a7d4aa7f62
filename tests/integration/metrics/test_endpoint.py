"""The Prometheus endpoint of a running server: scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.metrics import SignalCollector, start_metrics_endpoint
from opendots.metrics.endpoint import parse_listen
from opendots.mitigate.base import Counters
from opendots.signal.server.core import Status
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.metrics import scrape
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import BASE, cuid_of, request


@pytest.fixture
async def served(pki_dir: Path, tmp_path: Path):
    """A signal server with its metrics endpoint, a DTLS client of it, and its mitigate URI."""
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    exporter = await start_metrics_endpoint([SignalCollector(running)], f"127.0.0.1:{free_port()}")
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid_of(config, 'client')}"
    try:
        yield running, exporter, client, uri, config
    finally:
        await client.shutdown()
        await exporter.stop()
        await running.stop()


async def test_metrics_follow_requests_mitigations_and_sessions(served):
    running, exporter, client, uri, config = served
    body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::9/128"], "lifetime": 3600}]}}
    assert (await request(client, aiocoap.PUT, f"{uri}/mid=9", body)).code == aiocoap.CREATED
    assert (await request(client, aiocoap.PUT, f"{uri}/mid=10", b"\xff")).code == aiocoap.BAD_REQUEST
    await running.service.idle()
    running.service.report_counters(f"{cuid_of(config, 'client')}/9", Counters(bytes_dropped=700, pkts_dropped=7))
    running.service.report_status(f"{cuid_of(config, 'client')}/9", Status.ATTACK_SUCCESSFULLY_MITIGATED)

    samples = await scrape(exporter.addresses[0])
    assert (
        samples[("opendots_signal_requests_total", (("code", "2.01"), ("method", "PUT"), ("resource", "mitigate")))]
        == 1
    )
    assert (
        samples[("opendots_signal_requests_total", (("code", "4.00"), ("method", "PUT"), ("resource", "mitigate")))]
        == 1
    )
    assert samples[("opendots_mitigations", (("client", "client"), ("status", "attack-successfully-mitigated")))] == 1
    assert samples[("opendots_mitigation_dropped_packets", (("client", "client"),))] == 7
    assert samples[("opendots_mitigation_dropped_bytes", (("client", "client"),))] == 700
    assert samples[("opendots_signal_sessions", (("state", "established"), ("transport", "dtls")))] == 1
    assert samples[("opendots_dtls_events_total", (("event", "accepted"),))] == 1
    assert samples[("opendots_mitigator_calls_total", (("action", "apply"), ("result", "ok")))] == 1
    assert samples[("opendots_signal_sessions_lost_total", ())] == 0
    assert ("process_resident_memory_bytes", ()) in samples


@pytest.mark.parametrize(("text", "parsed"), [("127.0.0.1:9646", ("127.0.0.1", 9646)), ("[::1]:80", ("::1", 80))])
def test_listen_addresses(text: str, parsed: tuple[str, int]):
    assert parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["9646", "localhost:", ":80", "host:port"])
def test_bad_listen_addresses_are_refused(text: str):
    with pytest.raises(ValueError, match="host:port"):
        parse_listen(text)


async def test_a_scrape_never_blocks_the_signal_channel(served):
    """Scrapes run in the server's loop: a burst of them while a client signals must not fail either side."""
    _running, exporter, client, uri, _config = served

    async def signal(mid: int) -> aiocoap.Message:
        body = {SCOPE: {"scope": [{"target-prefix": [f"2001:db8:6401:{mid:x}::/64"], "lifetime": 3600}]}}
        return await request(client, aiocoap.PUT, f"{uri}/mid={mid}", body)

    results = await asyncio.gather(
        *(signal(mid) for mid in range(1, 21)), *(scrape(exporter.addresses[0]) for _ in range(10))
    )
    assert all(result.code == aiocoap.CREATED for result in results[:20])
    final = await scrape(exporter.addresses[0])
    assert final[("opendots_mitigations", (("client", "client"), ("status", "attack-mitigation-in-progress")))] == 20
