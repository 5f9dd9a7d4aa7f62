"""A whole DTLS session by hand (opendots.transport.dtls over a blocking UDP socket the caller owns), so a test controls
the source port and exactly what is sent: handshake, optional plaintext first, one CoAP GET, the answer's payload."""

from __future__ import annotations

import socket
import time

import aiocoap

from opendots.config import TlsFiles
from opendots.transport.dtls import ApplicationData, DtlsConnection, client_context


def get_by_hand(sock: socket.socket, port: int, credentials: TlsFiles, path: str, first: bytes | None = None) -> bytes:
    """GET /PATH on 127.0.0.1:PORT from SOCK (with a timeout set); FIRST, if given, goes before it as the plaintext
    of its own record. Returns the response payload."""
    connection = DtlsConnection.connect(client_context(credentials, "localhost"), now=time.monotonic())
    request = aiocoap.Message(code=aiocoap.GET, uri_path=[path])
    request.mtype, request.mid, request.token = aiocoap.CON, 7, b"\x01\x02"
    if first is not None:
        connection.send(first)
    connection.send(request.encode())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for datagram in connection.datagrams_to_send():
            sock.sendto(datagram, ("127.0.0.1", port))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            connection.handle_timer(time.monotonic())
            continue
        for event in connection.receive_datagram(data, time.monotonic()):
            if isinstance(event, ApplicationData):
                return aiocoap.Message.decode(event.data).payload
    raise AssertionError("no response over the hand-made DTLS session")
