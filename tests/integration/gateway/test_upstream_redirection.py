"""An upstream redirection (RFC 9132 §4.6) is the gateway's upstream leg's to follow: a real `opendots gateway`
process between an aiocoap client and two servers on loopback; the primary answers 5.03 naming the alternate, the
gateway moves its session there and sends the request again, and the client gets the alternate's answer, never the
redirection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiocoap

from opendots.config import ServerConfig
from opendots.lab.gateway import GatewayProcess, authorization
from opendots.model import decode_signal
from opendots.pki.setup import init_pki
from opendots.signal.server.core import Status
from opendots.signal.server.core.server import Redirection
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import BASE, cuid_of, request


@contextlib.asynccontextmanager
async def primary_and_alternate(tmp_path: Path) -> AsyncIterator[tuple[Any, Any, GatewayProcess, Any, str]]:
    """Two servers on one port (127.0.0.1 the primary, 127.0.0.2 the alternate), a client-domain gateway upstream to
    the primary, an aiocoap client of the gateway: (primary, alternate, gateway, client, mitigate URI)."""
    pki = tmp_path / "pki"
    init_pki(pki, server_names=["alt.example"])  # the servers' certificate also names the alternate server
    port = free_port()
    gateway = GatewayProcess(pki, "gw1", "client-domain")
    servers = []
    for host, db in (("127.0.0.1", "primary.db"), ("127.0.0.2", "alternate.db")):
        config = ServerConfig.load(pki / "server.toml")
        config.db = tmp_path / db
        config.clients.append(gateway.authorization())
        servers.append(await start_signal_server(config, bind=[(host, port)]))
    primary, alternate = servers
    cuid = cuid_of(ServerConfig.load(pki / "server.toml"), "client")
    gateway.serve(authorization("client", cuid))
    gateway.upstream_to(port)
    await asyncio.to_thread(gateway.start)
    client = await create_client_context(tls_files(pki, "client"), server_name="localhost")
    uri = f"coaps://127.0.0.1:{gateway.port}{BASE}/mitigate/cuid={cuid}"
    try:
        yield primary, alternate, gateway, client, uri
    finally:
        await client.shutdown()
        await asyncio.to_thread(gateway.stop)
        for server in servers:
            await server.stop()


BODY = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.9/32"], "lifetime": 3600}]}}


async def test_a_redirection_of_a_relayed_request_is_followed_by_the_gateway_not_passed_down_rfc9132_s4_6(
    tmp_path: Path,
) -> None:
    async with primary_and_alternate(tmp_path) as (primary, alternate, gateway, client, uri):
        primary.service.core.set_redirection(Redirection("alt.example", ("127.0.0.2",), ttl=600))
        put = await request(client, aiocoap.PUT, f"{uri}/mid=7", BODY, timeout=30.0)
        assert put.code == aiocoap.CREATED, put.payload  # the alternate's answer, after the gateway followed
        assert decode_signal(put.payload)[SCOPE]["scope"][0]["mid"] == 7
        assert [m.record.client for m in alternate.service.core.mitigations()] == ["gw1"]
        assert primary.service.core.mitigations() == []
        status = await asyncio.to_thread(gateway.status)
        assert status is not None and status["upstream"]["server"].startswith("coaps://127.0.0.2:")


async def test_a_redirection_notified_to_a_relayed_observation_moves_it_to_the_alternate_server_rfc9132_s4_6(
    tmp_path: Path,
) -> None:
    """The 5.03 notification is the gateway's: its mitigation is re-established on the alternate server, the
    observation registered there again, and the downstream observer hears the alternate's news, not the 5.03."""
    async with primary_and_alternate(tmp_path) as (primary, alternate, _gateway, client, uri):
        assert (await request(client, aiocoap.PUT, f"{uri}/mid=7", BODY)).code == aiocoap.CREATED
        observation = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/mid=7", observe=0))
        assert (await asyncio.wait_for(observation.response, 10)).code == aiocoap.CONTENT
        notes = observation.observation.__aiter__()
        primary.service.set_redirection(Redirection("alt.example", ("127.0.0.2",), ttl=600))  # observers told

        async def moved() -> Any:
            while not (held := alternate.service.core.mitigations()):
                await asyncio.sleep(0.1)
            return held[0]

        held = await asyncio.wait_for(moved(), 20)
        cuid, mid = held.key
        alternate.service.report_status(f"{cuid}/{mid}", Status.ATTACK_SUCCESSFULLY_MITIGATED)
        note = await asyncio.wait_for(notes.__anext__(), 20)
        while decode_signal(note.payload)[SCOPE]["scope"][0]["status"] != "attack-successfully-mitigated":
            assert note.code == aiocoap.CONTENT, note.payload  # never the redirection
            note = await asyncio.wait_for(notes.__anext__(), 20)
        assert decode_signal(note.payload)[SCOPE]["scope"][0]["mid"] == 7
        observation.observation.cancel()
