"""CoAP over TLS (RFC 8323) next to DTLS on the same port: identity, callbacks, ping, certificate checks, profile."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import aiocoap
import aiocoap.resource as resource
import pytest

from opendots.config import TlsFiles
from opendots.pki.certs import TestPki
from opendots.transport import create_client_context, peer_identity, ping, start_server
from tests.conftest import free_port
from tests.helpers import tls_files as files


class Whoami(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.remotes: list = []

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.remotes.append(request.remote)
        identity = peer_identity(request)
        return aiocoap.Message(payload=f"{identity.common_name} {identity.cuid}".encode())


class Heartbeat(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytes] = []

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.received.append(request.payload)
        return aiocoap.Message(code=aiocoap.CHANGED)


@pytest.fixture
async def server(pki_dir):
    site = resource.Site()
    whoami = Whoami()
    site.add_resource(["whoami"], whoami)
    port = free_port()
    endpoint = await start_server(site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)])
    endpoint.port = port
    endpoint.whoami = whoami
    yield endpoint
    await endpoint.shutdown()


async def get(context: aiocoap.Context, uri: str) -> aiocoap.Message:
    return await asyncio.wait_for(context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 10)


async def test_dtls_and_tls_share_one_port_number_and_see_the_same_identity(pki_dir, server, client_config):
    assert [address[1] for address in server.dtls_addresses] == [server.port]
    assert [address[1] for address in server.tls_addresses] == [server.port]
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        over_dtls = await get(client, f"coaps://127.0.0.1:{server.port}/whoami")
        over_tls = await get(client, f"coaps+tcp://127.0.0.1:{server.port}/whoami")
        cuid = next(c.cuid for c in (await _server_config(pki_dir)).clients if c.name == "client")
        assert over_dtls.payload == over_tls.payload == f"client {cuid}".encode()
        assert peer_identity(over_tls).common_name == "localhost"
        assert server.tls_connection_count() == 1
    finally:
        await client.shutdown()


async def _server_config(pki_dir: Path):
    from opendots.config import ServerConfig

    return ServerConfig.load(pki_dir / "server.toml")


async def test_server_sends_a_request_to_the_client_over_its_tls_connection_and_pings_it(pki_dir, server):
    heartbeat = Heartbeat()
    site = resource.Site()
    site.add_resource(["hb"], heartbeat)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost", site=site)
    try:
        await get(client, f"coaps+tcp://127.0.0.1:{server.port}/whoami")
        beat = aiocoap.Message(code=aiocoap.PUT, uri_path=["hb"], payload=b"beat")
        beat.remote = server.whoami.remotes[-1]
        answer = await asyncio.wait_for(server.context.request(beat).response, 10)
        assert answer.code == aiocoap.CHANGED and heartbeat.received == [b"beat"]
        assert await ping(server.context, server.whoami.remotes[-1]) > 0
        assert await ping(client, f"coaps+tcp://127.0.0.1:{server.port}") > 0
    finally:
        await client.shutdown()


async def test_untrusted_client_certificate_is_refused(pki_dir, server, tmp_path):
    rogue = TestPki(tmp_path)
    rogue.issue_client("client")
    (tmp_path / "both.crt").write_bytes((tmp_path / "ca.crt").read_bytes() + (pki_dir / "ca.crt").read_bytes())
    client = await create_client_context(
        TlsFiles(tmp_path / "both.crt", tmp_path / "client.crt", tmp_path / "client.key"), server_name="localhost"
    )
    try:
        with pytest.raises(aiocoap.error.NetworkError):
            await get(client, f"coaps+tcp://127.0.0.1:{server.port}/whoami")
        await asyncio.sleep(0.1)
        assert server.whoami.remotes == [] and server.tls_connection_count() == 0
    finally:
        await client.shutdown()


async def test_client_checks_the_configured_name_not_the_dialled_address(pki_dir, server):
    good = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    bad = await create_client_context(files(pki_dir, "client"), server_name="dots.example.net")
    try:
        assert (await get(good, f"coaps+tcp://127.0.0.1:{server.port}/whoami")).code == aiocoap.CONTENT
        with pytest.raises(aiocoap.error.NetworkError):
            await get(bad, f"coaps+tcp://127.0.0.1:{server.port}/whoami")
    finally:
        await good.shutdown()
        await bad.shutdown()


def _handshake_with(pki_dir: Path, port: int, ciphers: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    context.load_verify_locations(str(pki_dir / "ca.crt"))
    context.load_cert_chain(str(pki_dir / "client.crt"), str(pki_dir / "client.key"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.do_handshake()
        tls.recv(1)  # the server's CSM, or the failure alert


async def test_server_refuses_non_aead_cipher_suites(pki_dir, server):
    loop = asyncio.get_running_loop()
    # The profile's first suite works from a plain ssl client ...
    await loop.run_in_executor(None, _handshake_with, pki_dir, server.port, "ECDHE-ECDSA-AES128-GCM-SHA256")
    # ... a CBC suite (no AEAD) that OpenSSL would otherwise accept does not.
    with pytest.raises(ssl.SSLError):
        await loop.run_in_executor(None, _handshake_with, pki_dir, server.port, "ECDHE-ECDSA-AES128-SHA256")


async def test_tls_connections_are_capped_and_idle_ones_released(pki_dir):
    site = resource.Site()
    site.add_resource(["whoami"], Whoami())
    port = free_port()
    endpoint = await start_server(
        site,
        credentials=files(pki_dir, "server"),
        bind=[("127.0.0.1", port)],
        dtls=False,
        max_sessions=1,
        idle_timeout=0.4,
    )
    first = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    second = await create_client_context(files(pki_dir, "other"), server_name="localhost")
    try:
        assert (await get(first, f"coaps+tcp://127.0.0.1:{port}/whoami")).code == aiocoap.CONTENT
        with pytest.raises((aiocoap.error.NetworkError, TimeoutError)):
            await asyncio.wait_for(get(second, f"coaps+tcp://127.0.0.1:{port}/whoami"), 3)
        assert endpoint.tls_connection_count() == 1
        for _ in range(60):
            if endpoint.tls_connection_count() == 0:
                break
            await asyncio.sleep(0.05)
        assert endpoint.tls_connection_count() == 0 and endpoint.tls_idle_closed == 1
        # with the idle one gone, the other client gets in
        assert (await get(second, f"coaps+tcp://127.0.0.1:{port}/whoami")).payload.startswith(b"other ")
    finally:
        await first.shutdown()
        await second.shutdown()
        await endpoint.shutdown()


async def test_wildcard_bind_serves_ipv4_and_ipv6_over_both_transports(pki_dir):
    site = resource.Site()
    site.add_resource(["whoami"], Whoami())
    port = free_port()
    endpoint = await start_server(site, credentials=files(pki_dir, "server"), bind=[("::", port)])
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        for uri in (
            f"coaps://127.0.0.1:{port}/whoami",
            f"coaps://[::1]:{port}/whoami",
            f"coaps+tcp://127.0.0.1:{port}/whoami",
            f"coaps+tcp://[::1]:{port}/whoami",
        ):
            assert (await get(client, uri)).payload.startswith(b"client "), uri
    finally:
        await client.shutdown()
        await endpoint.shutdown()


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_session_events_report_establishment_and_closure_with_identity(pki_dir, server, scheme):
    events = []
    server.session_listeners.append(events.append)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    await get(client, f"{scheme}://127.0.0.1:{server.port}/whoami")
    await client.shutdown()
    for _ in range(60):
        if len(events) == 2:
            break
        await asyncio.sleep(0.05)
    established, closed = events
    assert (established.kind, closed.kind) == ("established", "closed")
    assert established.transport == closed.transport == ("dtls" if scheme == "coaps" else "tls")
    assert established.identity.common_name == closed.identity.common_name == "client"
    assert established.remote is closed.remote is server.whoami.remotes[-1]
    assert closed.reason
