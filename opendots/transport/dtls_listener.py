"""The server's stateless side of DTLS 1.2: HMAC cookies (RFC 6347 §4.2.1) and the listener that answers
ClientHellos with a HelloVerifyRequest and hands out a `DtlsConnection` only once a hello carries a valid cookie,
so a spoofed or flooding peer costs the server no per-peer state."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from OpenSSL import SSL

from opendots.config import TlsFiles
from opendots.pki.verify import HandshakeNotes, peer_label
from opendots.transport.dtls import (
    DtlsConnection,
    drain_output,
    is_client_hello,
    own_record_layer_default,
    pack_records,
    server_context,
    split_records,
)
from opendots.transport.profile import DEFAULT_DTLS_MTU


class CookieSecrets:
    """HMAC keys for stateless DTLS cookies; rotated every ROTATE_AFTER seconds, the previous key stays accepted."""

    def __init__(self, now: float, rotate_after: float = 120.0) -> None:
        self.rotate_after = rotate_after
        self._current = os.urandom(32)
        self._previous: bytes | None = None
        self._rotated_at = now

    def rotate_if_due(self, now: float) -> None:
        if now - self._rotated_at >= self.rotate_after:
            self._previous, self._current = self._current, os.urandom(32)
            self._rotated_at = now

    def make(self, peer: bytes) -> bytes:
        return hmac.new(self._current, peer, hashlib.sha256).digest()

    def verify(self, peer: bytes, cookie: bytes) -> bool:
        keys = (self._current,) if self._previous is None else (self._current, self._previous)
        return any(hmac.compare_digest(hmac.new(key, peer, hashlib.sha256).digest(), cookie) for key in keys)


def peer_key(address: tuple) -> bytes:
    """What a cookie is bound to: the peer's transport address as seen by this socket."""
    return f"{address[0]}|{address[1]}".encode()


@dataclass
class ListenResult:
    """What the listener made of one datagram from an unknown peer."""

    reply: list[bytes]  # HelloVerifyRequest datagrams to send back, if any
    connection: DtlsConnection | None  # set once a ClientHello carried a valid cookie
    refused: bool = False  # the cookie was valid but `admit` said no


class DtlsListener:
    """Stateless cookie exchange on the server (DTLSv1_listen); nothing per peer is kept until a cookie verifies."""

    def __init__(
        self, credentials: TlsFiles, *, now: float, mtu: int = DEFAULT_DTLS_MTU, own_record_layer: bool | None = None
    ) -> None:
        """OWN_RECORD_LAYER: hand established sessions to `opendots.transport.dtls_records` (default: yes, unless
        OPENDOTS_DTLS_RECORD_LAYER=openssl)."""
        self.own_record_layer = own_record_layer_default() if own_record_layer is None else own_record_layer
        self.context = server_context(credentials)
        self.cookies = CookieSecrets(now)
        self.mtu = mtu
        self._current_peer = b""
        self.context.set_cookie_generate_callback(lambda _ssl: self.cookies.make(self._current_peer))
        self.context.set_cookie_verify_callback(lambda _ssl, cookie: self.cookies.verify(self._current_peer, cookie))
        self._listener = self._new_listener()

    def _new_listener(self) -> SSL.Connection:
        ssl = SSL.Connection(self.context, None)
        ssl.set_accept_state()
        ssl.set_app_data(HandshakeNotes("client"))  # the peer is a client: a failed handshake is logged
        ssl.set_ciphertext_mtu(self.mtu)
        return ssl

    def receive(
        self, datagram: bytes, peer: tuple, now: float, admit: Callable[[], bool] | None = None
    ) -> ListenResult:
        """Process a datagram from a peer without a session. Non-ClientHellos are ignored (no reply, no state).

        ADMIT is asked once a ClientHello carries a valid cookie, before the server does any handshake work (its
        flight costs a signature): returning False drops the hello, so the table of unfinished handshakes stays
        bounded and a refused peer costs no more than the stateless cookie round."""
        if not is_client_hello(datagram):
            return ListenResult([], None)
        self.cookies.rotate_if_due(now)
        self._current_peer = peer_key(peer)
        listener = self._listener
        try:
            listener.bio_write(datagram)
            listener.DTLSv1_listen()
        except SSL.WantReadError:
            # No (valid) cookie: OpenSSL wrote a HelloVerifyRequest, or dropped garbage. Either way, no state kept.
            return ListenResult(self._drain(listener), None)
        except SSL.Error:
            self._listener = self._new_listener()  # a listener that saw an error is not trusted again
            return ListenResult([], None)
        self._listener = self._new_listener()
        if admit is not None and not admit():
            return ListenResult([], None, refused=True)
        notes = listener.get_app_data()
        if isinstance(notes, HandshakeNotes):  # a refused handshake is logged with the address it came from
            notes.peer = peer_label(peer)
        connection = DtlsConnection(listener, now=now, mtu=self.mtu, own_records=self.own_record_layer)
        connection._advance_handshake()  # the listener hands over a verified hello
        return ListenResult([], connection)

    def _drain(self, ssl: SSL.Connection) -> list[bytes]:
        output = drain_output(ssl)
        if len(output) <= self.mtu:  # whole records that fit one datagram together (nearly always): as they are
            return [output] if output else []
        return pack_records(split_records(output), self.mtu)
