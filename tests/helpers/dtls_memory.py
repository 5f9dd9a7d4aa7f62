"""A DTLS client and listener (opendots.transport.dtls, sans-I/O) with their datagrams shuttled by hand: no socket."""

from __future__ import annotations

import time
from pathlib import Path

from opendots.transport.dtls import DtlsConnection, client_context
from opendots.transport.dtls_listener import DtlsListener
from tests.helpers import tls_files as files

PEER = ("192.0.2.10", 40000)


class Pair:
    """A client connection and a listener on the 'server', with datagrams shuttled by hand."""

    def __init__(self, server: DtlsListener, client: DtlsConnection, peer: tuple = PEER) -> None:
        self.listener = server
        self.client = client
        self.server: DtlsConnection | None = None
        self.peer = peer
        self.client_events: list = []
        self.server_events: list = []
        self.hello_verify_requests = 0

    def pump(self, rounds: int = 10) -> None:
        now = time.monotonic()
        for _ in range(rounds):
            moved = False
            for datagram in self.client.datagrams_to_send():
                moved = True
                if self.server is None:
                    result = self.listener.receive(datagram, self.peer, now)
                    self.hello_verify_requests += bool(result.reply)
                    for reply in result.reply:
                        self.client_events += self.client.receive_datagram(reply, now)
                    self.server = result.connection
                else:
                    self.server_events += self.server.receive_datagram(datagram, now)
            if self.server is not None:
                for datagram in self.server.datagrams_to_send():
                    moved = True
                    self.client_events += self.client.receive_datagram(datagram, now)
            if not moved:
                return


def connect(
    pki_dir: Path, listener: DtlsListener, *, stem: str = "client", name: str = "localhost", context=None, **kw
) -> Pair:
    context = context or client_context(files(pki_dir, stem), name)
    pair = Pair(listener, DtlsConnection.connect(context, now=time.monotonic(), **kw))
    pair.pump()
    return pair


def sent_one_by_one(client: DtlsConnection, count: int) -> list[bytes]:
    """COUNT application datagrams from CLIENT, one record each: b"m0", b"m1", ..."""
    datagrams = []
    for index in range(count):
        client.send(b"m%d" % index)
        (datagram,) = client.datagrams_to_send()
        datagrams.append(datagram)
    return datagrams
