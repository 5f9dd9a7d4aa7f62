"""Every non-public aiocoap (0.4.17) name OpenDOTS relies on, in one place.

aiocoap's public API covers messages, resources and `Context.request`, but not plugging in a transport of one's
own, giving TLS clients a certificate, reading the TLS peer certificate or sending a CoAP ping. Each helper below
says which private name it touches and why; tests/contract/test_aiocoap_hooks.py checks every one of them, so an
aiocoap upgrade that moves one fails there with a clear message instead of somewhere deep in a handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, ClassVar

import aiocoap
from aiocoap import interfaces
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers.codes import EMPTY, PING, PONG, RELEASE
from aiocoap.numbers.types import ACK, CON, RST
from aiocoap.pipe import Pipe
from aiocoap.tokenmanager import TokenManager
from aiocoap.transports.rfc8323common import RFC8323Remote
from aiocoap.transports.tcp import TcpConnection
from aiocoap.transports.tls import TLSClient, TLSServer

from opendots.transport.coap_checks import frame_size, inspect_frame, prepared_refusal, refusal_for, refused_frame
from opendots.transport.dedup import RecentMessages
from opendots.transport.events import SessionEvent, SessionListener, notify
from opendots.transport.identity import PeerIdentity
from opendots.transport.qblock import QBLOCK2, QBlockLimits
from opendots.transport.qblock_client import QBlockClient
from opendots.transport.qblock_server import ParametersFor, QBlockServer, uses_qblock


async def append_message_interface(
    context: aiocoap.Context,
    factory: Callable[[interfaces.MessageManager], Awaitable[interfaces.MessageInterface]],
    *,
    qblock: QBlockLimits | None = None,
    qblock_parameters: ParametersFor | None = None,
    qblock_client: bool = False,
) -> TimerlessDedupMessageManager:
    """Stack TokenManager + MessageManager (CoAP over UDP semantics: CON/ACK, MIDs, dedup) on our DTLS interface;
    with QBLOCK (a server's), requests and responses carrying Q-Block options go through a QBlockServer; with
    QBLOCK_CLIENT, the requests we send and their responses go through a QBlockClient.

    Private: the same wiring as `Context._append_tokenmanaged_messagemanaged_transport`, aiocoap's way of building
    its own UDP/DTLS stacks (there is no public way to add a message interface), with our MessageManager below.
    """
    token_manager = AcyclicTokenManager(context)
    message_manager = TimerlessDedupMessageManager(token_manager)
    if qblock is not None:
        message_manager.qblock = QBlockServer(
            loop=context.loop,
            send=lambda message: MessageManager.send_message(
                message_manager, message, message_manager.qblock.monitor(message) if message_manager.qblock else None
            ),
            limits=qblock,
            parameters_for=qblock_parameters,
            drop_queued=lambda remote, token: _drop_backlogged(message_manager, remote, token),
        )
    if qblock_client:
        message_manager.qblock_client = QBlockClient(
            loop=context.loop,
            send=lambda message: MessageManager.send_message(message_manager, message, None),
            deliver=lambda response: MessageManager._process_response(message_manager, response),
            fail=lambda remote, token, failure: _fail_request(token_manager, remote, token, failure),
        )
    message_manager.message_interface = await factory(message_manager)
    token_manager.token_interface = message_manager
    context.request_interfaces.append(token_manager)
    return message_manager


def _fail_request(token_manager: TokenManager, remote: Any, token: bytes, failure: Exception) -> None:
    """End the request waiting on TOKEN with FAILURE (private: `TokenManager.outgoing_requests`, the table of
    requests by (token, remote) that aiocoap's own response matching reads)."""
    request = token_manager.outgoing_requests.pop((token, remote), None)
    if request is not None:
        request.add_exception(failure)


def _drop_backlogged(manager: MessageManager, remote: Any, token: bytes) -> int:
    """Take the Q-Block2 CON blocks on TOKEN to REMOTE off the queue of CONs held back by NSTART, and say how many
    (private: `MessageManager._backlogs`, remote -> [(message, monitor)], which `_continue_backlog` works off after
    an exchange ends; the list is changed in place, as that method expects it to still be there)."""
    backlog = manager._backlogs.get(remote)
    if not backlog:
        return 0
    kept = [(m, monitor) for m, monitor in backlog if m.token != token or not m.opt.get_option(QBLOCK2)]
    dropped = len(backlog) - len(kept)
    backlog[:] = kept
    return dropped


class _IncomingRequest:
    """What `AcyclicTokenManager` keeps of one incoming request while it may still be answered.

    aiocoap's `TokenManager.process_request` keeps a closure `on_event` whose cell holds `stop`, a partial of the
    Pipe's method over `on_event` itself: a reference cycle through the Pipe, the request Message and its Options,
    ~17 tracked objects per request that reference counting never frees. Those a young collection promotes while
    the request is handled are left to the server's periodic collection of the oldest generation
    (opendots.signal.server.shell.collection): thousands per tick at 20,000 heartbeating sessions. Here the only
    cycle (this object -> its registered handler -> this object) is cut when the Pipe ends, so reference counting
    frees everything once the response is sent."""

    __slots__ = ("handler", "key", "manager", "pipe", "request")

    def __init__(self, manager: AcyclicTokenManager, key: tuple[bytes, Any], request: aiocoap.Message, pipe: Pipe):
        self.manager = manager
        self.key = key
        self.request = request
        self.pipe = pipe
        self.handler: Callable[[Any], bool | None] | None = self.on_event
        """The bound method registered on the pipe (kept: the Pipe unregisters a handler by identity)."""

    def on_event(self, event: Any) -> bool | None:
        """As aiocoap's `on_event`: a response goes down to the MessageManager with this request's token and remote;
        True keeps the handler for more (Observe notifications)."""
        response = event.message
        if response is not None:
            request = self.request
            response.token = request.token
            response.remote = request.remote.as_response_address()
            response.request = request  # the MessageManager reads the request's type (piggybacking, NON)
            self.manager.token_interface.send_message(response, self.stop)
        else:
            self.manager.log.error("a request's Pipe carried an error to the TokenManager: %s", event)
        return True if not event.is_last else None

    def stop(self) -> None:
        """No more interest in this request (a newer one on its token, a failed CON response, shutdown)."""
        handler = self.handler
        if handler is not None:
            self.pipe._unregister_on_event(handler)

    def ended(self) -> None:
        incoming = self.manager.incoming_requests
        if incoming is not None and (entry := incoming.get(self.key)) is not None and entry[0] is self.pipe:
            del incoming[self.key]
        self.handler = None  # the cycle's one edge


class AcyclicTokenManager(TokenManager):
    """aiocoap's TokenManager whose incoming requests leave no reference cycle behind (see `_IncomingRequest`).

    Private: overrides `TokenManager.process_request` and keeps its `incoming_requests` table as aiocoap does,
    key (token, remote) -> (Pipe, stop), which aiocoap's `dispatch_error` and `shutdown` read; `Pipe.
    _unregister_on_event`, the method aiocoap's own `stop` is a partial of."""

    def process_request(self, request: aiocoap.Message) -> None:
        key = (request.token, request.remote)
        superseded = self.incoming_requests.pop(key, None)
        if superseded is not None:  # a new request on a token still in use: the old one is given up
            superseded[1]()
        pipe = Pipe(request, self.log)
        incoming = _IncomingRequest(self, key, request, pipe)
        pipe.on_event(incoming.handler)
        pipe.on_interest_end(incoming.ended)
        self.incoming_requests[key] = (pipe, incoming.stop)
        self.context.render_to_pipe(pipe)


class SingleResponse:
    """A request of ours waiting for its one response, without aiocoap's Request machinery.

    `Context.request` builds a BlockwiseRequest, a Request, a Pipe, tasks, a generator and futures for every
    request, left in reference cycles that outlive it until a collection finds them (22 tracked objects per server
    heartbeat, RFC 9132 §4.7, awaited with its timeout): at 20,000 sessions, much of what each periodic collection
    of the oldest generation walked. This stands in for the Pipe in
    the TokenManager's table of outgoing requests; `done` gets the response, or None for an error or `give_up`,
    exactly once, and nothing of it is left in a cycle afterwards.

    Private: duck-types `Pipe` for `TokenManager.request`, `process_response`, `dispatch_error` and `shutdown`
    (they call `request`, `add_response`, `add_exception`, `on_interest_end`, `on_event`)."""

    __slots__ = ("_done", "_ended", "request")

    def __init__(self, request: aiocoap.Message, done: Callable[[aiocoap.Message | None], None]) -> None:
        self.request = request
        self._done: Callable[[aiocoap.Message | None], None] | None = done
        self._ended: Callable[[], Any] | None = None

    def on_interest_end(self, callback: Callable[[], Any]) -> None:
        self._ended = callback  # the TokenManager's removal of this request from its table

    def on_event(self, callback: Any, is_interest: bool = True) -> Callable[[], None]:
        # TokenManager.request registers one only for a transport that returns a canceller (the MessageManager
        # never does): nothing of ours to cancel.
        return lambda: None

    def add_response(self, response: aiocoap.Message, is_last: bool = False) -> None:
        response.request = self.request
        self._finish(response)

    def add_exception(self, exception: BaseException) -> None:
        self._finish(None)

    def give_up(self) -> None:
        """No answer is coming that still matters: forget the request (a late answer is then unknown, as after
        aiocoap's timeout)."""
        self._finish(None)

    def _finish(self, response: aiocoap.Message | None) -> None:
        done, ended = self._done, self._ended
        self._done = self._ended = None
        if ended is not None:
            ended()
        if done is not None:
            done(response)


def send_single_request(
    remote: Any, message: aiocoap.Message, done: Callable[[aiocoap.Message | None], None]
) -> SingleResponse | None:
    """Send MESSAGE (a request, MESSAGE.remote set) through the TokenManager of the DTLS interface that owns its
    remote; DONE gets its response, or None. None when the remote is not a DTLS session of a MessageManager (TLS):
    use `Context.request` then. Private: `TokenManager.request` with a `SingleResponse` for a Pipe."""
    owner = getattr(remote, "owner", None)
    manager = getattr(owner, "message_manager", None)
    if not isinstance(manager, MessageManager):
        return None
    single = SingleResponse(message, done)
    manager.token_manager.request(single)
    return single


def _dedup_key(message: aiocoap.Message) -> Hashable:
    """(remote, Message ID) as one integer when the remote has a serial (a DTLS session): a dict key and deadline
    entry the garbage collector does not track, where a (remote, mid) tuple is tracked for EXCHANGE_LIFETIME
    (330,000 of them at 20,000 sessions, each walked once by the server's periodic collection)."""
    serial = getattr(message.remote, "serial", None)
    return (message.remote, message.mid) if serial is None else serial << 16 | message.mid


class TimerlessDedupMessageManager(MessageManager):
    """aiocoap's MessageManager, remembering received messages in a RecentMessages (opendots.transport.dedup)
    instead of with one 247 s timer each: ~220 bytes kept per message instead of ~930, ~2 µs instead of ~6
    (bench/dedup.py).

    Private: overrides `MessageManager._deduplicate_message` and `_store_response_for_duplicates` (the only users
    of `_recent_messages`), which `dispatch_message` and `_send_initially` call for every message.

    With a QBlockServer (RFC 9177, opendots.transport.qblock_server) it also sees every request before aiocoap's
    token layer and every response before it is numbered: private `_process_request`, `_send_empty_ack`,
    `_send_initially`, and the override of `send_message` (the one exit of responses, piggybacked or not).
    With a QBlockClient it sees every request we send (`send_message`) and every response before aiocoap's token
    layer (private `_process_response`)."""

    def __init__(self, token_manager: Any) -> None:
        super().__init__(token_manager)
        self.recent = RecentMessages()
        self._expiry_timer: asyncio.TimerHandle | None = None
        self.qblock: QBlockServer | None = None
        self.qblock_client: QBlockClient | None = None

    def _process_request(self, request: aiocoap.Message) -> None:
        qblock = self.qblock
        if qblock is None:
            return super()._process_request(request)
        goes_up, answers = qblock.on_request(request)
        if not goes_up and request.mtype is CON:  # a block taken or refused: the first answer rides on the ACK
            if answers:
                first = answers.pop(0)
                first.mtype, first.mid = ACK, request.mid
                self._send_initially(first)  # kept for a duplicate of the CON, as aiocoap does for its answers
            else:
                self._send_empty_ack(request.remote, request.mid, "Q-Block1 block taken")
        for answer in answers:  # blocks sent again for a CON body go CON: they need a monitor
            super().send_message(answer, qblock.monitor(answer))
        if goes_up:
            super()._process_request(request)
        return None

    def _process_response(self, response: aiocoap.Message) -> bool:
        client = self.qblock_client
        taken = client.on_response(response) if client is not None else None
        if taken is not None:
            return taken
        known = super()._process_response(response)
        if not known and client is not None and client.resets(response):
            # RFC 9177 §4.3: a 4.08 for a body we forgot (or never sent) gets an RST, so the server deletes its
            # partial body; aiocoap itself only RSTs an unknown CON. True: answered here, nothing more to do.
            rst = aiocoap.Message(_mtype=RST, _mid=response.mid, code=EMPTY, payload=b"")
            rst.remote = response.remote.as_response_address()
            self._send_initially(rst)
            return True
        return known

    def _remove_exchange(self, message: aiocoap.Message) -> None:
        # Private: called by dispatch_message for every ACK and RST. An RST no CON exchange of ours expects may
        # answer one of the Q-Block server's NON 4.08s: the client forgot that body (RFC 9177 §4.3).
        qblock = self.qblock
        unexpected = message.mtype is RST and (message.remote, message.mid) not in self._active_exchanges
        if unexpected and qblock is not None and qblock.on_reset(message.remote, message.mid):
            return None
        return super()._remove_exchange(message)

    def send_message(self, message: aiocoap.Message, messageerror_monitor: Any) -> None:
        client = self.qblock_client
        if client is not None and message.code.is_request() and client.on_request(message):
            return None  # sent as Q-Block payloads (NON: no exchange to monitor)
        qblock = self.qblock
        blocks = qblock.on_response(message) if qblock is not None and message.code.is_response() else None
        if blocks is None:
            return super().send_message(message, messageerror_monitor)
        for i, block in enumerate(blocks):
            super().send_message(block, messageerror_monitor if i == 0 else qblock.monitor(block))
        return None

    def _deduplicate_message(self, message: aiocoap.Message) -> bool:
        key = _dedup_key(message)
        recent = self.recent
        if key in recent:  # the same decisions and log lines as aiocoap's own method
            if message.mtype is CON:
                response = recent.responses[key]
                if response is not None:
                    self.log.info("Duplicate CON received, sending old response again")
                    self._send_initially(response)
                else:
                    self.log.info("Duplicate CON received, no response to send yet")
            else:
                self.log.info("Duplicate NON, ACK or RST received")
            return True
        recent.remember(key, self.loop.time(), message.transport_tuning.EXCHANGE_LIFETIME)
        if self._expiry_timer is None:
            self._expire()
        return False

    def _store_response_for_duplicates(self, message: aiocoap.Message) -> None:
        self.recent.answered(_dedup_key(message), message)

    def _expire(self) -> None:
        """Forget what has outlived its lifetime, then sleep until the next entry does (one timer in all)."""
        following = self.recent.expire(self.loop.time())
        self._expiry_timer = None if following is None else self.loop.call_at(following, self._expire)

    async def shutdown(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if self.qblock is not None:
            self.qblock.close()
        if self.qblock_client is not None:
            self.qblock_client.close()
        await super().shutdown()


class PromptAnswerContext(aiocoap.Context):
    """A Context whose site may answer a request on the spot, inside the transport's receive callback.

    For every incoming request aiocoap creates an asyncio task, a second Pipe that turns exceptions into 5.00 and a
    task name holding the request's repr; the task then walks three coroutine layers before the resource runs.
    Under load that is a sizeable share of a DOTS PUT's CPU, and it delays the answer by one event-loop turn.
    A site with an ``answer_now(pipe) -> bool`` method is offered each request first; when it returns False (it
    needs aiocoap's machinery: Observe, block-wise transfers, other resources) aiocoap's path runs unchanged.
    Private: overrides `Context.render_to_pipe`, which the TokenManager calls for every incoming request.
    """

    def render_to_pipe(self, pipe: Any) -> None:
        # RFC 7252 §5.4.1, §5.7.2, §5.10.8.1 before anything is carried out (opendots.transport.coap_checks).
        # Private: `Options._options`, the option numbers the request carries (no public view without sorting).
        request = pipe.request
        refusal = prepared_refusal(request) or refusal_for(request, request.opt._options, qblock=uses_qblock(request))
        if refusal is not None:
            pipe.add_response(refusal, is_last=True)
            return
        answer_now = getattr(self.serversite, "answer_now", None)
        if answer_now is not None and answer_now(pipe):
            return
        super().render_to_pipe(pipe)


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


async def find_message_manager(context: aiocoap.Context, remote: interfaces.EndpointAddress) -> MessageManager | None:
    """The MessageManager whose interface owns REMOTE (private: `Context.request_interfaces`,
    `TokenManager.token_interface`, `MessageManager.message_interface`)."""
    for request_interface in context.request_interfaces:
        manager = getattr(request_interface, "token_interface", None)
        if isinstance(manager, MessageManager) and await manager.message_interface.recognize_remote(remote):
            return manager
    return None


async def send_empty_con(manager: MessageManager, remote: interfaces.EndpointAddress) -> None:
    """CoAP ping (RFC 7252 §4.3): an empty CON, answered by an RST. Returns when the RST arrives.

    Private use: `MessageManager.send_message` with an exchange monitor; aiocoap's Request API refuses empty
    messages, and the monitor is the only callback that sees the RST of an empty exchange.
    """
    answered = asyncio.get_running_loop().create_future()
    message = aiocoap.Message(code=EMPTY, transport_tuning=aiocoap.Reliable)
    message.remote = remote

    def on_reset() -> None:
        if not answered.done():
            answered.set_result(None)

    manager.send_message(message, on_reset)
    await answered


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


async def find_request_interface(context: aiocoap.Context, message: aiocoap.Message) -> Any:
    """Fill MESSAGE.remote the way `Context.request` would, opening a session if needed.

    Semi-private: `Context.find_remote_and_interface` is documented as "unstable"; it is the only way to get a
    remote for a URI without sending a request.
    """
    return await context.find_remote_and_interface(message)


def tls_server_connection_count(server: interfaces.TokenInterface) -> int:
    """Open TLS connections of a TLS server (private: `TCPServer._pool`)."""
    return len(server._pool)


def tls_server_refused(server: interfaces.TokenInterface) -> int:
    """Connections a TLS server closed at once because it held max_connections (see `_TlsServerConnection`)."""
    connection_class = getattr(server, "opendots_connection_class", None)
    return connection_class.refused_full if connection_class is not None else 0


def has_transports(context: aiocoap.Context) -> bool:
    """Whether CONTEXT got any transport yet (private: `Context.request_interfaces`)."""
    return bool(context.request_interfaces)


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


def block_of(response: aiocoap.Message, request: aiocoap.Message) -> aiocoap.Message:
    """The block of RESPONSE that REQUEST's Block2 option asks for (private: `Message._extract_block`, what aiocoap's
    Block2Cache serves from). Raises aiocoap.error.BadRequest (4.00) for a block past the end."""
    wanted = request.opt.block2
    return response._extract_block(wanted.block_number, wanted.size_exponent, request.remote.maximum_payload_size)


# aiocoap 0.4.17 races at a context's shutdown that change no outcome yet reach asyncio's "exception was never
# retrieved" log with a traceback: an observation the client cancelled before its registration was answered (a NON
# registration retried under loss) whose block-wise runner then meets LibraryShutdown and reports it to the cancelled
# observation; and, over TLS, a message arriving after the token manager was dropped.
_SHUTDOWN_RACES = ("Error raised in an already cancelled ClientObservation", "no attribute 'process_response'")


def quiet_shutdown_races(loop: asyncio.AbstractEventLoop) -> None:
    """Log aiocoap's known shutdown races on LOOP at debug level; every other unhandled exception as before."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        problem = context.get("exception")
        if problem is not None and any(race in str(problem) for race in _SHUTDOWN_RACES):
            logging.getLogger(__name__).debug("aiocoap shutdown race (harmless): %s", problem)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
