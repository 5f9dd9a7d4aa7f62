"""What the DTLS server and client interfaces share: `DtlsRemote`, one DTLS session as aiocoap's `message.remote`,
and `DtlsInterfaceBase`, the aiocoap MessageInterface plumbing (sending, RFC 7252 checks on what arrives, timers,
closing). The server is `opendots.transport.dtls_server`, the client `opendots.transport.dtls_client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiocoap
from aiocoap import error as coap_error
from aiocoap import interfaces
from aiocoap.numbers import COAPS_PORT
from aiocoap.numbers.codes import EMPTY
from aiocoap.numbers.types import RST
from aiocoap.util import hostportjoin

from opendots.transport.coap_checks import inspect_datagram, refused_request
from opendots.transport.dtls import (
    ApplicationData,
    ConnectionClosed,
    DtlsConnection,
    DtlsError,
    DtlsEvent,
    HandshakeCompleted,
    SendQueueFull,
)
from opendots.transport.identity import PeerIdentity

if TYPE_CHECKING:
    from opendots.transport.aiocoap_hooks.lean import LeanPath

log = logging.getLogger("opendots.transport.dtls_interface")  # one logger name for the DTLS shell, as before the split

_serials = itertools.count(1)


def _hostinfo(address: tuple) -> str:
    host, port = address[0], address[1]
    return hostportjoin(host, None if port == COAPS_PORT else port)


class DtlsRemote(interfaces.EndpointAddress):
    """One DTLS session as aiocoap sees a peer. Identity-compared: a new session is a new remote (RFC 7252 §9.1.2)."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    def __init__(self, owner: DtlsInterfaceBase, connection: DtlsConnection, peer: tuple, local: tuple) -> None:
        self.owner = owner
        self.connection = connection
        self.peer = peer
        self.local = local
        self._send_datagram: Callable[[bytes], None] = lambda _datagram: None
        self._timer: asyncio.TimerHandle | None = None
        self.table_key: object = None
        self.serial = next(_serials)
        """This session's number, never reused in the process: it names the session in the deduplication keys
        (opendots.transport.aiocoap_hooks), which are then plain integers the garbage collector does not track."""
        self.flight_sent_at: float | None = None
        """When this side last sent handshake datagrams (time.monotonic())."""
        self.handshake_rtt: float | None = None
        """From our last handshake flight to the completed handshake: a round trip, measured without a CoAP ping."""
        self.resumed = False
        """The handshake was abbreviated (session resumption): the client sent the last flight, so its completion
        does not prove the server holds the session (RFC 6347 §4.2.4)."""
        self.answered = False
        """Application data came in on this session: the peer holds it."""
        self._maximum_payload_size: int | None = None

    def __repr__(self) -> str:
        return f"<DtlsRemote {self.hostinfo} {self.connection.state.value}>"

    @property
    def unconfirmed(self) -> bool:
        """Resumed, and nothing has come back on it yet: the server may have dropped its half of the handshake."""
        return self.resumed and not self.answered

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
        size = self._maximum_payload_size
        if size is None:
            size = min(1124, self.connection.cleartext_budget - self._COAP_OVERHEAD)
            if self.connection.established:  # MTU and cipher are settled: read for every answer, computed once
                self._maximum_payload_size = size
        return size

    @property
    def maximum_block_size_exp(self) -> int:
        budget = self.connection.cleartext_budget - self._COAP_OVERHEAD
        exponent = 6  # 1024-byte blocks at most (no BERT over UDP)
        while exponent > 0 and 2 ** (exponent + 4) > budget:
            exponent -= 1
        return exponent

    def flush(self) -> None:
        datagrams = self.connection.datagrams_to_send()
        if datagrams and not self.connection.established:
            self.flight_sent_at = time.monotonic()
        for datagram in datagrams:
            self._send_datagram(datagram)


class DtlsInterfaceBase(interfaces.MessageInterface):
    def __init__(self, message_manager: interfaces.MessageManager, loop: asyncio.AbstractEventLoop) -> None:
        self._message_manager: interfaces.MessageManager | None = message_manager
        self._loop = loop
        self.messages_received = 0
        """CoAP messages that arrived over this interface's sessions (metrics, tests)."""
        self.lean: LeanPath | None = None
        """The server's lean path for plain requests (opendots.transport.aiocoap_hooks.lean), offered every
        decrypted datagram before aiocoap; None: everything goes to aiocoap."""

    @property
    def message_manager(self) -> interfaces.MessageManager | None:
        """The MessageManager above this interface (None once shut down)."""
        return self._message_manager

    # -- MessageInterface

    def send(self, message: aiocoap.Message) -> None:
        remote = message.remote
        if not isinstance(remote, DtlsRemote) or remote.connection.closed:
            log.info("not sending %s: its DTLS session is gone", describe_message(message))
            return
        self._send_to(remote, message.encode(), message)

    def send_encoded(self, remote: DtlsRemote, data: bytes) -> None:
        """Send DATA, an encoded CoAP message (the lean path's answers, opendots.transport.aiocoap_hooks.lean)."""
        connection = remote.connection
        datagram = connection.seal_application(data)  # the usual case, as in `_send_to` (None: not it)
        if datagram is not None:
            remote._send_datagram(datagram)
            if remote._timer is not None:
                self._arm_timer(remote)
            return
        if connection.closed:
            log.info("not sending an answer to %s: its DTLS session is gone", remote.hostinfo)
            return
        self._send_to(remote, data, None)

    def _send_to(self, remote: DtlsRemote, data: bytes, message: aiocoap.Message | None) -> None:
        datagram = remote.connection.seal_application(data)  # the usual case, without the queue (None: not it)
        if datagram is not None:
            remote._send_datagram(datagram)
            if remote._timer is not None:
                self._arm_timer(remote)
            return
        try:
            remote.connection.send(data)
        except SendQueueFull as failure:
            described = describe_message(message) if message is not None else f"an answer to {remote.hostinfo}"
            log.warning("dropping %s: %s", described, failure)  # CON retransmission or the caller's timeout copes
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
                remote.answered = True
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
        self.messages_received += 1
        lean = self.lean
        if lean is not None and lean.receive(remote, plaintext):
            return
        self._to_aiocoap(remote, plaintext)

    def _to_aiocoap(self, remote: DtlsRemote, plaintext: bytes) -> None:
        """PLAINTEXT, a CoAP message the lean path did not take, checked and handed to aiocoap's MessageManager."""
        assert self._message_manager is not None
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


def describe_message(message: aiocoap.Message) -> str:
    """A CoAP message as a log line names it: code, type, message ID and peer (aiocoap's repr is a Python repr)."""
    remote = message.remote
    peer = getattr(remote, "hostinfo", None) if remote is not None else None
    mtype = message.mtype.name if message.mtype is not None else "-"
    return f"{message.code} {mtype} message ID {message.mid} to {peer or 'an unknown peer'}"
