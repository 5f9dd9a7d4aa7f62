"""Public entry points of the signal-channel transports: a server over DTLS + TLS, a client context, identity, ping.

Client URIs: coaps://HOST:PORT/... goes over DTLS, coaps+tcp://HOST:PORT/... over TLS; HOST may be an IP address
while `server_name` is what the server certificate must name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import aiocoap.error
import aiocoap.resource

from opendots.config import TlsFiles
from opendots.transport import aiocoap_hooks as hooks
from opendots.transport.dtls_interface import (
    MAX_HANDSHAKES_PER_ADDRESS,
    SERVER_HANDSHAKE_TIMEOUT,
    DtlsClientInterface,
    DtlsRemote,
    DtlsServerInterface,
    SessionStats,
    client_interface_factory,
)
from opendots.transport.events import SessionEvent, SessionListener
from opendots.transport.identity import PeerIdentity
from opendots.transport.qblock import QBlockLimits, QBlockParameters
from opendots.transport.qblock_client import QBlockClient, probe_answer, probe_message
from opendots.transport.qblock_server import ParametersFor, QBlockServer
from opendots.transport.tls import tls_client_context, tls_server_context

DEFAULT_PING_TIMEOUT = 10.0


@dataclass
class SignalServerEndpoint:
    """A running DOTS signal-channel server: `context` is the aiocoap Context (send requests/notifications with it)."""

    context: aiocoap.Context
    dtls: DtlsServerInterface | None
    tls_servers: list[Any] = field(default_factory=list)
    tls_idle_timeout: float = 600.0
    session_listeners: list[SessionListener] = field(default_factory=list)
    """Called with a SessionEvent whenever a DTLS or TLS session is established or closes (append to it)."""
    tls_idle_closed: int = 0
    qblock: QBlockServer | None = None
    """Q-Block1/Q-Block2 (RFC 9177) over DTLS, when started with `qblock` limits."""
    _tls_sweeper: asyncio.Task[None] | None = None

    def stats(self) -> SessionStats | None:
        """DTLS session table figures (None when DTLS is off)."""
        return self.dtls.stats() if self.dtls is not None else None

    @property
    def dtls_addresses(self) -> list[tuple]:
        return self.dtls.local_addresses() if self.dtls is not None else []

    @property
    def tls_addresses(self) -> list[tuple]:
        return [sock.getsockname() for server in self.tls_servers for sock in hooks.tls_server_sockets(server)]

    def tls_connection_count(self) -> int:
        return sum(hooks.tls_server_connection_count(server) for server in self.tls_servers)

    def tls_refused_full(self) -> int:
        """TLS connections refused (closed at once) because the server held max_sessions of them."""
        return sum(hooks.tls_server_refused(server) for server in self.tls_servers)

    def expire_idle_tls(self, now: float | None = None) -> int:
        """Release TLS connections idle for longer than the idle timeout; returns how many were closed."""
        now = time.monotonic() if now is None else now
        closed = sum(hooks.close_idle_tls_connections(s, self.tls_idle_timeout, now) for s in self.tls_servers)
        self.tls_idle_closed += closed
        return closed

    async def _sweep_tls(self) -> None:
        interval = min(5.0, max(0.05, self.tls_idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.expire_idle_tls()

    async def shutdown(self) -> None:
        if self._tls_sweeper is not None:
            self._tls_sweeper.cancel()
        await self.context.shutdown()


async def start_server(
    site: aiocoap.resource.Site,
    *,
    credentials: TlsFiles,
    bind: list[tuple[str, int]],
    dtls: bool = True,
    tls: bool = True,
    max_sessions: int = 10_000,
    idle_timeout: float = 600.0,
    max_handshakes: int | None = None,
    max_handshakes_per_address: int = MAX_HANDSHAKES_PER_ADDRESS,
    handshake_timeout: float = SERVER_HANDSHAKE_TIMEOUT,
    qblock: QBlockLimits | None = None,
    qblock_parameters: ParametersFor | None = None,
    reuse_port: bool = False,
    lean: bool = True,
) -> SignalServerEndpoint:
    """Serve SITE over DTLS (UDP) and/or TLS (TCP) on every (host, port) in BIND; both may share a port number.

    MAX_HANDSHAKES (default max(64, max_sessions / 10)), MAX_HANDSHAKES_PER_ADDRESS and HANDSHAKE_TIMEOUT bound
    the DTLS handshakes that passed the cookie round but are not finished (see DtlsServerInterface._admit).
    With QBLOCK, DTLS requests and responses may use Q-Block1/Q-Block2 (RFC 9177) within those limits, with the
    parameters QBLOCK_PARAMETERS names for a request's peer (RFC 9177's defaults without); without QBLOCK, Q-Block
    options get 4.02 and peers use Block1/Block2. REUSE_PORT: several processes listen on the same ports
    (SO_REUSEPORT; the kernel hashes each UDP peer's address and port to one of them, so a DTLS session stays with
    the process that holds it, and a TLS connection with the process that accepted it). LEAN: a SITE with an
    `answer_lean(remote, request)` method (opendots.signal.server.shell.resources.DotsSite) answers plain DTLS
    requests without aiocoap's Message machinery (opendots.transport.aiocoap_hooks.lean); False: all go to aiocoap."""
    if not bind:
        raise ValueError("start_server needs at least one (host, port) to bind")
    context = hooks.PromptAnswerContext(
        loop=asyncio.get_running_loop(), serversite=site, loggername="opendots.coap.server"
    )
    created: list[DtlsServerInterface] = []
    endpoint = SignalServerEndpoint(context=context, dtls=None, tls_idle_timeout=idle_timeout)
    try:
        if dtls:

            async def dtls_factory(message_manager: Any) -> DtlsServerInterface:
                interface = await DtlsServerInterface.create(
                    message_manager,
                    credentials=credentials,
                    bind=bind,
                    max_sessions=max_sessions,
                    idle_timeout=idle_timeout,
                    max_handshakes=max_handshakes,
                    max_handshakes_per_address=max_handshakes_per_address,
                    handshake_timeout=handshake_timeout,
                    reuse_port=reuse_port,
                )
                created.append(interface)
                return interface

            manager = await hooks.append_message_interface(
                context, dtls_factory, qblock=qblock, qblock_parameters=qblock_parameters
            )
            endpoint.dtls = created[0]
            answer_lean = getattr(site, "answer_lean", None)
            if lean and answer_lean is not None:
                endpoint.dtls.lean = hooks.LeanPath(manager, answer_lean, endpoint.dtls.send_encoded)
            endpoint.qblock = manager.qblock
            if manager.qblock is not None:
                endpoint.session_listeners.append(_forget_closed(manager.qblock))
            endpoint.dtls.session_listeners = endpoint.session_listeners  # one shared list for both transports
        if tls:
            ssl_context = tls_server_context(credentials)
            for host, port in bind:
                endpoint.tls_servers.append(
                    await hooks.append_tls_server(
                        context,
                        host,
                        port,
                        ssl_context,
                        max_connections=max_sessions,
                        session_listeners=endpoint.session_listeners,
                        reuse_port=reuse_port,
                    )
                )
            endpoint._tls_sweeper = asyncio.get_running_loop().create_task(endpoint._sweep_tls(), name="TLS idle sweep")
    except BaseException:
        if hooks.has_transports(context):  # aiocoap's shutdown cannot cope with a context that has none
            await context.shutdown()
        raise
    return endpoint


def _forget_closed(qblock: QBlockServer) -> SessionListener:
    def listener(event: SessionEvent) -> None:
        if event.kind == "closed" and event.transport == "dtls":
            qblock.forget_peer(event.remote)

    return listener


async def create_client_context(
    credentials: TlsFiles,
    *,
    server_name: str,
    site: aiocoap.resource.Site | None = None,
    serving: bool = False,
    qblock: bool = True,
    name_source: str | None = None,
) -> aiocoap.Context:
    """A client Context for coaps:// (DTLS) and coaps+tcp:// (TLS); SITE serves requests the server sends us.

    SERVING: SITE is a whole DOTS server answering over the sessions this context dials (RFC 9066 Call Home: the
    (D)TLS client is the CoAP server), so requests get the checks and prompt answers of `start_server`'s context.
    QBLOCK: requests sent with `client_request` use Q-Block1/Q-Block2 (RFC 9177) over DTLS with a server that
    speaks it. NAME_SOURCE: where SERVER_NAME came from, named when a certificate lacks it."""
    context_class = hooks.PromptAnswerContext if serving else aiocoap.Context
    context = context_class(loop=asyncio.get_running_loop(), serversite=site, loggername="opendots.coap.client")
    await hooks.append_message_interface(
        context, client_interface_factory(credentials, server_name, name_source), qblock_client=qblock
    )
    await hooks.append_tls_client(context, tls_client_context(credentials, server_name))
    return context


_tls_identities: weakref.WeakKeyDictionary[Any, PeerIdentity] = weakref.WeakKeyDictionary()


def peer_identity(message: aiocoap.Message) -> PeerIdentity | None:
    """The authenticated certificate of whoever sent MESSAGE (None if it did not come over DTLS/TLS)."""
    return remote_identity(message.remote)


def remote_identity(remote: Any) -> PeerIdentity | None:
    """The authenticated certificate of the peer of REMOTE, a DTLS session or TLS connection (None otherwise)."""
    if isinstance(remote, DtlsRemote):
        return remote.peer_identity
    if hooks.is_tls_remote(remote):
        identity = _tls_identities.get(remote)
        if identity is None:
            der = hooks.tls_peer_certificate_der(remote)
            if der is None:
                return None
            identity = _tls_identities[remote] = PeerIdentity.from_der(der)
        return identity
    return None


def over_tls(message: aiocoap.Message) -> bool:
    """Whether MESSAGE came over CoAP over TLS (RFC 8323: no ACKs, no Message IDs, in-order delivery)."""
    return hooks.is_tls_remote(message.remote)


async def resolve_remote(context: aiocoap.Context, uri: str) -> Any:
    """The remote (session) CONTEXT uses for URI, opened if needed; DTLS sessions are waited for."""
    probe = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await hooks.find_request_interface(context, probe)
    remote = probe.remote
    if isinstance(remote, DtlsRemote) and isinstance(remote.owner, DtlsClientInterface):
        await remote.owner.wait_established(remote)
    return remote


async def ping(context: aiocoap.Context, remote: Any, *, timeout: float = DEFAULT_PING_TIMEOUT) -> float:
    """CoAP ping: an empty CON over DTLS (RFC 7252 §4.3), a 7.02 Ping over TLS (RFC 8323 §5.4). Returns the RTT.

    REMOTE is a remote from an earlier message or a URI such as coaps://host:port. Raises TimeoutError.
    """
    if isinstance(remote, str):
        remote = await asyncio.wait_for(resolve_remote(context, remote), timeout)
    started = time.perf_counter()
    if hooks.is_tls_remote(remote):
        await asyncio.wait_for(hooks.send_tls_ping(remote, os.urandom(4)), timeout)
    else:
        manager = await hooks.find_message_manager(context, remote)
        if manager is None:
            raise ValueError(f"{remote!r} is not a live session of this context")
        await asyncio.wait_for(hooks.send_empty_con(manager, remote), timeout)
    return time.perf_counter() - started


def connection_closed(remote: Any) -> bool:
    """True when REMOTE is a CoAP-over-TLS connection that has closed: RFC 8323 has no session without its
    connection, so the peer that closed it is gone for good. Always False over DTLS (no connection to watch)."""
    return hooks.is_tls_remote(remote) and hooks.tls_connection_closed(remote)


async def open_session(context: aiocoap.Context, uri: str, *, timeout: float = DEFAULT_PING_TIMEOUT) -> float:
    """Open the session to URI (coaps:// or coaps+tcp://), as a connection attempt of RFC 9132 §4.3 does; returns
    a round-trip time. Raises TimeoutError.

    Over DTLS a completed full handshake is the proof that the server is there and holds the session (its Finished
    answers our last flight), and that last round trip is the RTT: no CoAP ping follows. A resumed handshake ends
    with the client's Finished, which nothing answers: until something comes back on it, a ping follows (and the
    session is dropped if that goes unanswered). Under loss that ping is one more exchange to lose, on RFC 7252's
    slower schedule (2-3 s, doubling) than the handshake's (RFC 6347 §4.2.4.1: 1 s, doubling): at 30 % loss it cut
    the attempts done within 6 s from about half to about a third (bench/dtls_loss.py). Over TLS (TCP retransmits)
    a 7.02 Ping follows the handshake, as before.
    """
    started = time.perf_counter()
    remote = await asyncio.wait_for(resolve_remote(context, uri), timeout)
    if isinstance(remote, DtlsRemote) and not remote.unconfirmed:
        return remote.handshake_rtt if remote.handshake_rtt is not None else time.perf_counter() - started
    if isinstance(remote, DtlsRemote):
        # A resumed (abbreviated) handshake ends with OUR Finished: if that flight and its retransmissions were
        # lost, the server dropped the unfinished handshake and we hold a session it does not (every request on it
        # would go unanswered, with nothing to tell us). An answered ping confirms it; if none comes, the session
        # goes, so the next attempt handshakes again.
        try:
            return await ping(context, remote, timeout=max(0.0, timeout - (time.perf_counter() - started)))
        except TimeoutError:
            remote.owner.drop(remote, "no answer on the resumed session: the server may not hold it")
            raise
    return await ping(context, remote, timeout=timeout)


async def reset_session(context: aiocoap.Context, remote: Any) -> None:
    """Close the DTLS session or TLS connection behind REMOTE (a remote or a URI) so the next request starts afresh.

    For a DOTS client whose heartbeats go unanswered (RFC 9132 §4.7): a server that crashed has forgotten the
    session, and DTLS gives the client no way to notice that by itself.
    """
    if isinstance(remote, str):
        probe = aiocoap.Message(code=aiocoap.GET, uri=remote)
        await hooks.find_request_interface(context, probe)
        remote = probe.remote
    if isinstance(remote, DtlsRemote):
        remote.owner.drop(remote)
    elif hooks.is_tls_remote(remote):
        hooks.close_tls_connection(remote)
    else:
        raise ValueError(f"{remote!r} is not a DTLS or TLS session")


@dataclass
class ClientRequest:
    """A request on its way: `pending` is aiocoap's Request (`.response`, `.observation`); `qblock` says whether the
    transport moves it with Q-Block (RFC 9177), retransmitting on its own: the caller then sends it only once."""

    pending: Any
    qblock: bool


async def client_request(
    context: aiocoap.Context,
    message: aiocoap.Message,
    *,
    qblock_parameters: QBlockParameters | None = None,
    probe_timeout: float = 5.0,
) -> ClientRequest:
    """Send MESSAGE (a request built with a coaps:// or coaps+tcp:// URI) from a `create_client_context` CONTEXT.

    Over DTLS, a NON request with a body larger than one block, or a NON GET/FETCH, goes with Q-Block1/Q-Block2 when
    the session's server speaks them; whether it does is learnt once per session, by the probe of RFC 9177 §4.1 (a
    CON GET of /.well-known/core with Q-Block2, as libcoap sends it: a server without Q-Block answers without it or
    4.02), sent before the first such request; a probe unanswered within PROBE_TIMEOUT leaves the request to
    Block1/Block2 and is tried again by a later request. QBLOCK_PARAMETERS are the parameters in force for the
    session (RFC 9362 sets them per DOTS session; RFC 9177's defaults without). Everything else, and everything
    over TLS, goes through aiocoap's Block1/Block2 as before."""
    await hooks.find_request_interface(context, message)
    client = await _qblock_client(context, message.remote)
    if client is None or message.mtype is aiocoap.CON or message.transport_tuning.reliability is True:
        return ClientRequest(context.request(message), False)
    remote = message.remote
    if qblock_parameters is not None:
        client.set_parameters(remote, qblock_parameters)
    if client.supports(remote) is None and _may_use_qblock(message, remote):
        await _probe(context, client, remote, probe_timeout)
    use = client.applies(message)
    pending = context.request(message, handle_blockwise=not use)
    if use:  # a request its caller gives up (cancels) stops its transfer; the token is set by then

        def given_up(future: asyncio.Future[Any]) -> None:
            if future.cancelled() and message.token is not None:
                client.forget(remote, message.token)

        pending.response.add_done_callback(given_up)
    return ClientRequest(pending, use)


async def _qblock_client(context: aiocoap.Context, remote: Any) -> QBlockClient | None:
    if not isinstance(remote, DtlsRemote) or not isinstance(remote.owner, DtlsClientInterface):
        return None
    manager = await hooks.find_message_manager(context, remote)
    return getattr(manager, "qblock_client", None)


def _may_use_qblock(message: aiocoap.Message, remote: DtlsRemote) -> bool:
    return message.code in (aiocoap.GET, aiocoap.FETCH) or len(message.payload) > 16 << remote.maximum_block_size_exp


async def probe_qblock(context: aiocoap.Context, uri: str, *, timeout: float = 5.0) -> bool | None:
    """Whether the server of the DTLS session to URI speaks Q-Block (RFC 9177 §4.1), probed now unless known: True,
    False, or None when the probe went unanswered within TIMEOUT (or URI is not a DTLS session of a context made with
    Q-Block), in which case a later call probes again."""
    message = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await hooks.find_request_interface(context, message)
    client = await _qblock_client(context, message.remote)
    if client is None:
        return None
    if client.supports(message.remote) is None:
        await _probe(context, client, message.remote, timeout)
    return client.supports(message.remote)


async def _probe(context: aiocoap.Context, client: QBlockClient, remote: DtlsRemote, timeout: float) -> None:
    # The probe is a CON exchange: under loss its own retransmissions (RFC 7252 §4.2) are the retries. Waited for
    # at most TIMEOUT here, it is not cancelled when that passes: it runs to its answer or to MAX_RETRANSMIT, and
    # the requests after this one wait on the same exchange. Cancelled, it was taken as "no answer" after one lost
    # datagram, and each later probe, a CON to the same server, queued behind (NSTART) the retransmissions of those
    # before it: at 30 % loss one lost probe left a session without Q-Block (bench/blocks.py: every one of ten
    # probes after it timed out).
    under_way = client.probing(remote)
    if under_way is None:
        under_way = client.start_probe(remote)
        client.keep(asyncio.ensure_future(_probe_exchange(context, client, remote, under_way)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(under_way), timeout)


async def _probe_exchange(
    context: aiocoap.Context, client: QBlockClient, remote: DtlsRemote, result: asyncio.Future[bool]
) -> None:
    pending = context.request(probe_message(remote), handle_blockwise=False)
    try:
        answer = await pending.response
        supports = probe_answer(answer)
        client.learned(remote, supports)
        result.set_result(supports)
    except aiocoap.error.Error:
        # Unanswered after all its retransmissions, or the session went: unknown yet (the path may be losing most
        # packets), so a later request probes again.
        result.set_result(False)
    finally:
        if not pending.response.done():
            pending.response.cancel()
        if not result.done():
            result.cancel()
