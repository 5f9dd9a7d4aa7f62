"""The gateway's upstream leg (a real `opendots gateway` process between an aiocoap client and a server on loopback,
through a UDP forwarder that can lose a datagram): relayed requests go upstream as they came, CON or NON (RFC 9132
§4.4.1: mitigation requests are NON), and a NON lost upstream is retransmitted by the gateway (RFC 7252 §4.3, as
RFC 9132 §4.4.1 has a client do)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap.numbers.types import CON, NON

from opendots.config import ServerConfig
from opendots.lab.gateway import GatewayProcess, authorization
from opendots.model import encode_telemetry
from opendots.signal.client.core.telemetry_bodies import config_entry
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import BASE, cuid_of, request
from tests.helpers.udp_proxy import LossyUdpProxy


@dataclass
class Chain:
    server: RunningSignalServer
    proxy: LossyUdpProxy
    gateway: GatewayProcess
    client: Any
    uri: str
    cuid: str
    seen: list[tuple[Any, tuple[str, ...]]]
    """(CoAP type, Uri-Path after /.well-known/dots) of every request the server took."""

    def upstream_types(self, resource: str) -> list[Any]:
        return [mtype for mtype, path in self.seen if path[:1] == (resource,)]


@pytest.fixture
async def chain(pki_dir: Path, tmp_path: Path) -> AsyncIterator[Chain]:
    pki = Path(shutil.copytree(pki_dir, tmp_path / "pki"))
    config = ServerConfig.load(pki / "server.toml")
    cuid = cuid_of(config, "client")
    gateway = GatewayProcess(pki, "gw1", "client-domain")
    gateway.serve(authorization("client", cuid))
    config.clients.append(gateway.authorization())
    config.db = tmp_path / "signal.db"
    server = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    seen: list[tuple[Any, tuple[str, ...]]] = []
    answer_now = server.resource.answer_now

    def noted(pipe: Any) -> bool:  # the server's own handling, with what it was given noted first
        seen.append((pipe.request.mtype, tuple(pipe.request.opt.uri_path)))
        return answer_now(pipe)

    server.resource.answer_now = noted  # type: ignore[method-assign]
    proxy = LossyUdpProxy()
    gateway.upstream_to(await proxy.start(server.endpoint.dtls_addresses[0][1]))
    await asyncio.to_thread(gateway.start)  # waits for its upstream session: this loop must keep serving
    client = await create_client_context(tls_files(pki, "client"), server_name="localhost")
    try:
        yield Chain(server, proxy, gateway, client, f"coaps://127.0.0.1:{gateway.port}{BASE}", cuid, seen)
    finally:
        await client.shutdown()
        await asyncio.to_thread(gateway.stop)
        proxy.close()
        await server.stop()


def mitigation(prefix: str = "203.0.113.9/32") -> dict[str, Any]:
    return {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 3600}]}}


async def test_a_non_mitigation_request_goes_upstream_non_and_a_con_one_con_rfc9132_s4_4_1(chain: Chain) -> None:
    put = await request(chain.client, aiocoap.PUT, f"{chain.uri}/mitigate/cuid={chain.cuid}/mid=7", mitigation(),
                        transport_tuning=aiocoap.Unreliable)  # fmt: skip
    assert put.code == aiocoap.CREATED, put.payload
    assert chain.upstream_types("mitigate") == [NON]
    setup = encode_telemetry(
        {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [config_entry(measurement_interval="hour")]}}
    )
    uri = f"{chain.uri}/tm-setup/cuid={chain.cuid}/tsid=1"
    answer = await request(chain.client, aiocoap.PUT, uri, setup, content_format=271, transport_tuning=aiocoap.Reliable)
    assert answer.code == aiocoap.CREATED, answer.payload
    assert chain.upstream_types("tm-setup") == [CON]


async def test_a_non_request_lost_on_the_upstream_leg_is_retransmitted_by_the_gateway_rfc7252_s4_3(
    chain: Chain,
) -> None:
    """The client sends its NON once (aiocoap does not retransmit NON): only the gateway's retransmission can bring
    it to the server. Heartbeats are smaller than the datagram dropped."""
    chain.proxy.drop_next_upstream(larger_than=120)
    put = await request(chain.client, aiocoap.PUT, f"{chain.uri}/mitigate/cuid={chain.cuid}/mid=8", mitigation(),
                        transport_tuning=aiocoap.Unreliable, timeout=20.0)  # fmt: skip
    assert put.code == aiocoap.CREATED, put.payload
    assert chain.proxy.dropped == 1
    assert chain.upstream_types("mitigate") == [NON]
