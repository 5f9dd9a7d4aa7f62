"""aiocoap's message layer (CoAP over UDP semantics on our DTLS interface): the MessageManager that deduplicates
without a timer per message and lets the Q-Block engines (RFC 9177) see every request and response, the assembly of
a DTLS interface's token + message stack with those engines attached, and the CoAP ping.

Private names: listed in each docstring; checked by tests/contract/test_aiocoap_hooks.py and
tests/contract/test_aiocoap_qblock_rst_hooks.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import aiocoap
from aiocoap import interfaces
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers.codes import EMPTY
from aiocoap.numbers.constants import TransportTuning
from aiocoap.numbers.types import ACK, CON, RST
from aiocoap.tokenmanager import TokenManager

from opendots.transport.aiocoap_hooks.token_layer import AcyclicTokenManager
from opendots.transport.dedup import RecentMessages
from opendots.transport.qblock import QBLOCK2, QBlockLimits
from opendots.transport.qblock_client import QBlockClient
from opendots.transport.qblock_server import ParametersFor, QBlockServer

_TUNING = TransportTuning()  # aiocoap's defaults, which every message received here has


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
        self.exchange_lifetime: float = _TUNING.EXCHANGE_LIFETIME  # RFC 7252 §4.8.2: 247 s, computed once
        """How long a received message is remembered (aiocoap computes its property at each read, per message)."""
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
                if isinstance(response, bytes):  # the lean path's answer (aiocoap_hooks.lean), as it was sent
                    self.log.info("Duplicate CON received, sending old response again")
                    self.message_interface.send_encoded(message.remote, response)
                elif response is not None:
                    self.log.info("Duplicate CON received, sending old response again")
                    self._send_initially(response)
                else:
                    self.log.info("Duplicate CON received, no response to send yet")
            else:
                self.log.info("Duplicate NON, ACK or RST received")
            return True
        self.first_reception(key)
        return False

    def first_reception(self, key: Hashable) -> None:
        """KEY (`_dedup_key`) arrived for the first time: remember it for EXCHANGE_LIFETIME."""
        self.recent.remember(key, self.loop.time(), self.exchange_lifetime)
        if self._expiry_timer is None:
            self._expire()

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
