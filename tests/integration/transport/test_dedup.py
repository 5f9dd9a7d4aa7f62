"""Duplicate detection without a timer per message (opendots.transport.dedup, TimerlessDedupMessageManager).

The socket tests send the very same CoAP message twice, each time in a fresh DTLS record, to a real server and
check it is acted on once (the model check of RecentMessages: tests/unit/transport/test_dedup.py).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiocoap
import aiocoap.numbers.constants

from opendots.transport import aiocoap_hooks as hooks
from opendots.transport import start_server
from opendots.transport.dtls import DtlsConnection, client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import server_site

# ------------------------------------------------------------------------------------------------ real DTLS


class _HandMadeSession:
    """A DTLS session by hand on a real UDP socket, so the same CoAP message (same MID) can be sent twice."""

    def __init__(self, pki_dir: Path, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.3)
        self.port = port
        self.connection = DtlsConnection.connect(
            client_context(files(pki_dir, "client"), "localhost"), now=time.monotonic()
        )

    def exchange(self, message: aiocoap.Message, wait: float = 3.0) -> aiocoap.Message | None:
        """Send MESSAGE (its own DTLS record each time); return the first CoAP message back, None if none came."""
        self.connection.send(message.encode())
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for datagram in self.connection.datagrams_to_send():
                self.sock.sendto(datagram, ("127.0.0.1", self.port))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                self.connection.handle_timer(time.monotonic())
                continue
            for event in self.connection.receive_datagram(data, time.monotonic()):
                if hasattr(event, "data"):
                    return aiocoap.Message.decode(event.data)
        return None

    def close(self) -> None:
        self.sock.close()


def _get(mtype: aiocoap.numbers.types.Type, mid: int, token: bytes) -> aiocoap.Message:
    message = aiocoap.Message(code=aiocoap.GET, uri_path=["whoami"])
    message.mtype, message.mid, message.token = mtype, mid, token
    return message


def _manager(server) -> hooks.TimerlessDedupMessageManager:
    managers = [
        interface.token_interface
        for interface in server.context.request_interfaces
        if isinstance(getattr(interface, "token_interface", None), hooks.TimerlessDedupMessageManager)
    ]
    assert len(managers) == 1, "the DTLS stack must run on TimerlessDedupMessageManager"
    return managers[0]


async def test_a_repeated_con_gets_the_stored_response_and_a_repeated_non_is_ignored(pki_dir, server):
    session = _HandMadeSession(pki_dir, server.port)
    try:
        first = await asyncio.to_thread(session.exchange, _get(aiocoap.CON, 7, b"\x07"))
        assert first is not None and first.mtype == aiocoap.ACK and first.payload == b"client"
        again = await asyncio.to_thread(session.exchange, _get(aiocoap.CON, 7, b"\x07"))
        assert again is not None and (again.mid, again.token, again.payload) == (7, b"\x07", b"client")
        assert len(server.whoami.remotes) == 1, "the duplicate CON was rendered again"

        assert await asyncio.to_thread(session.exchange, _get(aiocoap.NON, 8, b"\x08")) is not None
        assert await asyncio.to_thread(session.exchange, _get(aiocoap.NON, 8, b"\x08"), 1.0) is None
        assert len(server.whoami.remotes) == 2, "the duplicate NON was rendered again"

        manager = _manager(server)
        assert len(manager.recent) == 2 and manager._recent_messages == {}
        assert manager._expiry_timer is not None  # one timer, for the oldest entry, whatever the traffic
    finally:
        session.close()


async def test_entries_expire_on_one_timer_and_the_message_is_then_new(pki_dir, server):
    assert _manager(server).exchange_lifetime == aiocoap.numbers.constants.EXCHANGE_LIFETIME  # 247 s by default
    _manager(server).exchange_lifetime = 0.3
    session = _HandMadeSession(pki_dir, server.port)
    try:
        assert await asyncio.to_thread(session.exchange, _get(aiocoap.CON, 9, b"\x09")) is not None
        manager = _manager(server)
        assert len(manager.recent) == 1
        await asyncio.sleep(0.6)
        assert len(manager.recent) == 0 and manager._expiry_timer is None  # idle: nothing kept, nothing armed
        assert await asyncio.to_thread(session.exchange, _get(aiocoap.CON, 9, b"\x09")) is not None
        assert len(server.whoami.remotes) == 2, "after its lifetime the same MID is a new message"
    finally:
        session.close()


async def test_shutdown_cancels_the_expiry_timer(pki_dir):
    site, whoami, _ = server_site()
    port = free_port()
    own = await start_server(site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False)
    own.whoami = whoami
    session = _HandMadeSession(pki_dir, port)
    try:
        for mid in range(3):
            assert await asyncio.to_thread(session.exchange, _get(aiocoap.CON, 100 + mid, b"\x01")) is not None
        manager = _manager(own)
        timer = manager._expiry_timer
        assert timer is not None and len(manager.recent) == 3
        await own.shutdown()
        assert timer.cancelled() and manager._expiry_timer is None
    finally:
        session.close()
