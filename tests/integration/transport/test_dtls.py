"""DTLS transport through aiocoap over real UDP sockets: requests, identity, server-initiated requests, Observe,
Block2, ping, and robustness (malformed datagrams, ClientHello floods, untrusted certificates, caps, expiry)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiocoap
import aiocoap.resource as resource
import pytest

from opendots.config import TlsFiles
from opendots.pki.certs import TestPki
from opendots.transport import create_client_context, peer_identity, ping, start_server
from opendots.transport.dtls import DtlsConnection, client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import BIG_BODY, eventually, get, server_site
from tests.helpers.dtls_by_hand import get_by_hand


class Heartbeat(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[bytes, str | None]] = []

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        identity = peer_identity(request)
        self.received.append((request.payload, identity.common_name if identity else None))
        return aiocoap.Message(code=aiocoap.CHANGED)


async def test_request_carries_the_client_identity_and_server_can_call_back_over_the_same_session(pki_dir, server):
    heartbeat = Heartbeat()
    client_site = resource.Site()
    client_site.add_resource(["hb"], heartbeat)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost", site=client_site)
    try:
        response = await get(client, f"coaps://127.0.0.1:{server.port}/whoami")
        assert response.code == aiocoap.CONTENT and response.payload == b"client"
        assert peer_identity(response).common_name == "localhost"  # the client sees the server's certificate
        assert server.stats().established == 1

        beat = aiocoap.Message(code=aiocoap.PUT, uri_path=["hb"], payload=b"beat", transport_tuning=aiocoap.Unreliable)
        beat.remote = server.whoami.remotes[-1]
        answer = await asyncio.wait_for(server.context.request(beat).response, 10)
        assert answer.code == aiocoap.CHANGED and answer.mtype == aiocoap.NON
        assert heartbeat.received == [(b"beat", "localhost")]
        assert server.stats().accepted_total == 1  # no second handshake was needed
    finally:
        await client.shutdown()


async def test_observe_block2_and_ping(pki_dir, server):
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    base = f"coaps://127.0.0.1:{server.port}"
    try:
        big = await get(client, base + "/big")
        assert big.payload == BIG_BODY

        request = client.request(aiocoap.Message(code=aiocoap.GET, uri=base + "/counter", observe=0))
        first = await asyncio.wait_for(request.response, 10)
        assert first.payload == b"0"
        seen = []
        notifications = request.observation.__aiter__()
        for _ in range(3):
            server.counter.bump()
            notification = await asyncio.wait_for(notifications.__anext__(), 10)
            seen.append(notification.payload)
        assert seen == [b"1", b"2", b"3"]
        request.observation.cancel()

        rtt = await ping(client, base)
        assert 0 < rtt < 5
    finally:
        await client.shutdown()


async def test_server_pings_a_client_over_its_session(pki_dir, server):
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        await get(client, f"coaps://127.0.0.1:{server.port}/whoami")
        assert await ping(server.context, server.whoami.remotes[-1]) > 0
    finally:
        await client.shutdown()


async def test_client_rejects_a_server_whose_certificate_names_someone_else(pki_dir, server):
    client = await create_client_context(files(pki_dir, "client"), server_name="dots.example.net")
    try:
        with pytest.raises(aiocoap.error.NetworkError) as failure:
            await get(client, f"coaps://127.0.0.1:{server.port}/whoami")
        assert "certificate verify failed" in repr(failure.value)
        assert server.whoami.remotes == []
    finally:
        await client.shutdown()


def raw_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    return sock


async def still_serves(pki_dir: Path, server) -> None:
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        assert (await get(client, f"coaps://127.0.0.1:{server.port}/whoami")).payload == b"client"
    finally:
        await client.shutdown()


async def test_malformed_datagrams_leave_no_state_and_the_server_running(pki_dir, server):
    sock = raw_socket()
    with sock:
        for junk in (b"", b"\x00", b"GET / HTTP/1.0\r\n\r\n", b"\x16\xfe\xfd" + bytes(40), bytes(range(256)) * 4):
            sock.sendto(junk, ("127.0.0.1", server.port))
        await eventually(lambda: server.stats().dropped_datagrams == 5)
    assert server.stats().sessions == 0
    await still_serves(pki_dir, server)


async def test_client_hello_flood_without_cookies_creates_no_sessions(pki_dir, server):
    context = client_context(files(pki_dir, "client"), "localhost")
    hellos = [DtlsConnection.connect(context, now=0.0).datagrams_to_send()[0] for _ in range(50)]
    sockets = [raw_socket() for _ in range(10)]
    try:
        for index, hello in enumerate(hellos * 4):
            sockets[index % len(sockets)].sendto(hello, ("127.0.0.1", server.port))
        await eventually(lambda: server.stats().hello_verify_sent >= 150)
        await asyncio.sleep(0.1)  # let stragglers arrive too
        stats = server.stats()
        assert stats.sessions == 0 and stats.accepted_total == 0
        assert stats.hello_verify_sent >= 150  # each got a stateless HelloVerifyRequest (a few may be lost)
        reply = sockets[0].recv(2048)
        assert reply[0] == 22 and reply[13] == 3  # handshake record, HelloVerifyRequest
    finally:
        for sock in sockets:
            sock.close()
    await still_serves(pki_dir, server)


async def test_untrusted_client_certificate_is_refused_and_forgotten(pki_dir, server, tmp_path):
    rogue = TestPki(tmp_path)
    rogue.issue_client("client")
    (tmp_path / "both-cas.crt").write_bytes((tmp_path / "ca.crt").read_bytes() + (pki_dir / "ca.crt").read_bytes())
    credentials = TlsFiles(tmp_path / "both-cas.crt", tmp_path / "client.crt", tmp_path / "client.key")
    client = await create_client_context(credentials, server_name="localhost")
    try:
        with pytest.raises(aiocoap.error.NetworkError):
            await get(client, f"coaps://127.0.0.1:{server.port}/whoami")
        await asyncio.sleep(0.1)
        assert server.stats().sessions == 0
        assert server.whoami.remotes == []
    finally:
        await client.shutdown()
    await still_serves(pki_dir, server)


async def test_session_cap_refuses_new_peers_but_keeps_existing_ones(pki_dir):
    site, _, _ = server_site()
    port = free_port()
    endpoint = await start_server(
        site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False, max_sessions=1
    )
    first = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    second = await create_client_context(files(pki_dir, "other"), server_name="localhost")
    try:
        assert (await get(first, f"coaps://127.0.0.1:{port}/whoami")).payload == b"client"
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(get(second, f"coaps://127.0.0.1:{port}/whoami"), 1.5)
        assert endpoint.stats().sessions == 1 and endpoint.stats().refused_full >= 1
        assert (await get(first, f"coaps://127.0.0.1:{port}/whoami")).payload == b"client"
    finally:
        await first.shutdown()
        await second.shutdown()
        await endpoint.shutdown()


async def test_idle_sessions_expire_and_the_client_reconnects_with_resumption(pki_dir):
    site, _, _ = server_site()
    port = free_port()
    endpoint = await start_server(
        site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False, idle_timeout=0.3
    )
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        await get(client, f"coaps://127.0.0.1:{port}/whoami")
        assert endpoint.stats().sessions == 1
        deadline = time.monotonic() + 5
        while endpoint.stats().sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert endpoint.stats().sessions == 0 and endpoint.stats().expired_total == 1
        await asyncio.sleep(0.3)  # the close_notify reaches the client, which drops its side too
        assert (await get(client, f"coaps://127.0.0.1:{port}/whoami")).payload == b"client"
        assert endpoint.stats().accepted_total == 2 and endpoint.stats().resumed_total == 1
    finally:
        await client.shutdown()
        await endpoint.shutdown()


async def test_client_close_notify_removes_the_server_session(pki_dir, server):
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    await get(client, f"coaps://127.0.0.1:{server.port}/whoami")
    assert server.stats().sessions == 1
    await client.shutdown()
    deadline = time.monotonic() + 3
    while server.stats().sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert server.stats().sessions == 0


async def test_client_restarting_on_the_same_port_replaces_its_old_session(pki_dir, server):
    sock = raw_socket()
    sock.settimeout(0.5)
    sock.bind(("127.0.0.1", 0))
    with sock:
        assert await asyncio.to_thread(get_by_hand, sock, server.port, files(pki_dir, "client"), "whoami") == b"client"
        old = server.whoami.remotes[-1]
        assert server.stats().sessions == 1
        # same address and port, new handshake from scratch (the old session state is lost on the client)
        assert await asyncio.to_thread(get_by_hand, sock, server.port, files(pki_dir, "other"), "whoami") == b"other"
    stats = server.stats()
    assert stats.sessions == 1 and stats.accepted_total == 2
    assert server.whoami.remotes[-1] is not old and old.connection.closed


async def test_client_gives_up_on_a_server_that_never_answers(pki_dir, monkeypatch):
    from opendots.transport.dtls_interface import DtlsClientInterface

    monkeypatch.setattr(DtlsClientInterface, "handshake_timeout", 0.5)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound but never read: datagrams vanish, no ICMP either
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        started = time.monotonic()
        with pytest.raises(aiocoap.error.NetworkError) as failure:
            await get(client, f"coaps://127.0.0.1:{silent.getsockname()[1]}/whoami")
        assert time.monotonic() - started < 3
        assert "no DTLS handshake" in repr(failure.value)
    finally:
        await client.shutdown()
        silent.close()


async def test_half_open_handshakes_are_capped_separately(pki_dir):
    """Peers that pass the cookie round but never finish the handshake cannot fill the session table."""
    site, _, _ = server_site()
    port = free_port()
    endpoint = await start_server(
        site,
        credentials=files(pki_dir, "server"),
        bind=[("127.0.0.1", port)],
        tls=False,
        max_sessions=100,
        max_handshakes_per_address=1000,  # one address here; per-address shares: test_dtls_handshake_flood.py
    )
    endpoint.dtls.handshakes.min_age = 60  # none is old enough to make room while the test runs
    limit = endpoint.dtls.max_handshaking
    assert limit < 100
    real = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    context = client_context(files(pki_dir, "client"), "localhost")
    sockets = [raw_socket() for _ in range(limit + 3)]
    try:
        assert (await get(real, f"coaps://127.0.0.1:{port}/whoami")).payload == b"client"
        loop = asyncio.get_running_loop()
        for index, sock in enumerate(sockets):
            connection = DtlsConnection.connect(context, now=time.monotonic())
            sock.sendto(connection.datagrams_to_send()[0], ("127.0.0.1", port))
            connection.receive_datagram(await loop.run_in_executor(None, sock.recv, 2048), time.monotonic())
            sock.sendto(connection.datagrams_to_send()[0], ("127.0.0.1", port))  # hello with cookie; stop here
            if index >= limit:
                sock.settimeout(0.3)
                with pytest.raises(TimeoutError):  # the cookie round is stateless; the handshake is refused
                    await loop.run_in_executor(None, sock.recv, 2048)
        await eventually(lambda: endpoint.stats().handshaking == limit)
        stats = endpoint.stats()
        assert (stats.handshaking, stats.established, stats.refused_full) == (limit, 1, 3)
        # the established session is unaffected
        assert (await get(real, f"coaps://127.0.0.1:{port}/whoami")).payload == b"client"
        # and the half-open ones go at the handshake deadline (time is passed in, no sleeping)
        assert endpoint.dtls.expire(asyncio.get_running_loop().time() + endpoint.dtls.handshake_timeout + 1) == limit
        assert (endpoint.stats().handshaking, endpoint.stats().established) == (0, 1)
    finally:
        for sock in sockets:
            sock.close()
        await real.shutdown()
        await endpoint.shutdown()


async def test_after_a_server_forgets_the_session_the_client_recovers_with_reset_session(pki_dir, server):
    from opendots.transport import reset_session

    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    uri = f"coaps://127.0.0.1:{server.port}/whoami"
    try:
        await get(client, uri)
        server.dtls.sessions.clear()  # what a crash and restart looks like from the client: silence, no alert
        lost = aiocoap.Message(code=aiocoap.GET, uri=uri, transport_tuning=aiocoap.Unreliable)
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await asyncio.wait_for(client.request(lost).response, 0.5)
        await reset_session(client, uri)
        assert (await get(client, uri)).payload == b"client"
        assert server.stats().accepted_total == 2
    finally:
        await client.shutdown()
