"""The DTLS client as an aiocoap message interface: one connected UDP socket and session per server, resumed when
re-opened, a deadline on handshakes."""

from __future__ import annotations

import asyncio
import socket
import time

import aiocoap
from aiocoap import error as coap_error
from aiocoap import interfaces
from aiocoap.numbers import COAPS_PORT
from aiocoap.util import hostportsplit
from OpenSSL import SSL

from opendots.config import TlsFiles
from opendots.transport.dtls import (
    DtlsConnection,
    DtlsError,
    DtlsState,
    HandshakeCompleted,
    SessionExpired,
    client_context,
)
from opendots.transport.dtls_remote import DtlsInterfaceBase, DtlsRemote, log
from opendots.transport.profile import DEFAULT_DTLS_MTU

HANDSHAKE_DEADLINE = 30.0  # a client gives up on a handshake not done by then (OpenSSL alone would retry ~60 s)


class _ClientSocket(asyncio.DatagramProtocol):
    def __init__(self, interface: DtlsClientInterface, remote: DtlsRemote) -> None:
        self.interface = interface
        self.remote = remote
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self.interface._datagram_from_peer(self.remote, data)
        except Exception:
            log.exception("dropped a datagram from %s after an internal error", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while handshaking: the server is not there (yet); OpenSSL's timer retries.
        log.debug("socket error towards %s: %s", self.remote.hostinfo, exc)


class DtlsClientInterface(DtlsInterfaceBase):
    """DTLS client: one connected UDP socket and session per server (host, port), resumed when re-opened."""

    handshake_timeout = HANDSHAKE_DEADLINE  # requests queued on a session that never comes up fail after this

    def __init__(
        self,
        message_manager: interfaces.MessageManager,
        loop: asyncio.AbstractEventLoop,
        credentials: TlsFiles,
        server_name: str,
        mtu: int = DEFAULT_DTLS_MTU,
        name_source: str | None = None,
    ) -> None:
        super().__init__(message_manager, loop)
        self.context: SSL.Context = client_context(credentials, server_name, name_source)
        self.server_name = server_name
        self.mtu = mtu
        self.pool: dict[tuple[str, int], DtlsRemote] = {}
        self._sessions_for_resumption: dict[tuple[str, int], SSL.Session] = {}
        self._sockets: dict[DtlsRemote, asyncio.DatagramTransport] = {}
        self._handshakes: dict[DtlsRemote, asyncio.Future[None]] = {}

    async def determine_remote(self, message: aiocoap.Message) -> DtlsRemote | None:
        if message.requested_scheme != "coaps":
            return None
        if self._message_manager is None:
            raise coap_error.LibraryShutdown()
        if message.unresolved_remote is not None:
            host, port = hostportsplit(message.unresolved_remote)
        elif message.opt.uri_host:
            host, port = message.opt.uri_host, message.opt.uri_port
        else:
            raise ValueError("no host to send to (neither .unresolved_remote nor Uri-Host set)")
        return await self.connect(host, port or COAPS_PORT)

    async def connect(self, host: str, port: int) -> DtlsRemote:
        """The live session to HOST:PORT, opened (and resumed if we had one before) when needed."""
        key = (host, port)
        remote = self.pool.get(key)
        if remote is not None and not remote.connection.closed:
            return remote
        try:
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as failure:
            raise coap_error.ResolutionError(f"cannot resolve {host!r}: {failure}") from failure
        family, _, _, _, address = infos[0]
        connection = DtlsConnection.connect(
            self.context, now=self._loop.time(), mtu=self.mtu, session=self._sessions_for_resumption.get(key)
        )
        remote = DtlsRemote(self, connection, address[:2], ("", 0))
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _ClientSocket(self, remote), remote_addr=address[:2], family=family
        )
        remote.local = transport.get_extra_info("sockname")[:2]
        remote._send_datagram = transport.sendto
        self._sockets[remote] = transport
        self.pool[key] = remote
        remote.flush()
        self._arm_timer(remote)
        self._loop.call_later(self.handshake_timeout, self._give_up_handshake, remote)
        return remote

    def _give_up_handshake(self, remote: DtlsRemote) -> None:
        if remote.connection.state is DtlsState.HANDSHAKING:
            remote.connection.close()
            self._closed(
                remote, SessionExpired(f"no DTLS handshake with {remote.hostinfo} in {self.handshake_timeout:g} s")
            )

    async def wait_established(self, remote: DtlsRemote, timeout: float = HANDSHAKE_DEADLINE) -> None:
        """Wait for REMOTE's handshake; raises the DtlsError that ended it, or TimeoutError."""
        if remote.connection.established:
            return
        if remote.connection.closed:
            raise DtlsError("session is closed")
        waiter = self._handshakes.setdefault(remote, self._loop.create_future())
        await asyncio.wait_for(asyncio.shield(waiter), timeout)

    def _on_established(self, remote: DtlsRemote, event: HandshakeCompleted) -> None:
        remote.resumed = event.resumed
        if remote.flight_sent_at is not None:  # the server's Finished answered our last flight
            remote.handshake_rtt = time.monotonic() - remote.flight_sent_at
        for key, value in self.pool.items():
            if value is remote and remote.connection.session is not None:
                self._sessions_for_resumption[key] = remote.connection.session
        waiter = self._handshakes.pop(remote, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _closed(self, remote: DtlsRemote, failure: DtlsError) -> None:
        waiter = self._handshakes.pop(remote, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
        if self._message_manager is not None and remote.connection.identity is None:
            # handshake never completed: fail whatever aiocoap queued on this remote
            self._message_manager.dispatch_error(failure, remote)
        super()._closed(remote, failure)

    def _is_live(self, remote: DtlsRemote) -> bool:
        return not remote.connection.closed and remote in self._sockets

    def _forget(self, remote: DtlsRemote) -> None:
        for key, value in list(self.pool.items()):
            if value is remote:
                del self.pool[key]
        transport = self._sockets.pop(remote, None)
        if transport is not None:
            self._loop.call_soon(transport.close)  # after the final alert has been handed to the socket

    async def shutdown(self) -> None:
        for remote in list(self._sockets):
            remote.connection.close()
            remote.flush()
            if remote._timer is not None:
                remote._timer.cancel()
            self._forget(remote)
        self._message_manager = None
