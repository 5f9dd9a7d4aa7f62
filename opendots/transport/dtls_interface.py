"""asyncio shell around the sans-I/O DTLS core, exposed to aiocoap as a CoAP message interface (coaps://).

aiocoap stacks its MessageManager (CON/ACK, message IDs, deduplication) and TokenManager (requests, Observe,
Block2) on top, so everything CoAP happens there; this module only moves datagrams, runs timers and keeps the
session table. Each session is one `DtlsRemote`, which aiocoap uses as `message.remote`: setting
`msg.remote = earlier_request.remote` sends over that peer's existing session, in either direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap import interfaces
from aiocoap.numbers import COAPS_PORT
from aiocoap.numbers.codes import EMPTY
from aiocoap.numbers.types import RST
from aiocoap.util import hostportjoin, hostportsplit
from OpenSSL import SSL

from opendots.config import TlsFiles
from opendots.transport.coap_checks import inspect_datagram, refused_request
from opendots.transport.dtls import (
    ApplicationData,
    ConnectionClosed,
    DtlsConnection,
    DtlsError,
    DtlsEvent,
    DtlsListener,
    DtlsState,
    HandshakeCompleted,
    SendQueueFull,
    SessionExpired,
    client_context,
    is_client_hello,
)
from opendots.transport.events import SessionEvent, SessionListener, notify
from opendots.transport.handshakes import HandshakeTable
from opendots.transport.identity import PeerIdentity
from opendots.transport.profile import DEFAULT_DTLS_MTU

log = logging.getLogger(__name__)

HANDSHAKE_DEADLINE = 30.0  # a client gives up on a handshake not done by then (OpenSSL alone would retry ~60 s)
# Server side: a handshake that passed the cookie round but is not done after this is dropped (OpenSSL's server
# flight is retransmitted after 1, 2, 4 s: three retransmissions fit). Under pressure (table full) handshakes older
# than HANDSHAKE_MIN_AGE make room for newcomers, so peers that never finish cannot lock others out.
SERVER_HANDSHAKE_TIMEOUT = 10.0
HANDSHAKE_MIN_AGE = 1.0
MAX_HANDSHAKES_PER_ADDRESS = 8
SWEEP_INTERVAL_MAX = 5.0


def _hostinfo(address: tuple) -> str:
    host, port = address[0], address[1]
    return hostportjoin(host, None if port == COAPS_PORT else port)


class DtlsRemote(interfaces.EndpointAddress):
    """One DTLS session as aiocoap sees a peer. Identity-compared: a new session is a new remote (RFC 7252 §9.1.2)."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    def __init__(self, owner: _DtlsInterfaceBase, connection: DtlsConnection, peer: tuple, local: tuple) -> None:
        self.owner = owner
        self.connection = connection
        self.peer = peer
        self.local = local
        self._send_datagram: Callable[[bytes], None] = lambda _datagram: None
        self._timer: asyncio.TimerHandle | None = None
        self.table_key: object = None

    def __repr__(self) -> str:
        return f"<DtlsRemote {self.hostinfo} {self.connection.state.value}>"

    @property
    def peer_identity(self) -> PeerIdentity | None:
        return self.connection.identity

    @property
    def authenticated_claims(self) -> tuple[PeerIdentity, ...]:
        return (self.connection.identity,) if self.connection.identity is not None else ()

    @property
    def hostinfo(self) -> str:
        return _hostinfo(self.peer)

    @property
    def hostinfo_local(self) -> str:
        return _hostinfo(self.local)

    @property
    def uri_base(self) -> str:
        return "coaps://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coaps://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        return self

    # Keep every CoAP message inside one DTLS record that fits the path MTU: room for the CoAP header, a token
    # and the usual options is left out of the record's cleartext budget.
    _COAP_OVERHEAD = 64

    @property
    def maximum_payload_size(self) -> int:
        return min(1124, self.connection.cleartext_budget - self._COAP_OVERHEAD)

    @property
    def maximum_block_size_exp(self) -> int:
        budget = self.connection.cleartext_budget - self._COAP_OVERHEAD
        exponent = 6  # 1024-byte blocks at most (no BERT over UDP)
        while exponent > 0 and 2 ** (exponent + 4) > budget:
            exponent -= 1
        return exponent

    def flush(self) -> None:
        for datagram in self.connection.datagrams_to_send():
            self._send_datagram(datagram)


class _DtlsInterfaceBase(interfaces.MessageInterface):
    def __init__(self, message_manager: interfaces.MessageManager, loop: asyncio.AbstractEventLoop) -> None:
        self._message_manager: interfaces.MessageManager | None = message_manager
        self._loop = loop

    # -- MessageInterface

    def send(self, message: aiocoap.Message) -> None:
        remote = message.remote
        if not isinstance(remote, DtlsRemote) or remote.connection.closed:
            log.info("not sending %r: its DTLS session is gone", message)
            return
        try:
            remote.connection.send(message.encode())
        except SendQueueFull as failure:
            log.warning("dropping %r: %s", message, failure)  # CON retransmission or the caller's timeout copes
            return
        except DtlsError as failure:
            self._closed(remote, failure)
            return
        remote.flush()
        self._arm_timer(remote)

    async def recognize_remote(self, remote: object) -> bool:
        return isinstance(remote, DtlsRemote) and remote.owner is self and self._is_live(remote)

    def drop(self, remote: DtlsRemote, reason: str = "closed by the application") -> None:
        """Close REMOTE's session now (close_notify) and fail what is pending on it; the next request re-handshakes."""
        if remote.connection.closed:
            return
        remote.connection.close()
        self._closed(remote, DtlsError(reason))

    # -- shared plumbing

    def _is_live(self, remote: DtlsRemote) -> bool:
        raise NotImplementedError

    def _forget(self, remote: DtlsRemote) -> None:
        raise NotImplementedError

    def _handle_events(self, remote: DtlsRemote, events: list[DtlsEvent]) -> None:
        for event in events:
            if isinstance(event, ApplicationData):
                self._deliver(remote, event.data)
            elif isinstance(event, HandshakeCompleted):
                log.debug("DTLS session with %s established (resumed=%s)", remote.hostinfo, event.resumed)
                self._on_established(remote, event)
            elif isinstance(event, ConnectionClosed):
                self._closed(remote, event.error)

    def _on_established(self, remote: DtlsRemote, event: HandshakeCompleted) -> None:
        pass

    def _deliver(self, remote: DtlsRemote, plaintext: bytes) -> None:
        if self._message_manager is None:
            return
        inspection = inspect_datagram(plaintext)  # RFC 7252 checks aiocoap's decoder does not make
        if inspection.action == "ok":
            if inspection.cleaned is not None:  # elective options of invalid length left out (RFC 7252 §5.4.3)
                plaintext = inspection.cleaned
            try:
                message = aiocoap.Message.decode(plaintext, remote=remote)
            except (coap_error.UnparsableMessage, UnicodeDecodeError, ValueError) as problem:
                # e.g. a Location-Path that is not UTF-8: a request gets 4.00, anything else is dropped
                if plaintext[1] >> 5 != 0 or (plaintext[0] >> 4) & 3 > 1:
                    log.info("ignoring an undecodable CoAP message from %s: %s", remote.hostinfo, problem)
                    return
                message = refused_request(plaintext, remote, "4.00", f"undecodable option: {problem}")
        elif inspection.action == "refuse":
            message = refused_request(plaintext, remote, inspection.code, inspection.diagnostic)
        else:
            log.info("%s a malformed CoAP message from %s", inspection.action, remote.hostinfo)
            if inspection.action == "reset":  # RFC 7252 §4.2, §4.3: reject with a Reset (empty, same Message ID)
                self._send_reset(remote, inspection.mid)
            return
        self._message_manager.dispatch_message(message)

    def _send_reset(self, remote: DtlsRemote, mid: int) -> None:
        if remote.connection.closed:
            return
        reset = aiocoap.Message(code=EMPTY)
        reset.mtype, reset.mid = RST, mid
        with contextlib.suppress(DtlsError):
            remote.connection.send(reset.encode())
        remote.flush()

    def _closed(self, remote: DtlsRemote, failure: DtlsError) -> None:
        log.info("DTLS session with %s ended: %s", remote.hostinfo, failure)
        remote.flush()  # a close_notify or fatal alert may be waiting
        if remote._timer is not None:
            remote._timer.cancel()
            remote._timer = None
        self._forget(remote)
        if self._message_manager is not None and remote.connection.identity is not None:
            self._message_manager.dispatch_error(failure, remote)

    def _arm_timer(self, remote: DtlsRemote) -> None:
        if remote._timer is None and remote.connection.established:
            return  # OpenSSL only times handshake flights: nothing to ask of it once established (every datagram)
        if remote._timer is not None:
            remote._timer.cancel()
            remote._timer = None
        due_in = remote.connection.timer_due_in()
        if due_in is not None:
            remote._timer = self._loop.call_later(due_in, self._timer_fired, remote)

    def _timer_fired(self, remote: DtlsRemote) -> None:
        remote._timer = None
        events = remote.connection.handle_timer(self._loop.time())
        remote.flush()
        self._handle_events(remote, events)
        if not remote.connection.closed:
            self._arm_timer(remote)

    def _datagram_from_peer(self, remote: DtlsRemote, datagram: bytes) -> None:
        events = remote.connection.receive_datagram(datagram, self._loop.time())
        remote.flush()
        self._handle_events(remote, events)
        if not remote.connection.closed:
            self._arm_timer(remote)


# ------------------------------------------------------------------------------------------------------ server


@dataclass
class SessionStats:
    sessions: int
    established: int
    handshaking: int
    accepted_total: int
    hello_verify_sent: int
    dropped_datagrams: int
    refused_full: int
    expired_total: int
    resumed_total: int
    refused_per_address: int = 0
    """Verified or fresh ClientHellos dropped because their source address already had its share of handshakes."""
    handshakes_evicted: int = 0
    """Unfinished handshakes dropped to make room for a newcomer while the handshake table was full."""


class _ServerSocket(asyncio.DatagramProtocol):
    def __init__(self, interface: DtlsServerInterface) -> None:
        self.interface = interface
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self.interface._datagram_received(self, data, addr)
        except Exception:  # the listening socket must survive anything a peer sends
            log.exception("dropped a datagram from %s after an internal error", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error on DTLS server socket: %s", exc)


class DtlsServerInterface(_DtlsInterfaceBase):
    """DTLS server: stateless cookies, session table with a cap and idle expiry, close_notify on shutdown."""

    def __init__(
        self,
        message_manager: interfaces.MessageManager,
        loop: asyncio.AbstractEventLoop,
        credentials: TlsFiles,
        *,
        max_sessions: int,
        idle_timeout: float,
        mtu: int = DEFAULT_DTLS_MTU,
        max_handshakes: int | None = None,
        max_handshakes_per_address: int = MAX_HANDSHAKES_PER_ADDRESS,
        handshake_timeout: float = SERVER_HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(message_manager, loop)
        self.listener = DtlsListener(credentials, now=loop.time(), mtu=mtu)
        self.max_sessions = max_sessions
        self.handshakes: HandshakeTable[DtlsRemote] = HandshakeTable(
            limit=max_handshakes if max_handshakes is not None else max(64, max_sessions // 10),
            per_address=max_handshakes_per_address,
            timeout=handshake_timeout,
            min_age=HANDSHAKE_MIN_AGE,
        )
        self.idle_timeout = idle_timeout
        self.sessions: dict[tuple[int, tuple], DtlsRemote] = {}
        self.sockets: list[_ServerSocket] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._accepted = self._hello_verify = self._dropped = self._refused = self._expired = self._resumed = 0
        self.session_listeners: list[SessionListener] = []

    @classmethod
    async def create(
        cls,
        message_manager: interfaces.MessageManager,
        *,
        credentials: TlsFiles,
        bind: list[tuple[str, int]],
        max_sessions: int,
        idle_timeout: float,
        mtu: int = DEFAULT_DTLS_MTU,
        **handshake_limits: Any,
    ) -> DtlsServerInterface:
        """HANDSHAKE_LIMITS: max_handshakes, max_handshakes_per_address, handshake_timeout (see __init__)."""
        loop = asyncio.get_running_loop()
        self = cls(
            message_manager,
            loop,
            credentials,
            max_sessions=max_sessions,
            idle_timeout=idle_timeout,
            mtu=mtu,
            **handshake_limits,
        )
        try:
            for host, port in bind:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: _ServerSocket(self), local_addr=(host, port), family=family
                )
                self.sockets.append(protocol)
        except BaseException:
            await self.shutdown()
            raise
        self._sweeper = loop.create_task(self._sweep_forever(), name="DTLS idle session sweeper")
        return self

    def local_addresses(self) -> list[tuple]:
        return [sock.transport.get_extra_info("sockname") for sock in self.sockets if sock.transport is not None]

    def stats(self) -> SessionStats:
        established = sum(1 for remote in self.sessions.values() if remote.connection.established)
        return SessionStats(
            sessions=len(self.sessions),
            established=established,
            handshaking=len(self.sessions) - established,
            accepted_total=self._accepted,
            hello_verify_sent=self._hello_verify,
            dropped_datagrams=self._dropped,
            refused_full=self._refused,
            expired_total=self._expired,
            resumed_total=self._resumed,
            refused_per_address=self.handshakes.refused_per_address,
            handshakes_evicted=self.handshakes.evicted,
        )

    def sessions_for(self, identity_cuid: str) -> list[DtlsRemote]:
        return [
            remote
            for remote in self.sessions.values()
            if remote.connection.identity is not None and remote.connection.identity.cuid == identity_cuid
        ]

    # -- input

    def _datagram_received(self, sock: _ServerSocket, data: bytes, peer: tuple) -> None:
        key = (id(sock), peer[:2])
        existing = self.sessions.get(key)
        if existing is not None and not (existing.connection.established and is_client_hello(data)):
            self._datagram_from_peer(existing, data)
            return
        # Either a stranger, or a peer with an established session sending a fresh epoch-0 ClientHello: a client
        # that restarted on the same address and port (RFC 6347 §4.2.8). It gets the same cookie exchange, and
        # only a verified hello replaces the old session, so a spoofed hello cannot tear sessions down.
        if self._message_manager is None:
            return
        now = self._loop.time()
        address = peer[0]
        if existing is None:
            self._expire_handshakes(now)
            if len(self.sessions) >= self.max_sessions:
                self._refused += 1
                return
            if self.handshakes.address_full(address):
                return  # not even a HelloVerifyRequest: this address holds its share of unfinished handshakes
        result = self.listener.receive(data, peer[:2], now, lambda: self._admit(address, now))
        if result.refused:
            self._refused += 1
            return
        if result.connection is not None and existing is not None:
            existing.connection.close()
            self._closed(existing, DtlsError("peer started a new session from the same address"))
        for reply in result.reply:
            sock.transport.sendto(reply, peer)
        if result.reply:
            self._hello_verify += 1
        if result.connection is None:
            if not result.reply:
                self._dropped += 1
            return
        self._accepted += 1
        local = sock.transport.get_extra_info("sockname")
        remote = DtlsRemote(self, result.connection, peer[:2], local)
        transport = sock.transport
        remote._send_datagram = lambda datagram: transport.sendto(datagram, peer)
        remote.table_key = key
        self.sessions[key] = remote
        if not result.connection.established:
            self.handshakes.add(remote, address, now)
        remote.flush()
        self._arm_timer(remote)

    @property
    def max_handshaking(self) -> int:
        return self.handshakes.limit

    @property
    def handshake_timeout(self) -> float:
        return self.handshakes.timeout

    def _admit(self, address: str, now: float) -> bool:
        """A ClientHello from ADDRESS carried a valid cookie (so the address is real): may its handshake start?
        (opendots.transport.handshakes: bounded in all and per address; a full table makes room if it fairly can,
        otherwise the client's own timer resends its hello later.)"""
        admitted, victim = self.handshakes.admit(address, now)
        if victim is not None:
            victim.connection.close()
            self._closed(victim, SessionExpired("unfinished handshake dropped to make room"))
        return admitted

    def _expire_handshakes(self, now: float) -> None:
        """Drop unfinished handshakes older than the handshake timeout, oldest first (O(1) when none is due)."""
        while (remote := self.handshakes.oldest_due(now)) is not None:
            remote.connection.close()
            self._expired += 1
            self._closed(remote, SessionExpired("handshake did not complete"))

    def _on_established(self, remote: DtlsRemote, event: HandshakeCompleted) -> None:
        self.handshakes.discard(remote)
        self._resumed += event.resumed
        notify(self.session_listeners, SessionEvent("established", remote, event.identity, "dtls"))

    def _closed(self, remote: DtlsRemote, failure: DtlsError) -> None:
        was_established = remote.connection.identity is not None and self.sessions.get(remote.table_key) is remote
        super()._closed(remote, failure)
        if was_established:
            notify(
                self.session_listeners, SessionEvent("closed", remote, remote.connection.identity, "dtls", str(failure))
            )

    def _is_live(self, remote: DtlsRemote) -> bool:
        return remote.connection.established and self.sessions.get(remote.table_key) is remote

    def _forget(self, remote: DtlsRemote) -> None:
        self.handshakes.discard(remote)
        if self.sessions.get(remote.table_key) is remote:
            del self.sessions[remote.table_key]

    async def determine_remote(self, message: aiocoap.Message) -> None:
        # A DTLS server never opens sessions; requests to clients go over `msg.remote = request.remote`.
        return None

    # -- expiry

    def expire(self, now: float) -> int:
        """Drop idle sessions and stalled handshakes; returns how many went."""
        gone = 0
        for remote in list(self.sessions.values()):
            connection = remote.connection
            if connection.established:
                if now - connection.last_activity < self.idle_timeout:
                    continue
                connection.close()  # close_notify: the peer learns at once instead of after its next timeout
                failure: DtlsError = SessionExpired(f"idle for more than {self.idle_timeout:g} s")
            else:
                if now - connection.created_at < self.handshake_timeout:
                    continue
                connection.close()
                failure = SessionExpired("handshake did not complete")
            self._expired += 1
            gone += 1
            self._closed(remote, failure)
        return gone

    async def _sweep_forever(self) -> None:
        interval = min(SWEEP_INTERVAL_MAX, max(0.05, min(self.idle_timeout, self.handshake_timeout) / 4))
        while True:
            await asyncio.sleep(interval)
            self.expire(self._loop.time())

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for remote in list(self.sessions.values()):
            remote.connection.close()
            remote.flush()
            if remote._timer is not None:
                remote._timer.cancel()
        self.sessions.clear()
        self.handshakes.clear()
        self._message_manager = None
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.close()


# ------------------------------------------------------------------------------------------------------ client


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


class DtlsClientInterface(_DtlsInterfaceBase):
    """DTLS client: one connected UDP socket and session per server (host, port), resumed when re-opened."""

    handshake_timeout = HANDSHAKE_DEADLINE  # requests queued on a session that never comes up fail after this

    def __init__(
        self,
        message_manager: interfaces.MessageManager,
        loop: asyncio.AbstractEventLoop,
        credentials: TlsFiles,
        server_name: str,
        mtu: int = DEFAULT_DTLS_MTU,
    ) -> None:
        super().__init__(message_manager, loop)
        self.context: SSL.Context = client_context(credentials, server_name)
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


def server_interface_factory(**options: Any) -> Callable[[interfaces.MessageManager], Any]:
    async def factory(message_manager: interfaces.MessageManager) -> DtlsServerInterface:
        return await DtlsServerInterface.create(message_manager, **options)

    return factory


def client_interface_factory(credentials: TlsFiles, server_name: str) -> Callable[[interfaces.MessageManager], Any]:
    async def factory(message_manager: interfaces.MessageManager) -> DtlsClientInterface:
        return DtlsClientInterface(message_manager, asyncio.get_running_loop(), credentials, server_name)

    return factory
