"""DTLS sessions that each send one RFC 9132 §4.7 heartbeat and wait for its 2.04, on their own UDP sockets, driven
by the sans-I/O DTLS core (bench/_common.SansIoDtlsClient, as the session-scale benchmark's load generator)."""

from __future__ import annotations

import asyncio
import os
import time

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from bench._common import SansIoDtlsClient
from opendots.config import TlsFiles
from opendots.model import encode_signal
from opendots.signal.server.core.messages import HEARTBEAT
from opendots.transport.dtls import DtlsConnection, client_context

HB_PATH = (".well-known", "dots", "hb")
DOTS_CBOR = 271


class HeartbeatSession(SansIoDtlsClient):
    def __init__(self, connection: DtlsConnection) -> None:
        super().__init__(connection)
        self.answered = asyncio.get_running_loop().create_future()
        self.server_heartbeats = 0
        """The server's own heartbeats received, each answered 2.04 (NON, as the session-scale generator does)."""

    def application_data(self, data: bytes) -> None:
        message = aiocoap.Message.decode(data)
        if message.code.is_request():
            self.server_heartbeats += 1
            answer = aiocoap.Message(mtype=Type.NON, code=Code.CHANGED)
            answer.mid, answer.token = int.from_bytes(os.urandom(2)), message.token
            self.connection.send(answer.encode())
            self.flush()
        elif not self.answered.done():
            self.answered.set_result(message.code)

    async def round_trip(self) -> Code:
        """One more heartbeat, and the code of its answer."""
        self.answered = asyncio.get_running_loop().create_future()
        self.heartbeat()
        return await asyncio.wait_for(self.answered, 10)

    def heartbeat(self) -> None:
        message = aiocoap.Message(mtype=Type.NON, code=Code.PUT, uri_path=HB_PATH, content_format=DOTS_CBOR)
        message.mid, message.token = int.from_bytes(os.urandom(2)), os.urandom(4)
        message.payload = encode_signal({HEARTBEAT: {"peer-hb-status": True}})
        self.connection.send(message.encode())
        self.flush()

    def close(self) -> None:
        """close_notify, then the socket."""
        self.connection.close()
        self.flush()
        if self.timer is not None:
            self.timer.cancel()
        self.transport.close()  # type: ignore[attr-defined]


async def open_heartbeat_sessions(credentials: TlsFiles, port: int, count: int) -> list[HeartbeatSession]:
    """COUNT sessions to 127.0.0.1:PORT, each with one heartbeat answered 2.04."""
    loop = asyncio.get_running_loop()
    context = client_context(credentials, "localhost")  # one for all: a context per session is the client's cost

    async def one() -> HeartbeatSession:
        connection = DtlsConnection.connect(context, now=time.monotonic())
        _, session = await loop.create_datagram_endpoint(
            lambda: HeartbeatSession(connection), remote_addr=("127.0.0.1", port)
        )
        await asyncio.wait_for(session.established, 10)
        session.heartbeat()
        assert await asyncio.wait_for(session.answered, 10) == Code.CHANGED
        return session

    sessions = []
    for _ in range(count):  # one at a time: the server's per-address handshake share is small
        sessions.append(await one())
    return sessions
