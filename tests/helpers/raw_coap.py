"""CoAP messages written by hand and a blocking DTLS client that sends them exactly as given: for the tests of
RFC 7252 message and option rules at the server."""

from __future__ import annotations

import socket
import time

from opendots.config import TlsFiles
from opendots.transport.dtls import DtlsConnection, client_context
from tests.helpers.coap_bytes import ACK, CON, CONFIG_GET, DOTS, GET, NON, PUT, RST, coap

__all__ = ["ACK", "CON", "CONFIG_GET", "DOTS", "GET", "NON", "PUT", "RST", "RawDtlsCoap", "coap"]


class RawDtlsCoap:
    """A DTLS client that sends CoAP bytes exactly as given (blocking: used from a thread)."""

    def __init__(self, credentials: TlsFiles, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.connection = DtlsConnection.connect(client_context(credentials, "localhost"), now=time.monotonic())
        give_up = time.monotonic() + 10
        while not self.connection.established:
            self._flush()
            assert time.monotonic() < give_up and not self.connection.closed, "no DTLS handshake"
            due = self.connection.timer_due_in()
            self.sock.settimeout(due if due else 0.5)
            try:
                self.connection.receive_datagram(self.sock.recv(4096), time.monotonic())
            except TimeoutError:
                self.connection.handle_timer(time.monotonic())
        self._flush()

    def _flush(self) -> None:
        for datagram in self.connection.datagrams_to_send():
            self.sock.sendto(datagram, ("127.0.0.1", self.port))

    def exchange(self, message: bytes, wait: float = 1.5) -> list[bytes]:
        """Send MESSAGE; every CoAP message that comes back within WAIT seconds (stops at the first answer)."""
        self.send(message)
        return self.receive(wait, until=1)

    def send(self, message: bytes) -> None:
        self.connection.send(message)
        self._flush()

    def receive(self, wait: float, until: int | None = None) -> list[bytes]:
        """Every CoAP message that arrives within WAIT seconds, or until UNTIL of them have."""
        answers: list[bytes] = []
        give_up = time.monotonic() + wait
        while (until is None or len(answers) < until) and (left := give_up - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                datagram = self.sock.recv(4096)
            except TimeoutError:
                break
            for event in self.connection.receive_datagram(datagram, time.monotonic()):
                data = getattr(event, "data", None)
                if data is not None:
                    answers.append(data)
        return answers

    def close(self) -> None:
        self.connection.close()
        self._flush()
        self.sock.close()
