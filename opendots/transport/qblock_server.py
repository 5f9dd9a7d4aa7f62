"""Q-Block1/Q-Block2 (RFC 9177) for a CoAP server over DTLS: the sans-I/O engine (opendots.transport.qblock)
fed with aiocoap messages and driven by the event loop. Nothing in it is specific to DOTS.

`TimerlessDedupMessageManager` (opendots.transport.aiocoap_hooks, the one package with aiocoap's private names)
hands every incoming request to `on_request` and every outgoing response to `on_response`:
- a request carrying Q-Block1 is a block of a body: the blocks go to one `Q1Receiver`, its 2.31/4.08 answers go out
  as NON responses, and once the body is whole the last block's request goes up with the whole payload;
- a request carrying Q-Block2 goes up marked (`uses_qblock`), so the resource answers with the whole body; its
  response, when larger than one block, goes out as Q-Block2 blocks from `Q2Responses`, which keeps the body so a
  request for missing blocks (`is_recovery`) is served from it without rendering again;
- one loop timer at the engine's earliest deadline sends the next MAX_PAYLOADS_SET, the 4.08s and the expiries.
Over CoAP over TLS (RFC 8323) nothing of this runs: Q-Block options there are refused (4.02) as before, and bodies
move in Block1/Block2 (BERT).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap.numbers.codes import GET, Code
from aiocoap.numbers.types import CON, NON
from aiocoap.optiontypes import OpaqueOption

from opendots.transport.deadline_timer import DeadlineTimer
from opendots.transport.qblock import (
    MISSING_BLOCKS_CONTENT_FORMAT,
    QBLOCK1,
    QBLOCK2,
    AlreadyComplete,
    BlockOption,
    BodyAbandoned,
    BodyComplete,
    OpaqueCounter,
    Q1Receiver,
    Q2Responses,
    QBlockError,
    QBlockLimits,
    QBlockParameters,
    Respond,
    SendBlock,
    is_recovery,
)

log = logging.getLogger(__name__)

REQUEST_TAG = 292  # RFC 9175 §3.2
ETAG, OBSERVE, BLOCK2, BLOCK1, SIZE2, SIZE1 = 4, 6, 23, 27, 28, 60
_KEY_IGNORES = (QBLOCK1, QBLOCK2, REQUEST_TAG, BLOCK1, BLOCK2, SIZE1, SIZE2, ETAG, OBSERVE)
_MARK = "opendots_qblock"
_Exchange = tuple[Any, bytes]  # (remote, token)


def uses_qblock(message: aiocoap.Message) -> bool:
    """Whether MESSAGE is a request whose Q-Block options the transport took care of: its resource answers with the
    whole body (never Block2 blocks), and option 19/31 count as understood (RFC 7252 §5.4.1)."""
    return getattr(message, _MARK, False)


@dataclass
class _Asked:
    key: Hashable  # the request's cache key: a request for missing blocks of the same resource finds the body
    option: BlockOption | None  # the request's Q-Block2 option
    szx: int  # the largest block the client takes
    params: QBlockParameters | None  # the peer's, if it has its own
    confirmable: bool = False  # the request was CON: its Q-Block2 body goes CON (RFC 9177 §4.4)


ParametersFor = Callable[[aiocoap.Message], QBlockParameters | None]
DropQueued = Callable[[Any, bytes], int]


class QBlockServer:
    """The Q-Block state of one server transport. SEND puts a response on the wire (the message manager's
    send_message, NON, no exchange monitor). PARAMETERS_FOR, if given, names the parameters in force for the peer
    that sent a request (e.g. negotiated per session by RFC 9362); None there, or no PARAMETERS_FOR, means PARAMS.
    DROP_QUEUED(remote, token), if given, takes the CON blocks on TOKEN that the message layer still holds back
    (NSTART) off its queue and says how many: an RST to one block of a body stops the rest of it."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[aiocoap.Message], None],
        params: QBlockParameters | None = None,
        limits: QBlockLimits | None = None,
        rng: random.Random | None = None,
        parameters_for: ParametersFor | None = None,
        drop_queued: DropQueued | None = None,
    ) -> None:
        rng = rng or random.Random()
        self._drop_queued = drop_queued
        self._parameters_for = parameters_for
        params = params or QBlockParameters()
        self.limits = limits or QBlockLimits()
        self.loop = loop
        self._send = send
        self.receiver = Q1Receiver(params, self.limits)
        self.responses = Q2Responses(params, self.limits, rng)
        self._etags = OpaqueCounter(rng.getrandbits(32))
        # All four tables are bounded (oldest out first) and cleared per peer by forget_peer.
        self._asked: OrderedDict[_Exchange, _Asked] = OrderedDict()
        self._awaiting: OrderedDict[_Exchange, Hashable] = OrderedDict()  # bodies gone up, answer not yet seen
        self._answers: OrderedDict[Hashable, aiocoap.Message] = OrderedDict()  # final answers, for late duplicates
        self._templates: OrderedDict[tuple[Any, Hashable], aiocoap.Message] = OrderedDict()  # a kept body's response
        # 4.08s listing missing blocks, with the body each is about: an RST answers one by Message ID only (§4.3).
        self._incomplete: OrderedDict[int, tuple[aiocoap.Message, Hashable]] = OrderedDict()
        self._timer = DeadlineTimer(loop, self._fire)
        self.counts: dict[str, int] = {
            "q1_blocks": 0,
            "q1_bodies": 0,
            "q2_bodies": 0,
            "q2_blocks": 0,
            "q2_blocks_resent": 0,
            "q2_blocks_reset": 0,
        }
        """What went through the engine: tests and metrics read it (q2_blocks_resent: sent again on request,
        q2_blocks_reset: CON blocks the client answered with RST)."""
        self.responses_sent: dict[str, int] = {}
        """Answers of the Q-Block layer itself by code: 2.31, 4.08 (missing blocks, or a body gone), refusals."""
        self.abandoned: dict[str, int] = {}
        """Q-Block1 bodies given up before they were whole, by why (see abandon_reason)."""
        self.resets_unmatched = 0
        """RSTs that matched neither an exchange of the message layer nor a 4.08 of ours (ignored)."""

    # --- incoming requests

    def on_request(self, request: aiocoap.Message) -> tuple[bool, list[aiocoap.Message]]:
        """(whether REQUEST goes up to the resource, possibly rebuilt in place; the responses to send now)."""
        options = request.opt
        raw1 = options.get_option(QBLOCK1)
        raw2 = options.get_option(QBLOCK2)
        if not raw1 and not raw2:
            return True, []
        setattr(request, _MARK, True)
        try:
            if options.block1 is not None or options.block2 is not None:
                raise QBlockError("4.02", "Q-Block and Block options in one request (RFC 9177 §4.1)")
            if len(raw1) > 1 or (len(raw2) > 1 and raw1):
                raise QBlockError("4.02", "a repeated Q-Block1 option (RFC 9177 §4.1, RFC 7252 §5.4.5)")
            q1 = BlockOption.decode(raw1[0].encode()) if raw1 else None
            q2 = [BlockOption.decode(option.encode()) for option in raw2]
        except QBlockError as error:
            return False, [self._error(request, error.code, error.diagnostic)]
        try:
            if q1 is not None:
                return self._on_block(request, q1, q2[0] if q2 else None)
            return self._on_q2_request(request, q2)
        finally:
            self._reschedule()

    def _on_block(
        self, request: aiocoap.Message, option: BlockOption, asked: BlockOption | None
    ) -> tuple[bool, list[aiocoap.Message]]:
        options = request.opt
        tags = options.get_option(REQUEST_TAG)
        self.counts["q1_blocks"] += 1
        events = self.receiver.on_block(
            request.remote,
            token=request.token,
            request_tag=tags[0].encode() if tags else None,
            option=option,
            payload=request.payload,
            size1=options.size1,
            now=self.loop.time(),
            reliable=request.mtype is CON,  # each block is ACKed: no 2.31 and no missing-blocks 4.08 (§4.3)
            params=self._parameters(request),
        )
        out: list[aiocoap.Message] = []
        goes_up = False
        for event in events:
            if isinstance(event, Respond):
                out.append(self._respond(request.remote, event))
            elif isinstance(event, BodyComplete):
                # §4.3: the body's answer goes on the token of the last payload received, which is this request's.
                self.counts["q1_bodies"] += 1
                request.payload = event.body
                options.delete_option(QBLOCK1)
                options.delete_option(REQUEST_TAG)
                options.size1 = None
                _put(self._awaiting, (request.remote, request.token), event.key, self.limits.total)
                self._remember_asked(request, asked, asked.szx if asked else option.szx)
                goes_up = True
            elif isinstance(event, AlreadyComplete):
                answer = self._answers.get(event.key)
                if answer is not None:  # a late duplicate of the last block: its answer was lost (§4.3)
                    again = answer.copy(token=event.token, mid=None, mtype=NON)
                    again.remote = request.remote
                    # An answer larger than one block goes out in Q-Block2 payloads again, as it did the first time
                    # (not as one datagram past the path's MTU).
                    self._remember_asked(request, asked, asked.szx if asked else option.szx)
                    out += self.on_response(again) or [again]
            elif isinstance(event, BodyAbandoned):
                self._abandoned(event)
        return goes_up, out

    def _on_q2_request(self, request: aiocoap.Message, q2: list[BlockOption]) -> tuple[bool, list[aiocoap.Message]]:
        key = request.get_cache_key(_KEY_IGNORES)
        peer = request.remote
        if is_recovery(q2):
            template = self._templates.get((peer, key))
            if template is not None:
                try:
                    blocks = self.responses.on_request(peer, key, q2, token=request.token, now=self.loop.time())
                except QBlockError as error:
                    return False, [self._error(request, error.code, error.diagnostic)]
                if blocks is not None:
                    return False, [self._block_message(block, template) for block in blocks]
            if request.code != GET:
                # A PUT/POST/FETCH asking for blocks of its answer carries no body (§4.4, Figure 15): rendered, it
                # would run without its body. That answer is gone: the client sends the request again.
                diagnostic = "the answer these blocks belong to is no longer kept; send the request again"
                return False, [self._error(request, "4.08", diagnostic)]
        elif request.opt.observe is None and q2[0].more:
            template = self._templates.get((peer, key))
            if template is not None and template.token == request.token:
                # The GET sent again on its token (no block had come back: RFC 7252 §4.8's schedule): the body it
                # asked for is on its way. Block 0 goes again, same ETag, rather than a second rendering whose new
                # ETag would make the client start over (§4.4; a GET of 10,000 mitigations rendered so, again and
                # again, at 30 % loss).
                again = [BlockOption(0, False, min(q2[0].szx, 6))]
                blocks = self.responses.on_request(peer, key, again, token=request.token, now=self.loop.time())
                if blocks is not None:
                    return False, [self._block_message(block, template) for block in blocks]
        # A new body (0/M, or the probe's 0/_/16), or blocks of a body no longer kept: the resource renders it.
        self._remember_asked(request, q2[0], q2[0].szx)
        return True, []

    def _parameters(self, request: aiocoap.Message) -> QBlockParameters | None:
        if self._parameters_for is None:
            return None
        try:
            return self._parameters_for(request)
        except Exception:  # the engine's defaults rather than no answer at all
            log.exception("Q-Block parameters for %s could not be found", _peer(request.remote))
            return None

    def _remember_asked(self, request: aiocoap.Message, asked: BlockOption | None, szx: int) -> None:
        key = request.get_cache_key(_KEY_IGNORES)
        entry = _Asked(key, asked, szx, self._parameters(request), request.mtype is CON)
        _put(self._asked, (request.remote, request.token), entry, 4 * self.limits.total)

    # --- outgoing responses

    def on_response(self, message: aiocoap.Message) -> list[aiocoap.Message] | None:
        """The messages to send instead of response MESSAGE (its blocks), or None to send it as it is."""
        exchange = (message.remote, message.token)
        q1_key = self._awaiting.pop(exchange, None)
        if q1_key is not None:
            _put(self._answers, q1_key, message.copy(), self.limits.total)
        entry = self._asked.get(exchange)
        if entry is None:
            return None
        if message.opt.observe is None:  # notifications keep coming on an observation's token
            del self._asked[exchange]
        szx = min(entry.szx, 6)
        if len(message.payload) <= 16 << szx:
            if entry.option is not None and message.code.is_successful():
                # Q-Block2 in the answer tells the client (libcoap's `-L 5` probe) that we speak Q-Block (§4.1).
                message.opt.add_option(OpaqueOption(QBLOCK2, BlockOption(0, False, szx).encode()))
            return None
        peer = message.remote
        etag = message.opt.etag or self._etags.next()
        now = self.loop.time()
        try:
            blocks = self.responses.start(
                peer,
                entry.key,
                message.payload,
                etag=etag,
                token=message.token,
                now=now,
                szx=szx,
                asked=entry.option,
                params=entry.params,
                confirmable=entry.confirmable,
            )
        except QBlockError as error:  # the request asked for a block past the body
            answer = self._error(message, error.code, error.diagnostic)
            answer.remote, answer.token, answer.mtype = message.remote, message.token, message.mtype
            return [answer]
        template = message.copy(payload=b"")
        template.opt.etag = etag
        _put(self._templates, (peer, entry.key), template, self.limits.total)
        self.counts["q2_bodies"] += 1
        out = [self._block_message(block, template) for block in blocks]
        if out:  # the first block takes the response's place: piggybacked on an ACK, else NON or CON as it would be
            out[0].mtype = message.mtype
            out[0].request = message.request  # aiocoap answers a NON request with NON (RFC 7252 §5.2.3)
        self._reschedule()
        return out

    def _block_message(self, block: SendBlock, template: aiocoap.Message) -> aiocoap.Message:
        self.counts["q2_blocks"] += 1
        self.counts["q2_blocks_resent"] += block.recovery
        # §4.4: for a CON request the payloads after the piggybacked first go CON, each ACKed by the client; the
        # message manager retransmits them and holds all but one back (RFC 7252 §4.7 NSTART), and gives up on the
        # body's remaining blocks when one is never ACKed (§4.4: the server SHOULD terminate the transfer).
        mtype = CON if block.confirmable else NON
        message = template.copy(payload=block.payload, token=block.token, mid=None, mtype=mtype)
        message.remote = template.remote
        message.opt.add_option(OpaqueOption(QBLOCK2, block.option.encode()))
        message.opt.size2 = block.size  # §4.6: Size2 and ETag on every block
        if block.recovery:
            message.opt.observe = None  # §4.5: a block sent again on request is no notification
        return message

    def monitor(self, message: aiocoap.Message) -> Callable[[], None] | None:
        """What the message manager calls when CON block MESSAGE gets an RST (it wants one for every CON); None for
        NON. Giving up after MAX_RETRANSMIT is the message manager's: it drops the blocks still held back (§4.4)."""
        if message.mtype is not CON:
            return None

        def reset() -> None:
            # The client does not want this body any more (RFC 7252 §4.2, RFC 9177 §4.4): the blocks still queued
            # behind this one would each cost a CON exchange (up to MAX_RETRANSMIT sends) for nothing.
            self.counts["q2_blocks_reset"] += 1
            dropped = self._drop_queued(message.remote, message.token) if self._drop_queued is not None else 0
            self.responses.stop(message.remote, message.token)
            self._reschedule()
            log.info("%s reset a Q-Block2 block: %d more of that body not sent", _peer(message.remote), dropped)

        return reset

    # --- timers and sessions

    def _reschedule(self) -> None:
        deadlines = [d for d in (self.receiver.next_deadline(), self.responses.next_deadline()) if d is not None]
        self._timer.at(min(deadlines) if deadlines else None)

    def _fire(self) -> None:
        now = self.loop.time()
        for event in self.receiver.poll(now):
            if isinstance(event, Respond):
                self._send(self._respond(event.peer, event))
            elif isinstance(event, BodyAbandoned):
                self._abandoned(event)
        for block in self.responses.poll(now):
            template = self._templates.get((block.peer, block.key))
            if template is not None:
                self._send(self._block_message(block, template))
        self._reschedule()

    def _respond(self, remote: Any, event: Respond) -> aiocoap.Message:
        self.responses_sent[event.code] = self.responses_sent.get(event.code, 0) + 1
        message = _respond(remote, event)
        if event.key is not None:  # its Message ID is set when it is sent, after this
            _put(self._incomplete, id(message), (message, event.key), self.limits.total)
        return message

    def on_reset(self, remote: Any, mid: int) -> bool:
        """An RST from REMOTE that no exchange of the message layer expects: if it answers one of our 4.08s, the
        client forgot that body (§4.3) and its partial body is deleted. Linear in the 4.08s kept (a bounded table),
        and only for an RST nothing else claims."""
        found = next(
            (key for message, key in self._incomplete.values() if message.mid == mid and message.remote == remote),
            None,
        )
        if found is None:
            self.resets_unmatched += 1
            return False
        for mine in [m for m, (_, key) in self._incomplete.items() if key == found]:
            del self._incomplete[mine]
        event = self.receiver.reset(found, self.loop.time())
        if event is not None:
            self._abandoned(event)
        self._reschedule()
        return True

    def _error(self, request: aiocoap.Message, code: str, diagnostic: str) -> aiocoap.Message:
        self.responses_sent[code] = self.responses_sent.get(code, 0) + 1
        return _error(request, code, diagnostic)

    def _abandoned(self, event: BodyAbandoned) -> None:
        log.info("Q-Block1 body from %s abandoned: %s", _peer(event.peer), event.reason)
        why = abandon_reason(event.reason)
        self.abandoned[why] = self.abandoned.get(why, 0) + 1

    def forget_peer(self, remote: Any) -> None:
        """REMOTE's session ended: its bodies can neither complete nor be asked for again."""
        self.receiver.forget_peer(remote)
        self.responses.forget_peer(remote)
        for table in (self._asked, self._awaiting):
            for exchange in [exchange for exchange in table if exchange[0] == remote]:
                del table[exchange]
        for key in [key for key in self._answers if key[0] == remote]:
            del self._answers[key]
        for key in [key for key in self._templates if key[0] == remote]:
            del self._templates[key]
        for mine in [mine for mine, (message, _) in self._incomplete.items() if message.remote == remote]:
            del self._incomplete[mine]
        self._reschedule()

    def close(self) -> None:
        self._timer.cancel()


def abandon_reason(reason: str) -> str:
    """The kind of a BodyAbandoned reason, for a metric label: expired (NON_PARTIAL_TIMEOUT without progress),
    unanswered (NON_MAX_RETRANSMIT requests for missing blocks in vain), evicted (the peer started too many), reset
    (the client answered a 4.08 about it with RST: it forgot the body, §4.3)."""
    if "NON_PARTIAL_TIMEOUT" in reason:
        return "expired"
    if "NON_MAX_RETRANSMIT" in reason:
        return "unanswered"
    if reason.startswith("evicted"):
        return "evicted"
    if reason.startswith("reset"):
        return "reset"
    return "other"


def _put(table: OrderedDict, key: Hashable, value: Any, bound: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > bound:
        table.popitem(last=False)


def _code(dotted: str) -> Code:
    major, minor = dotted.split(".")
    return Code((int(major) << 5) | int(minor))


def _respond(remote: Any, event: Respond) -> aiocoap.Message:
    message = aiocoap.Message(code=_code(event.code))
    message.mtype, message.token, message.remote = NON, event.token, remote
    if event.option is not None:
        message.opt.add_option(OpaqueOption(QBLOCK1, event.option.encode()))
    if event.content_format is not None:
        message.opt.content_format = event.content_format
        message.payload = event.payload
    elif event.diagnostic:
        message.opt.content_format = 0
        message.payload = event.diagnostic.encode()
    if event.size1 is not None:
        message.opt.size1 = event.size1
    return message


def _error(request: aiocoap.Message, code: str, diagnostic: str) -> aiocoap.Message:
    message = aiocoap.Message(code=_code(code), payload=diagnostic.encode())
    message.opt.content_format = 0
    message.mtype, message.token, message.remote = NON, request.token, request.remote
    return message


__all__ = ["MISSING_BLOCKS_CONTENT_FORMAT", "QBlockServer", "abandon_reason", "uses_qblock"]


def _peer(remote: object) -> str:
    """A peer as log lines name it: its address (a remote's repr is a Python repr)."""
    return str(getattr(remote, "hostinfo", remote))
