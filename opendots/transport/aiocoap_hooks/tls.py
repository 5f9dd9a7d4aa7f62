"""CoAP over TLS (RFC 8323) through aiocoap's TCP/TLS transports: a server that binds the port it is given and
keeps refused handshakes out of its pool, a client with our own certificate, Ping/Pong, Release, the peer
certificate, idle connections.

Private names: listed in each docstring; checked by tests/contract/test_aiocoap_hooks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any, ClassVar

import aiocoap
from aiocoap import interfaces
from aiocoap.numbers.codes import PING, PONG, RELEASE
from aiocoap.transports.rfc8323common import RFC8323Remote
from aiocoap.transports.tcp import TcpConnection
from aiocoap.transports.tls import TLSClient, TLSServer

from opendots.transport.coap_checks import frame_size, inspect_frame, refused_frame
from opendots.transport.events import SessionEvent, SessionListener, notify
from opendots.transport.identity import PeerIdentity


class _TlsServerConnection(TcpConnection):
    """A server-side TLS connection that joins its server's pool only once the TLS handshake has succeeded.

    aiocoap's own factory adds every accepted TCP connection to `TCPServer._pool` before TLS runs; asyncio never
    reports a failed handshake to the protocol, so each refused (e.g. untrusted) client would stay in the pool
    forever and break `TCPServer.shutdown`. Private: `TcpConnection`, `TCPServer._pool`, `TcpConnection._ctx`.
    """

    max_connections = 0  # set per server class below; 0 means unlimited
    refused_full = 0  # connections closed at once for the cap, counted on the per-server class
    session_listeners: ClassVar[list[SessionListener]] = []  # set per server class below

    def connection_made(self, transport: Any) -> None:
        self._opendots_pending = bytearray()  # bytes of a frame not yet complete (data_received)
        pool = self._ctx._pool
        if self.max_connections and len(pool) >= self.max_connections:
            transport.abort()  # over the session cap: refuse before any CoAP state exists
            type(self).refused_full += 1
            self._ctx = None
            return
        pool.add(self)
        self.opendots_last_activity = time.monotonic()
        super().connection_made(transport)
        notify(self.session_listeners, SessionEvent("established", self, _tls_identity(transport), "tls"))

    def data_received(self, data: bytes) -> None:
        """Hand aiocoap whole frames, each first checked on its raw bytes (opendots.transport.coap_checks): aiocoap's
        decoder raises out of `data_received` on a Uri-Path that is not UTF-8 (the client got no answer, the log a
        traceback), and acts on elective options of invalid length that RFC 7252 §5.4.3 says to ignore.

        Private: `RFC8323Remote._my_max_message_size`, `_remote_settings` and `_ctx._dispatch_incoming`, the route
        aiocoap's own `data_received` takes for a decoded request."""
        self.opendots_last_activity = time.monotonic()
        pending = self._opendots_pending
        pending += data
        while (size := frame_size(pending)) is not None:
            if size > self._my_max_message_size:
                super().data_received(bytes(pending))  # aiocoap aborts the connection ("Overly large message")
                pending.clear()
                return
            if len(pending) < size:
                return
            frame = bytes(pending[:size])
            del pending[:size]
            inspection = inspect_frame(frame)
            if inspection.action == "refuse":
                if self._remote_settings is None:
                    self.abort("No CSM received")  # as aiocoap does for any request before the peer's CSM
                    return
                self._ctx._dispatch_incoming(self, refused_frame(frame, self, inspection.code, inspection.diagnostic))
            else:
                super().data_received(inspection.cleaned if inspection.cleaned is not None else frame)
            if self._ctx is None or self._transport is None or self._transport.is_closing():
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ctx is not None:
            super().connection_lost(exc)
            identity = _tls_identity(self._transport) if self._transport is not None else None
            reason = str(exc) if exc is not None else "connection closed"
            notify(self.session_listeners, SessionEvent("closed", self, identity, "tls", reason))


def _tls_identity(transport: Any) -> PeerIdentity | None:
    """The peer's identity, None when there is none (yet): a connection lost in the middle of its handshake (a
    Happy Eyeballs attempt cancelled by its client) has no certificate, and getpeercert() raises then."""
    ssl_object = transport.get_extra_info("ssl_object")
    try:
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    except ValueError:  # "handshake not done yet"
        return None
    return PeerIdentity.from_der(der) if der else None


async def append_tls_server(
    context: aiocoap.Context,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    max_connections: int = 0,
    session_listeners: list[SessionListener] | None = None,
    reuse_port: bool = False,
) -> interfaces.TokenInterface:
    """Listen for CoAP over TLS (RFC 8323) on HOST:PORT exactly (port 0 picks a free one).

    Private: `Context._append_tokenmanaged_transport`, and a TLSServer assembled by hand (its attributes
    `_tokenmanager`, `log`, `server`), because `TLSServer.create_server` binds to the given port + 1 for
    coaps+tcp and uses the leaking connection factory described in `_TlsServerConnection`.
    """
    created: list[interfaces.TokenInterface] = []

    async def factory(token_manager: Any) -> interfaces.TokenInterface:
        server = TLSServer()
        server._tokenmanager = token_manager
        server.log = context.log
        server.opendots_connection_class = connection_class = type(
            "_CappedTlsServerConnection",
            (_TlsServerConnection,),
            {
                "max_connections": max_connections,
                "session_listeners": session_listeners if session_listeners is not None else [],
            },
        )
        # "::" means every address, as it does for the dual-stack UDP socket; asyncio would bind IPv6 only
        # (it sets IPV6_V6ONLY), so let it open one socket per address family instead.
        listen_host = None if host in ("::", "") else host
        server.server = await context.loop.create_server(
            lambda: connection_class(server, context.log, context.loop, is_server=True),
            listen_host,
            port,
            ssl=ssl_context,
            reuse_port=reuse_port or None,
        )
        created.append(server)
        return server

    await context._append_tokenmanaged_transport(factory)
    return created[0]


def tls_server_sockets(server: interfaces.TokenInterface) -> list[Any]:
    """The listening sockets of a TLS server made by `append_tls_server` (private: TCPServer.server)."""
    return list(server.server.sockets)


class _FixedCertificateTLSClient(TLSClient):
    """aiocoap's TLS client with our own SSL context (client certificate, CA, pinned server name).

    Private: `TLSClient._ssl_context_factory` is the only place aiocoap asks for a client SSL context; its
    credentials map can only carry a CA file, not a client certificate.
    """

    opendots_ssl_context: ssl.SSLContext

    def _ssl_context_factory(self, hostinfo: str | None) -> ssl.SSLContext:
        return self.opendots_ssl_context


async def append_tls_client(context: aiocoap.Context, ssl_context: ssl.SSLContext) -> None:
    """Let CONTEXT reach coaps+tcp:// URIs with SSL_CONTEXT (private: `Context._append_tokenmanaged_transport`)."""

    async def factory(token_manager: Any) -> interfaces.TokenInterface:
        client = await _FixedCertificateTLSClient.create_client_transport(token_manager, context.log, context.loop)
        client.opendots_ssl_context = ssl_context
        return client

    await context._append_tokenmanaged_transport(factory)


def is_tls_remote(remote: object) -> bool:
    return isinstance(remote, TcpConnection)


def tls_connection_closed(remote: object) -> bool:
    """Whether the TLS connection behind REMOTE has closed or is closing (private: `TcpConnection._transport`)."""
    transport = getattr(remote, "_transport", None)
    return transport is None or transport.is_closing()


def tls_peer_certificate_der(remote: object) -> bytes | None:
    """The DER certificate the TLS peer presented (private: `TcpConnection._transport`, the asyncio transport
    whose `ssl_object` extra info is the only route to the peer certificate)."""
    transport = getattr(remote, "_transport", None)
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)


async def send_tls_ping(remote: object, token: bytes) -> None:
    """RFC 8323 §5.4 Ping/Pong over a TLS connection. Returns when the matching Pong arrives.

    Private: `RFC8323Remote._send_message` and `_process_signaling` (aiocoap answers Pings but drops Pongs
    silently, so we wrap the per-connection signaling handler once to see them).
    """
    if not isinstance(remote, RFC8323Remote):
        raise TypeError(f"not a CoAP-over-TLS remote: {remote!r}")
    waiters: dict[bytes, asyncio.Future[None]] = remote.__dict__.setdefault("_opendots_pong_waiters", {})
    if "_opendots_wrapped_signaling" not in remote.__dict__:
        original = remote._process_signaling

        def process_signaling(message: aiocoap.Message) -> None:
            if message.code == PONG:
                waiter = waiters.pop(bytes(message.token), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            original(message)

        remote._process_signaling = process_signaling
        remote.__dict__["_opendots_wrapped_signaling"] = True
    answered = asyncio.get_running_loop().create_future()
    waiters[token] = answered
    try:
        ping = aiocoap.Message(code=PING)
        ping.token = token
        remote._send_message(ping)
        await answered
    finally:
        waiters.pop(token, None)


def tls_server_connection_count(server: interfaces.TokenInterface) -> int:
    """Open TLS connections of a TLS server (private: `TCPServer._pool`)."""
    return len(server._pool)


def tls_server_refused(server: interfaces.TokenInterface) -> int:
    """Connections a TLS server closed at once because it held max_connections (see `_TlsServerConnection`)."""
    connection_class = getattr(server, "opendots_connection_class", None)
    return connection_class.refused_full if connection_class is not None else 0


def close_idle_tls_connections(server: interfaces.TokenInterface, idle_timeout: float, now: float) -> int:
    """Send Release (RFC 8323 §5.5) and close server-side TLS connections silent for IDLE_TIMEOUT seconds.

    NOW is a `time.monotonic()` reading. Private: `TCPServer._pool`, `RFC8323Remote._send_message`,
    `TcpConnection._transport`.
    """
    closed = 0
    for connection in list(server._pool):
        last = getattr(connection, "opendots_last_activity", now)
        if now - last < idle_timeout or connection._transport is None:
            continue
        with contextlib.suppress(Exception):  # the peer may already be gone; closing is all that matters
            connection._send_message(aiocoap.Message(code=RELEASE))
        connection._transport.close()
        closed += 1
    return closed


def close_tls_connection(remote: object) -> None:
    """Close a CoAP-over-TLS connection after a Release message (private: `RFC8323Remote._send_message`,
    `TcpConnection._transport`)."""
    transport = getattr(remote, "_transport", None)
    if transport is None or transport.is_closing():
        return
    with contextlib.suppress(Exception):
        remote._send_message(aiocoap.Message(code=RELEASE))
    transport.close()
