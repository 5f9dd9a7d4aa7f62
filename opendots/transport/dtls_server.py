"""The DTLS server as an aiocoap message interface: stateless cookies, a session table with a cap and idle expiry,
bounded unfinished handshakes, close_notify on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import socket
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap import interfaces

from opendots.config import TlsFiles
from opendots.transport.dtls import DtlsError, HandshakeCompleted, SessionExpired, is_client_hello
from opendots.transport.dtls_listener import DtlsListener
from opendots.transport.dtls_remote import DtlsInterfaceBase, DtlsRemote, log
from opendots.transport.events import SessionEvent, SessionListener, notify
from opendots.transport.handshakes import HandshakeTable
from opendots.transport.profile import DEFAULT_DTLS_MTU

# A handshake that passed the cookie round but is not done after this is dropped (OpenSSL's server flight is
# retransmitted after 1, 2, 4 s: three retransmissions fit). Under pressure (table full) handshakes older than
# HANDSHAKE_MIN_AGE make room for newcomers, so peers that never finish cannot lock others out.
SERVER_HANDSHAKE_TIMEOUT = 10.0
HANDSHAKE_MIN_AGE = 1.0
MAX_HANDSHAKES_PER_ADDRESS = 8
SWEEP_INTERVAL_MAX = 5.0
SWEEP_SLICE = 1_000  # sessions an idle sweep visits before it lets the event loop run (then it goes on)
RECEIVE_BUFFER = 4 << 20  # bytes asked for the listening UDP socket (SO_RCVBUF)


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
        # The event loop calls the interface directly (no Python frame of ours in between, on every datagram);
        # `_datagram_received` keeps the socket alive whatever a peer sends.
        self.datagram_received = functools.partial(interface._datagram_received, self)  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error on DTLS server socket: %s", exc)


class DtlsServerInterface(DtlsInterfaceBase):
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
        self._deadlines: list[tuple[float, int, tuple[int, tuple]]] = []
        """Heap of (due, serial, table key), one entry per session: `due` is a time before which the session
        cannot expire (its last activity only moves later), so a sweep visits only the sessions that may be due,
        not all 20,000 every 5 s. Activity does not touch the heap: a visited session still active goes back in
        at its new due time; entries of sessions already gone are dropped when they come up. Plain numbers and
        tuples of them, which the garbage collector does not track."""
        self.sweep_visits = 0
        """Heap entries the idle sweeps have looked at (tests count the work of a sweep with it)."""
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
        reuse_port: bool = False,
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
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _ServerSocket(self), local_addr=(host, port), family=family, reuse_port=reuse_port or None
                )
                # One socket receives every session's datagrams: with 20,000 sessions, the heartbeats that arrive
                # during a 0.3 s pause (a full garbage collection) overflow Linux's default 208 KiB and are lost.
                # The kernel caps this at net.core.rmem_max.
                with contextlib.suppress(OSError):
                    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
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
        try:
            key = (id(sock), peer[:2])
            existing = self.sessions.get(key)
            if existing is not None:
                # Nearly every datagram: one application record of an established session (DtlsConnection's shortcut,
                # no event objects); what `_datagram_from_peer` does with it, minus the steps that cannot apply.
                plaintext = existing.connection.receive_application(data, self._loop.time())
                if plaintext is not None:
                    if plaintext:
                        existing.answered = True
                        lean = self.lean
                        if lean is None or self._message_manager is None:
                            self._deliver(existing, plaintext)
                        else:  # _deliver, written out for the lean path's every message
                            self.messages_received += 1
                            if not lean.receive(existing, plaintext):
                                self._to_aiocoap(existing, plaintext)
                    if existing._timer is not None and not existing.connection.closed:
                        self._arm_timer(existing)
                    return
            if existing is not None and not (existing.connection.established and is_client_hello(data)):
                self._datagram_from_peer(existing, data)
            else:
                self._datagram_from_stranger(sock, data, peer, key, existing)
        except Exception:  # the listening socket must survive anything a peer sends
            log.exception("dropped a datagram from %s after an internal error", peer)

    def _datagram_from_stranger(
        self, sock: _ServerSocket, data: bytes, peer: tuple, key: tuple[int, tuple], existing: DtlsRemote | None
    ) -> None:
        """Either a stranger, or a peer with an established session sending a fresh epoch-0 ClientHello: a client
        that restarted on the same address and port (RFC 6347 §4.2.8). It gets the same cookie exchange, and only a
        verified hello replaces the old session, so a spoofed hello cannot tear sessions down."""
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
        remote._send_datagram = functools.partial(transport.sendto, addr=peer)  # no Python frame per datagram
        self.add_session(key, remote, address, now)
        remote.flush()
        self._arm_timer(remote)

    def add_session(self, key: tuple[int, tuple], remote: DtlsRemote, address: str, now: float) -> None:
        """Put REMOTE (a session just accepted from ADDRESS) into the table under KEY, and into the idle sweep."""
        remote.table_key = key
        self.sessions[key] = remote
        if not remote.connection.established:
            self.handshakes.add(remote, address, now)
        heapq.heappush(self._deadlines, (self._due(remote), remote.serial, key))

    def _due(self, remote: DtlsRemote) -> float:
        """When REMOTE expires if nothing more happens; unfinished, the earlier of its handshake deadline and its
        idle deadline, as it may complete and then fall silent (idle_timeout may be the shorter)."""
        connection = remote.connection
        idle_due = connection.last_activity + self.idle_timeout
        if connection.established:
            return idle_due
        return min(idle_due, connection.created_at + self.handshake_timeout)

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

    def expire(self, now: float, limit: int | None = None) -> int:
        """Drop idle sessions (silent for idle_timeout) and stalled handshakes (not done handshake_timeout after
        they began); returns how many went. Visits only the sessions whose heap entry is due, at most LIMIT of them
        (then `sweep_due` says whether more are)."""
        deadlines = self._deadlines
        survivors: list[tuple[float, int, tuple[int, tuple]]] = []
        gone = visited = 0
        while deadlines and deadlines[0][0] <= now and (limit is None or visited < limit):
            _, serial, key = heapq.heappop(deadlines)
            visited += 1
            remote = self.sessions.get(key)
            if remote is None or remote.serial != serial:
                continue  # that session is already gone (closed, or replaced by a new one from its address)
            connection = remote.connection
            if connection.established:
                due = connection.last_activity + self.idle_timeout
                if due > now:
                    survivors.append((due, serial, key))
                    continue
                connection.close()  # close_notify: the peer learns at once instead of after its next timeout
                failure: DtlsError = SessionExpired(f"idle for more than {self.idle_timeout:g} s")
            else:
                if connection.created_at + self.handshake_timeout > now:
                    survivors.append((self._due(remote), serial, key))
                    continue
                connection.close()
                failure = SessionExpired("handshake did not complete")
            self._expired += 1
            gone += 1
            self._closed(remote, failure)
        for entry in survivors:  # after the loop: a survivor is never visited twice in one call
            heapq.heappush(deadlines, entry)
        self.sweep_visits += visited
        return gone

    def sweep_due(self, now: float) -> bool:
        """Whether some session may have expired by NOW (an `expire` with a limit stopped before it)."""
        return bool(self._deadlines) and self._deadlines[0][0] <= now

    async def _sweep_forever(self) -> None:
        interval = min(SWEEP_INTERVAL_MAX, max(0.05, min(self.idle_timeout, self.handshake_timeout) / 4))
        while True:
            await asyncio.sleep(interval)
            now = self._loop.time()
            self.expire(now, SWEEP_SLICE)
            while self.sweep_due(now):  # many due at once (sessions opened together): slices, the loop runs between
                await asyncio.sleep(0)
                self.expire(now, SWEEP_SLICE)

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for remote in list(self.sessions.values()):
            remote.connection.close()
            remote.flush()
            if remote._timer is not None:
                remote._timer.cancel()
        self.sessions.clear()
        self._deadlines.clear()
        self.handshakes.clear()
        self._message_manager = None
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.close()
