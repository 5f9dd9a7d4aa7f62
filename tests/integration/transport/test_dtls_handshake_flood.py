"""Peers that pass the DTLS cookie round (RFC 6347 §4.2.1) and never finish the handshake, over real UDP sockets:
one host on many source ports, or many hosts, must not lock out genuine clients or disturb established ones."""

from __future__ import annotations

import asyncio
import socket
import time

import aiocoap
import pytest
from OpenSSL import SSL

from opendots.config import ServerConfig, TlsFiles
from opendots.transport import create_client_context, start_server
from opendots.transport.dtls import DtlsConnection, client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import eventually, get, server_site


def udp_socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket, timeout: float) -> bytes | None:
    try:
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), timeout)
    except TimeoutError:
        return None


async def stall_handshakes(context: SSL.Context, port: int, sockets: list[socket.socket]) -> int:
    """From every socket: ClientHello, the cookie, the ClientHello with the cookie, and then silence (the
    handshake is left unfinished on the server). Returns how many got a cookie. A few at a time, so the server's
    socket buffer does not overflow, and each cookie is answered at once (before the client's own timer would
    resend its first hello)."""
    room = asyncio.Semaphore(16)

    async def stall(sock: socket.socket) -> bool:
        async with room:
            connection = DtlsConnection.connect(context, now=time.monotonic())
            sock.sendto(connection.datagrams_to_send()[0], ("127.0.0.1", port))
            cookie = await receive(sock, 0.5)  # an address at its share gets not even a cookie
            if cookie is None:
                return False
            connection.receive_datagram(cookie, time.monotonic())
            sock.sendto(connection.datagrams_to_send()[0], ("127.0.0.1", port))
            await asyncio.sleep(0.005)  # the server's flight (or nothing) is left unread
            return True

    return sum(await asyncio.gather(*(stall(sock) for sock in sockets)))


def genuine_exchange(credentials: TlsFiles, source: str, port: int, deadline: float) -> bytes:
    """A complete DTLS client from SOURCE (blocking, run in a thread): handshake with retransmissions, then one
    CoAP GET /whoami; returns the answer's payload. Raises TimeoutError after DEADLINE seconds."""
    connection = DtlsConnection.connect(client_context(credentials, "localhost"), now=time.monotonic())
    give_up = time.monotonic() + deadline
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        request_sent = False
        while True:
            if connection.established and not request_sent:
                request = aiocoap.Message(code=aiocoap.GET, uri_path=["whoami"])
                request.mtype, request.mid = aiocoap.CON, 1
                connection.send(request.encode())
                request_sent = True
            for datagram in connection.datagrams_to_send():
                sock.sendto(datagram, ("127.0.0.1", port))
            left = give_up - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {deadline} s")
            due = connection.timer_due_in()
            sock.settimeout(min(left, due if due is not None and due > 0 else left))
            try:
                datagram = sock.recv(4096)
            except TimeoutError:
                connection.handle_timer(time.monotonic())
                continue
            for event in connection.receive_datagram(datagram, time.monotonic()):
                data = getattr(event, "data", None)
                if data is not None:
                    return aiocoap.Message.decode(data).payload
            assert not connection.closed, "the server ended the handshake"


@pytest.fixture
async def sockets():
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


async def test_one_host_on_many_source_ports_holds_only_its_share_and_others_still_get_in(pki_dir, sockets):
    site, _, _ = server_site()
    port = free_port()
    endpoint = await start_server(
        site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False, max_sessions=100
    )
    established = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        assert (await get(established, f"coaps://127.0.0.1:{port}/whoami")).payload == b"client"
        dtls = endpoint.dtls
        assert dtls is not None
        flood = 2 * dtls.max_handshaking  # one host, enough source ports to fill the old table twice over
        sockets.extend(udp_socket("127.0.0.2") for _ in range(flood))
        await stall_handshakes(client_context(files(pki_dir, "client"), "localhost"), port, sockets)
        share = dtls.handshakes.per_address
        await eventually(lambda: endpoint.stats().refused_per_address >= flood - share)
        stats = endpoint.stats()
        assert (stats.handshaking, stats.established) == (share, 1)
        # a genuine client on another address completes its handshake and is answered promptly
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, genuine_exchange, files(pki_dir, "client"), "127.0.0.3", port, 5.0)
        assert answer == b"client"
        # the established client is answered over its session as before
        assert (await asyncio.wait_for(get(established, f"coaps://127.0.0.1:{port}/whoami"), 2)).payload == b"client"
    finally:
        await established.shutdown()
        await endpoint.shutdown()


async def test_a_full_handshake_table_makes_room_for_a_newcomer_from_another_address(pki_dir, sockets):
    site, _, _ = server_site()
    port = free_port()
    endpoint = await start_server(
        site,
        credentials=files(pki_dir, "server"),
        bind=[("127.0.0.1", port)],
        tls=False,
        max_handshakes=16,
        max_handshakes_per_address=4,
    )
    try:
        context = client_context(files(pki_dir, "client"), "localhost")
        for host in range(10, 15):  # five hosts, four stalled handshakes each: more than the table holds
            sockets.extend(udp_socket(f"127.0.0.{host}") for _ in range(4))
        await stall_handshakes(context, port, sockets)
        await eventually(lambda: endpoint.stats().handshaking == 16 and endpoint.stats().refused_full >= 1)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, genuine_exchange, files(pki_dir, "client"), "127.0.0.3", port, 5.0)
        assert answer == b"client"
        stats = endpoint.stats()
        assert stats.handshakes_evicted >= 1 and stats.established == 1
        assert stats.handshaking <= 16
        # what stalls is dropped after the handshake timeout (time passed in: nothing sleeps)
        assert endpoint.dtls.expire(loop.time() + endpoint.dtls.handshake_timeout + 1) >= stats.handshaking
        assert endpoint.stats().handshaking == 0
    finally:
        await endpoint.shutdown()


async def test_when_every_host_holds_one_handshake_the_oldest_make_room_after_a_second(pki_dir, sockets):
    site, _, _ = server_site()
    port = free_port()
    endpoint = await start_server(
        site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False, max_handshakes=8
    )
    try:
        context = client_context(files(pki_dir, "client"), "localhost")
        sockets.extend(udp_socket(f"127.0.1.{host}") for host in range(1, 9))
        await stall_handshakes(context, port, sockets)
        await eventually(lambda: endpoint.stats().handshaking == 8)
        loop = asyncio.get_running_loop()
        # the genuine client's first verified hellos may be refused (all stalled ones are young); its own
        # retransmission a second later finds the oldest old enough to give way
        answer = await loop.run_in_executor(None, genuine_exchange, files(pki_dir, "client"), "127.0.0.3", port, 8.0)
        assert answer == b"client" and endpoint.stats().handshakes_evicted >= 1
    finally:
        await endpoint.shutdown()


def test_handshake_limits_are_read_from_the_server_table(pki_dir, tmp_path):
    config = ServerConfig.load(pki_dir / "server.toml")
    assert (config.max_handshakes, config.max_handshakes_per_address, config.handshake_timeout) == (0, 8, 10.0)
    config.max_handshakes, config.max_handshakes_per_address, config.handshake_timeout = 32, 2, 4.0
    config.save(tmp_path / "server.toml")
    assert "max_handshakes_per_address = 2" in (tmp_path / "server.toml").read_text()
    again = ServerConfig.load(tmp_path / "server.toml")
    assert (again.max_handshakes, again.max_handshakes_per_address, again.handshake_timeout) == (32, 2, 4.0)
