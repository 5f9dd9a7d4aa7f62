"""Q-Block1/Q-Block2 (RFC 9177) for a CoAP client over DTLS: the sans-I/O engine (opendots.transport.qblock) fed with
aiocoap messages and driven by the event loop. Nothing in it is specific to DOTS.

`TimerlessDedupMessageManager` (opendots.transport.aiocoap_hooks, the one package with aiocoap's private names)
hands every outgoing request to `on_request` and every incoming response to `on_response`; for a session whose
server is known to speak Q-Block (`learned`, after the probe of §4.1 that `opendots.transport.endpoints` sends):
- a NON request whose body is larger than one block goes out as Q-Block1 payloads from a `Q1Sender` (MAX_PAYLOADS
  per set, one Request-Tag and Size1, a fresh token each); 2.31 Continue and 4.08 with the missing blocks (CF 272)
  go back to the sender, and the final response goes up on the original request's token, as if it had been sent
  whole;
- a NON GET/FETCH carries Q-Block2 0/M (§4.1: the client says it takes Q-Block2 bodies) and is sent again on the
  RFC 7252 NON schedule until anything comes back; a body that comes back in Q-Block2 payloads is put together by a
  `Q2Receiver`, which asks for missing blocks with new Q-Block2 requests (§4.4), and goes up whole on the request's
  token; an Observe notification sent as a Q-Block2 body goes up whole as one notification (§4.5);
- one loop timer at the engine's earliest deadline sends the next MAX_PAYLOADS_SET, requests for missing blocks
  and the expiries.
CON requests, requests with Block1/Block2 options and everything over CoAP over TLS are left alone: RFC 9177 §3 sees
little benefit over reliable transports (RFC 8323), and our server refuses Q-Block options there (4.02).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import aiocoap.error
from aiocoap.numbers.codes import CONTINUE, FETCH, GET, REQUEST_ENTITY_INCOMPLETE
from aiocoap.numbers.types import CON, NON
from aiocoap.optiontypes import OpaqueOption

from opendots.transport.deadline_timer import DeadlineTimer
from opendots.transport.qblock import (
    MISSING_BLOCKS_CONTENT_FORMAT,
    QBLOCK1,
    QBLOCK2,
    BlockOption,
    BodyAbandoned,
    BodyComplete,
    OpaqueCounter,
    Q1Sender,
    Q2Receiver,
    QBlockError,
    QBlockLimits,
    QBlockParameters,
    Rejected,
    RequestBlocks,
    SendBlock,
)

log = logging.getLogger(__name__)

REQUEST_TAG = 292  # RFC 9175 §3.2
OBSERVE, BLOCK2, BLOCK1 = 6, 23, 27
PROBE_SZX = 0  # libcoap's probe asks for one 16-byte block of /.well-known/core (§4.1)


class QBlockFailed(aiocoap.error.Error):
    """A Q-Block transfer given up (NON_MAX_RETRANSMIT, NON_PARTIAL_TIMEOUT, a body abandoned): no answer came."""


@dataclass
class _Upload:
    """A request body going out in Q-Block1 payloads; TOKEN is the request's own (aiocoap waits on it)."""

    token: bytes
    template: aiocoap.Message  # the request without its payload
    sender: Q1Sender
    tag: bytes
    tokens: set[bytes] = field(default_factory=set)


@dataclass
class _Download:
    """A request whose response may come back in Q-Block2 payloads, on TOKEN or on the tokens of our requests for
    missing blocks (TOKENS)."""

    token: bytes
    request: aiocoap.Message  # the request as sent: resent while unanswered, the model of requests for blocks
    observe: bool
    resend_at: float | None
    resends: int = 0
    tokens: set[bytes] = field(default_factory=set)
    first: dict[bytes, aiocoap.Message] = field(default_factory=dict)  # ETag -> a block of that body (the response)
    done: deque[bytes] = field(default_factory=lambda: deque(maxlen=4))  # ETags of bodies delivered
    notify: bytes | None = None  # an observed Q-Block1 FETCH: the token its notifications come on (§4.3)


@dataclass
class _Peer:
    """What the client knows of one session: whether its server speaks Q-Block, the parameters in force, the
    transfers under way (each token of ours names the transfer it belongs to)."""

    supports: bool | None = None
    params: QBlockParameters = field(default_factory=QBlockParameters)
    receiver: Q2Receiver | None = None
    uploads: dict[bytes, _Upload] = field(default_factory=dict)
    downloads: OrderedDict[bytes, _Download] = field(default_factory=OrderedDict)
    routes: dict[bytes, _Upload | _Download] = field(default_factory=dict)
    probing: asyncio.Future[bool] | None = None


Deliver = Callable[[aiocoap.Message], bool]
Fail = Callable[[Any, bytes, Exception], None]


class QBlockClient:
    """The Q-Block state of one client transport. SEND puts a message on the wire (the message manager's own
    send_message); DELIVER hands a response up to aiocoap's token layer (False: nobody waits for that token any
    more); FAIL ends the request waiting on a token with an exception."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[aiocoap.Message], None],
        deliver: Deliver,
        fail: Fail,
        limits: QBlockLimits | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.loop = loop
        self._send = send
        self._deliver = deliver
        self._fail = fail
        self.limits = limits or QBlockLimits()
        self._rng = rng or random.Random()
        self._tags = OpaqueCounter(self._rng.getrandbits(32))
        self._peers: dict[Any, _Peer] = {}
        self._timer = DeadlineTimer(loop, self._fire)
        self._tasks: set[asyncio.Future[Any]] = set()
        self.counts: dict[str, int] = {
            "q1_bodies": 0,
            "q1_blocks": 0,
            "q2_bodies": 0,
            "q2_blocks": 0,
            "q2_requests": 0,
            "resends": 0,
            "resets": 0,  # RSTs sent to 4.08s for bodies forgotten or never sent (§4.3)
        }
        """What went through the engine: tests and metrics read it."""

    # --- what the session knows

    def _peer(self, remote: Any) -> _Peer:
        peer = self._peers.get(remote)
        if peer is None:
            for old in [old for old in self._peers if _closed(old)]:  # a new session: drop those that ended
                del self._peers[old]
            peer = self._peers[remote] = _Peer()
        return peer

    def supports(self, remote: Any) -> bool | None:
        """Whether REMOTE's server speaks Q-Block: True, False, or None (not probed yet)."""
        peer = self._peers.get(remote)
        return peer.supports if peer is not None else None

    def learned(self, remote: Any, supports: bool) -> None:
        self._peer(remote).supports = supports

    def probing(self, remote: Any) -> asyncio.Future[bool] | None:
        """The probe of REMOTE under way, if any; `start_probe` makes one (so concurrent requests share it)."""
        peer = self._peers.get(remote)
        return peer.probing if peer is not None and peer.probing is not None and not peer.probing.done() else None

    def start_probe(self, remote: Any) -> asyncio.Future[bool]:
        peer = self._peer(remote)
        peer.probing = self.loop.create_future()
        return peer.probing

    def set_parameters(self, remote: Any, params: QBlockParameters) -> None:
        """The parameters in force for REMOTE's session (RFC 9362 sets them per DOTS session); bodies started
        later use them."""
        peer = self._peer(remote)
        peer.params = params
        if peer.receiver is not None:
            peer.receiver.params = params

    def applies(self, message: aiocoap.Message) -> bool:
        """Whether MESSAGE, a request, will go through Q-Block: a NON request to a server that speaks it, with a body
        larger than one block or a method whose answer is a body (GET, FETCH)."""
        peer = self._peers.get(message.remote)
        if peer is None or not peer.supports:
            return False
        if message.mtype is CON or (message.mtype is None and message.transport_tuning.reliability is True):
            return False  # RFC 9177 §7: a body's payloads are all CON or all NON; ours are NON
        options = message.opt
        if options.block1 is not None or options.block2 is not None:
            return False
        if options.get_option(QBLOCK1) or options.get_option(QBLOCK2):
            return False  # the probe, or a caller doing Q-Block itself
        return len(message.payload) > self._block_size(message.remote) or message.code in (GET, FETCH)

    @staticmethod
    def _szx(remote: Any) -> int:
        return min(6, getattr(remote, "maximum_block_size_exp", 6))

    def _block_size(self, remote: Any) -> int:
        return 16 << self._szx(remote)

    # --- outgoing requests

    def on_request(self, message: aiocoap.Message) -> bool:
        """Whether request MESSAGE was taken (and what stands for it sent); False: send it as it is."""
        if not self.applies(message):
            return False
        peer = self._peer(message.remote)
        now = self.loop.time()
        szx = self._szx(message.remote)
        if len(message.payload) > 16 << szx:
            self._send_all(self._upload(peer, message, szx, now))
        else:
            self._send(self._download(peer, message, szx, now))
        self._reschedule()
        return True

    def _upload(self, peer: _Peer, message: aiocoap.Message, szx: int, now: float) -> list[aiocoap.Message]:
        sender = Q1Sender(message.payload, peer.params, now=now, szx=szx, rng=self._rng)
        template = message.copy(payload=b"", mid=None, mtype=NON)
        template.remote = message.remote
        upload = _Upload(message.token, template, sender, self._tags.next())
        peer.uploads[message.token] = upload
        self.counts["q1_bodies"] += 1
        return self._blocks(peer, upload, sender.poll(now))

    def _blocks(self, peer: _Peer, upload: _Upload, blocks: list[SendBlock]) -> list[aiocoap.Message]:
        """One request per payload (§4.3), each on a new token (§6), all with the body's Request-Tag and Size1."""
        out = []
        for block in blocks:
            token = os.urandom(8)
            message = upload.template.copy(payload=block.payload, token=token, mid=None, mtype=NON)
            message.remote = upload.template.remote
            message.opt.add_option(OpaqueOption(QBLOCK1, block.option.encode()))
            message.opt.add_option(OpaqueOption(REQUEST_TAG, upload.tag))
            message.opt.size1 = block.size
            upload.tokens.add(token)
            peer.routes[token] = upload
            out.append(message)
        self.counts["q1_blocks"] += len(out)
        return out

    def _download(self, peer: _Peer, message: aiocoap.Message, szx: int, now: float) -> aiocoap.Message:
        # §4.1: Q-Block2 in a GET tells the server the client takes Q-Block2 bodies; 0/M asks for the whole body.
        message.opt.add_option(OpaqueOption(QBLOCK2, BlockOption(0, True, szx).encode()))
        message.mtype = NON
        request = message.copy()
        request.remote = message.remote
        observe = message.opt.observe == 0
        download = _Download(message.token, request, observe, now + peer.params.timeout_random(self._rng))
        old = peer.downloads.pop(message.token, None)
        if old is not None:
            self._end_download(peer, old)
        peer.downloads[message.token] = download
        peer.routes[message.token] = download
        while len(peer.downloads) > self.limits.total:  # bodies nobody asks for any more go first
            self._end_download(peer, next(iter(peer.downloads.values())))
        return message

    # --- incoming responses

    def on_response(self, response: aiocoap.Message) -> bool | None:
        """Take RESPONSE if it belongs to a Q-Block transfer: True when it was expected, False when it was not (an
        unknown token: aiocoap then ignores it or answers a CON with RST). None: not ours, aiocoap's as usual."""
        peer = self._peers.get(response.remote)
        transfer = peer.routes.get(response.token) if peer is not None else None
        if transfer is None:
            return None
        try:
            if isinstance(transfer, _Upload):
                return self._upload_answer(peer, transfer, response)
            return self._download_answer(peer, transfer, response)
        finally:
            self._reschedule()

    def resets(self, response: aiocoap.Message) -> bool:
        """Whether RESPONSE, which no request waits for, gets an RST: a NON 4.08 about a body we forgot (given up,
        or its caller cancelled it) or never sent. RFC 9177 §4.3 has the client forget the body's tokens precisely
        so that the server's 4.08 gets an RST and the server deletes the partial body (RFC 7252 §4.3 allows an RST
        to any NON)."""
        if response.mtype is not NON or response.code != REQUEST_ENTITY_INCOMPLETE:
            return False
        self.counts["resets"] += 1
        return True

    def _upload_answer(self, peer: _Peer, upload: _Upload, response: aiocoap.Message) -> bool:
        now = self.loop.time()
        sender = upload.sender
        if response.code == CONTINUE:
            raw = response.opt.get_option(QBLOCK1)
            try:
                option = BlockOption.decode(raw[0].encode()) if raw else None
            except QBlockError:
                option = None
            if option is not None:
                self._send_all(self._blocks(peer, upload, sender.on_continue(option, now)))
            return True
        if response.code == REQUEST_ENTITY_INCOMPLETE and response.opt.content_format == MISSING_BLOCKS_CONTENT_FORMAT:
            try:
                blocks = sender.on_missing(response.payload, now)
            except QBlockError as error:  # §5: a malformed list is dropped
                log.info("a 4.08 for Q-Block1 body %s dropped: %s", upload.tag.hex(), error.diagnostic)
                return True
            self._send_all(self._blocks(peer, upload, blocks))
            if sender.failed:
                self._end_upload(peer, upload, sender.failed)
            return True
        # The final answer (2.01, 2.04, an error): it goes up on the token aiocoap waits on (§4.3: release ours).
        sender.on_final()
        self._end_upload(peer, upload)
        # §4.3 (2.05 to FETCH): an observed FETCH's notifications come on the token of this answer (Figure 11), the
        # one token of the body the client keeps: they go up on the request's token as this answer does.
        observed = upload.template.opt.observe is not None and response.opt.observe is not None
        if _starts_q_block2_body(response) or (observed and response.code.is_successful()):
            return self._download_answer(peer, self._answer_body(peer, upload, response, observed), response)
        response.token = upload.token
        response.opt.delete_option(QBLOCK1)
        _strip_single_q_block2(response)
        return self._deliver(response)

    def _answer_body(
        self, peer: _Peer, upload: _Upload, response: aiocoap.Message, observed: bool = False
    ) -> _Download:
        """The answer to a Q-Block1 request is a Q-Block2 body (§4.7, §10.3): its payloads come on RESPONSE's token,
        and 'Continue' or requests for missing blocks are the request again with Q-Block2, the body's Request-Tag
        and no payload (§4.4, Figure 15); it goes up whole on the request's token, as an answer to a GET does."""
        request = upload.template.copy(mid=None, mtype=NON)
        request.remote = upload.template.remote
        request.opt.add_option(OpaqueOption(REQUEST_TAG, upload.tag))
        download = _Download(upload.token, request, observe=observed, resend_at=None)
        if observed:
            download.notify = response.token
            request.opt.observe = None  # requests for missing blocks carry no Observe (§4.5)
        old = peer.downloads.pop(upload.token, None)
        if old is not None:
            self._end_download(peer, old)
        peer.downloads[upload.token] = download
        download.tokens.add(response.token)
        peer.routes[response.token] = download
        while len(peer.downloads) > self.limits.total:
            self._end_download(peer, next(iter(peer.downloads.values())))
        return download

    def _download_answer(self, peer: _Peer, download: _Download, response: aiocoap.Message) -> bool:
        download.resend_at = None  # the server heard us: the engine asks for what is missing from now on
        raw = response.opt.get_option(QBLOCK2)
        option = None
        if raw:
            try:
                option = BlockOption.decode(raw[0].encode())
            except QBlockError as error:
                log.info("a Q-Block2 response dropped: %s", error.diagnostic)
                return True
        block2 = response.opt.block2
        if option is None and block2 is not None and block2.more and response.token == download.token:
            # A server that answered the probe with Q-Block2 but cuts this body in Block2 blocks, which this request
            # (sent without aiocoap's block-wise layer) cannot put together: fail it, and use Block2 from now on.
            peer.supports = False
            self._end_download(peer, download)
            self._fail(download.request.remote, download.token, QBlockFailed("Block2 answer to a Q-Block2 request"))
            return True
        if option is None or (option.num == 0 and not option.more):
            # A whole body in one payload (or an error): it is the answer. An error to a request for missing blocks
            # of a notification ends only that body; aiocoap keeps waiting for the next notification.
            if response.token not in (download.token, download.notify) and download.observe:
                return True
            response.opt.delete_option(QBLOCK2)
            if option is not None and response.opt.size2 == len(response.payload):
                response.opt.size2 = None
            return self._up(peer, download, response)
        self.counts["q2_blocks"] += 1
        receiver = peer.receiver
        if receiver is None:
            receiver = peer.receiver = Q2Receiver(peer.params, self.limits)
        etag, size2 = response.opt.etag, response.opt.size2
        if (etag is None or size2 is None) and response.token in download.tokens and download.first:
            # libcoap 4.3.5 answers a request for block 0 of a body as a new GET: block 0 without ETag and Size2
            # (§4.4, §4.6 want both). Taken as a block of the body asked for, whose size and M bit it must match.
            latest = next(reversed(download.first))
            etag = etag if etag is not None else latest
            size2 = size2 if size2 is not None else download.first[latest].opt.size2
        if etag in download.done:
            return True  # a late copy of a block of a body already delivered or replaced (§4.4: ignored)
        if etag is not None:
            kept = download.first.get(etag)
            # The response that goes up is a block of the body; one on the request's token carries the
            # notification's Observe value, which blocks sent again on request leave out (§4.5).
            if kept is None or (kept.opt.observe is None and response.opt.observe is not None):
                download.first[etag] = response
            while len(download.first) > 4:  # bodies replaced by newer ones: only the current one matters
                download.first.pop(next(iter(download.first)))
        events = receiver.on_block(
            download.token,
            etag=etag,
            option=option,
            payload=response.payload,
            size2=size2,
            now=self.loop.time(),
            max_age=response.opt.max_age,
        )
        for event in events:
            if isinstance(event, RequestBlocks):
                self._ask(peer, download, event)
            elif isinstance(event, BodyComplete):
                first = download.first.pop(event.tag, response)
                download.done.append(event.tag)
                whole = first.copy(payload=event.body, token=download.token)
                whole.remote = response.remote
                whole.opt.delete_option(QBLOCK2)
                whole.opt.delete_option(QBLOCK1)  # an answer to a Q-Block1 request may echo its last block
                whole.opt.size2 = None
                self.counts["q2_bodies"] += 1
                return self._up(peer, download, whole)
            elif isinstance(event, BodyAbandoned) and event.replaced is not None:
                # §4.4: the resource changed partway through; the old partial body is stale (its late blocks are
                # ignored, not taken for yet another body), the payload with the new ETag starts the new one, and
                # the client "may then request all of the new data" with 0/M.
                log.info("Q-Block2 body for token %s restarted: %s", download.token.hex(), event.reason)
                download.done.append(event.replaced)
                if not download.observe:  # a new notification comes whole by itself (§4.5)
                    self._ask_for(peer, download, (BlockOption(0, True, option.szx),))
            elif isinstance(event, BodyAbandoned):
                self._abandoned(peer, download, event.reason)
            elif isinstance(event, Rejected):
                log.info("a Q-Block2 payload dropped: %s", event.reason)
        return True

    def _up(self, peer: _Peer, download: _Download, response: aiocoap.Message) -> bool:
        response.token = download.token
        delivered = self._deliver(response)
        if not delivered or not download.observe or response.opt.observe is None:
            self._end_download(peer, download)  # answered, or nobody waits for it any more
        return delivered

    def _ask(self, peer: _Peer, download: _Download, event: RequestBlocks) -> None:
        """Requests for blocks (§4.4): the request again, on a new token, without Observe (§4.5) or Q-Block2 0/M.
        Block 0 is asked for on its own: libcoap 4.3.5 takes a request naming block 0 for a new GET and answers
        that block only, whatever else it names."""
        options = event.options
        if len(options) > 1 and options[0].num == 0:
            self._ask_for(peer, download, options[:1])
            options = options[1:]
        self._ask_for(peer, download, options)

    def _ask_for(self, peer: _Peer, download: _Download, options: tuple[BlockOption, ...]) -> None:
        token = os.urandom(8)
        message = download.request.copy(token=token, mid=None, mtype=NON)
        message.remote = download.request.remote
        message.opt.observe = None
        message.opt.delete_option(QBLOCK2)
        for option in options:
            message.opt.add_option(OpaqueOption(QBLOCK2, option.encode()))
        if len(download.tokens) >= 4 * peer.params.max_payloads:  # keep the newest: answers to old ones are late
            stale = next(t for t in download.tokens if t != download.notify)  # the notifications' stays
            download.tokens.discard(stale)
            peer.routes.pop(stale, None)
        download.tokens.add(token)
        peer.routes[token] = download
        self.counts["q2_requests"] += 1
        self._send(message)

    def _abandoned(self, peer: _Peer, download: _Download, reason: str) -> None:
        log.info("Q-Block2 body for token %s abandoned: %s", download.token.hex(), reason)
        if not download.observe:  # a notification lost is one notification; a response lost ends the request
            self._end_download(peer, download)
            self._fail(download.request.remote, download.token, QBlockFailed(reason))

    # --- ends

    def _end_upload(self, peer: _Peer, upload: _Upload, failure: str | None = None) -> None:
        peer.uploads.pop(upload.token, None)
        for token in upload.tokens:
            peer.routes.pop(token, None)
        if failure is not None:
            log.info("Q-Block1 body %s abandoned: %s", upload.tag.hex(), failure)
            self._fail(upload.template.remote, upload.token, QBlockFailed(failure))

    def _end_download(self, peer: _Peer, download: _Download) -> None:
        if peer.downloads.get(download.token) is download:
            del peer.downloads[download.token]
        if peer.routes.get(download.token) is download:
            del peer.routes[download.token]
        for token in download.tokens:
            peer.routes.pop(token, None)
        if peer.receiver is not None:
            peer.receiver.forget(download.token)

    # --- timers

    def _send_all(self, messages: list[aiocoap.Message]) -> None:
        for message in messages:
            self._send(message)

    def _reschedule(self) -> None:
        deadlines: list[float] = []
        for peer in self._peers.values():
            deadlines += [d for u in peer.uploads.values() if (d := u.sender.next_deadline()) is not None]
            deadlines += [d.resend_at for d in peer.downloads.values() if d.resend_at is not None]
            if peer.receiver is not None and (due := peer.receiver.next_deadline()) is not None:
                deadlines.append(due)
        self._timer.at(min(deadlines) if deadlines else None)

    def _fire(self) -> None:
        now = self.loop.time()
        for peer in list(self._peers.values()):
            for upload in list(peer.uploads.values()):
                self._send_all(self._blocks(peer, upload, upload.sender.poll(now)))
                if upload.sender.failed:
                    self._end_upload(peer, upload, upload.sender.failed)
            for download in list(peer.downloads.values()):
                if download.resend_at is not None and now >= download.resend_at:
                    self._resend(peer, download, now)
            if peer.receiver is not None:
                for event in peer.receiver.poll(now):
                    download = peer.downloads.get(event.key)
                    if download is None:
                        continue
                    if isinstance(event, RequestBlocks):
                        self._ask(peer, download, event)
                    elif isinstance(event, BodyAbandoned):
                        self._abandoned(peer, download, event.reason)
        self._reschedule()

    def _resend(self, peer: _Peer, download: _Download, now: float) -> None:
        """RFC 7252 §4.8's schedule for a NON request nobody answered yet (aiocoap does not resend NON), on the same
        token and a new Message ID, so a server that got the first one answers again instead of deduplicating."""
        if download.resends >= peer.params.non_max_retransmit:
            download.resend_at = None  # the caller's own timeout ends the request
            return
        download.resends += 1
        self.counts["resends"] += 1
        message = download.request.copy(mid=None, mtype=NON)
        message.remote = download.request.remote
        download.resend_at = now + peer.params.timeout_random(self._rng) * 2**download.resends
        self._send(message)

    def forget(self, remote: Any, token: bytes) -> None:
        """The request on TOKEN was given up by its caller: stop its transfer and forget every token of it, so late
        answers find no request (§4.3: the client MUST forget the tokens of a body it stops sending)."""
        peer = self._peers.get(remote)
        if peer is None:
            return
        upload = peer.uploads.get(token)
        if upload is not None:
            self._end_upload(peer, upload)
        download = peer.downloads.get(token)
        if download is not None:
            self._end_download(peer, download)
        self._reschedule()

    def forget_peer(self, remote: Any) -> None:
        """REMOTE's session ended: its transfers can never complete."""
        self._peers.pop(remote, None)
        self._reschedule()

    def keep(self, task: asyncio.Future[Any]) -> None:
        """A task of this client's (the §4.1 probe's exchange): referenced until done, cancelled by `close`."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()


def _strip_single_q_block2(response: aiocoap.Message) -> None:
    raw = response.opt.get_option(QBLOCK2)
    if raw and len(raw) == 1:
        try:
            option = BlockOption.decode(raw[0].encode())
        except QBlockError:
            return
        if option.num == 0 and not option.more:
            response.opt.delete_option(QBLOCK2)


def _starts_q_block2_body(response: aiocoap.Message) -> bool:
    """Whether RESPONSE is a payload of a Q-Block2 body of more than one block (not 0/_: a whole answer)."""
    raw = response.opt.get_option(QBLOCK2)
    if len(raw) != 1:
        return False
    try:
        option = BlockOption.decode(raw[0].encode())
    except QBlockError:
        return False
    return option.more or option.num > 0


def _closed(remote: Any) -> bool:
    connection = getattr(remote, "connection", None)
    return bool(getattr(connection, "closed", False))


def probe_message(remote: Any) -> aiocoap.Message:
    """The probe of §4.1 as libcoap sends it: a CON GET of /.well-known/core asking for its first 16-byte block with
    Q-Block2 (a CON, so a server without Q-Block answers 4.02 rather than ignoring it); a server that speaks
    Q-Block answers with a Q-Block2 option."""
    message = aiocoap.Message(code=GET, uri_path=(".well-known", "core"), transport_tuning=aiocoap.Reliable)
    message.remote = remote
    message.opt.add_option(OpaqueOption(QBLOCK2, BlockOption(0, False, PROBE_SZX).encode()))
    return message


def probe_answer(response: aiocoap.Message) -> bool:
    """Whether the answer to `probe_message` says the server speaks Q-Block: a success carrying a Q-Block2 option.
    Not any answer with one: libcoap 4.3.1, which has no Q-Block, echoes the option it did not know in its 4.02."""
    return response.code.is_successful() and bool(response.opt.get_option(QBLOCK2))


__all__ = ["QBlockClient", "QBlockFailed", "probe_answer", "probe_message"]
