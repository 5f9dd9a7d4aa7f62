"""The CoAP face of the DOTS signal channel: one aiocoap resource under /.well-known/dots.

It takes the client's identity from the (D)TLS session (opendots.transport.peer_identity), checks the
Content-Format, hands a plain Request with the CBOR bytes to the SignalService (the core decodes them once the
peer is authenticated, and not at all when they repeat the stored request), and encodes the answer.
Observations (mitigate and config, RFC 9132 §4.4.2.1, §4.5.3; tm, RFC 9244 §8.2) are kept per client: a notification is
only ever rendered for, and sent to, observers authenticated as the owner of what changed.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiocoap
import aiocoap.resource
from aiocoap.blockwise import Block1Spool, Block2Cache, IncompleteException
from aiocoap.error import RenderableError
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import NON

from opendots.domain import DOTS_CBOR_CONTENT_FORMAT
from opendots.model import (
    DEFAULT_MAX_SIZE,
    EncodedSignal,
    ModelError,
    decode_signal,
    encode_signal,
    encode_telemetry,
)
from opendots.signal.server.core import (
    Event,
    MitigationChanged,
    RedirectionChanged,
    Request,
    Response,
    SessionConfigChanged,
)
from opendots.signal.server.core.events import TelemetryChanged
from opendots.signal.server.core.messages import HEARTBEAT, Rejected, received_request
from opendots.signal.server.core.mitigations import content_view
from opendots.signal.server.core.paths import ConfigPath, MitigatePath, TelemetryPath, parse_path
from opendots.signal.server.core.query import parse_mitigation_query
from opendots.signal.server.shell.service import SignalService
from opendots.transport import over_tls, peer_identity
from opendots.transport.aiocoap_hooks import LeanAnswer, LeanResponse, block_of, prepared_answer
from opendots.transport.block1 import Block1Assembler, Complete, Continue, Refuse
from opendots.transport.coap_lean import NON as NON_TYPE
from opendots.transport.coap_lean import LeanRequest
from opendots.transport.qblock_server import uses_qblock

log = logging.getLogger(__name__)

DOTS_CBOR = DOTS_CBOR_CONTENT_FORMAT  # application/dots+cbor (RFC 9132 §10.4)
TEXT_PLAIN = 0
WELL_KNOWN_DOTS = (".well-known", "dots")
NO_RESPONSE_AT_ALL = 0x02 | 0x08 | 0x10  # RFC 7967 §2.1: not interested in 2.xx, 4.xx or 5.xx responses
RESOURCES = ("mitigate", "config", "hb", "tm-setup", "tm")  # RFC 9132 §4.2, RFC 9244 §6 (Table 2): named in the metrics
TELEMETRY = "ietf-dots-telemetry:"  # RFC 9244 bodies: their own CBOR key table and YANG module
_BLOCK_KEY_IGNORES = (OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.SIZE1, OptionNumber.OBSERVE)


@dataclass
class _Observation:
    client: str
    path: MitigatePath | ConfigPath | TelemetryPath
    query: tuple[str, ...]
    handle: Any
    """aiocoap ServerObservation."""
    content: str = "a"
    """Its Uri-Query 'c' (c, n or a): which members every notification carries."""


_CODE_TEXT = tuple(f"{code >> 5}.{code & 31:02d}" for code in range(256))
"""Each CoAP code byte as the request counters name it ("2.04")."""
_CODE_BYTES = {text: code for code, text in enumerate(_CODE_TEXT)}


def _code_byte(text: str) -> int:
    code = _CODE_BYTES.get(text)
    if code is None:  # not in the two-digit form ("2.4"): read as written
        major, minor = text.split(".")
        code = int(major) << 5 | int(minor)
    return code


def encoded(response: Response) -> tuple[int, bytes, int | None, int | None]:
    """A core Response as CoAP puts it on the wire: code byte, payload (CBOR body, or a plain-text diagnostic),
    Content-Format, Max-Age."""
    code = _code_byte(response.code)
    body = response.body
    if body is not None:
        try:
            # Bodies the server built itself: not validated in production (~3x the encoding cost); the test suites
            # turn validation back on (opendots.model.codec.validate_every_encoding) so a builder bug still fails.
            if type(body) is EncodedSignal:  # encoded once already (a GET of an unchanged mitigation, a PUT's ack)
                payload = encode_signal(body, validate=False)
            else:
                encode = encode_telemetry if next(iter(body), "").startswith(TELEMETRY) else encode_signal
                payload = encode(body, validate=False)
        except ModelError as problem:  # our own output failed validation (tests): a bug, never send it
            log.error(
                "refusing to send an invalid body (%s): %s", problem.diagnostic, json.dumps(response.body, default=str)
            )
            return int(Code.INTERNAL_SERVER_ERROR), b"invalid response body", None, None
        return code, payload, DOTS_CBOR, response.max_age
    if response.diagnostic:
        return code, response.diagnostic.encode(), TEXT_PLAIN, response.max_age
    return code, b"", None, response.max_age


def _lean_encoded(answer: Response | None) -> LeanResponse:
    """ANSWER on the lean path's wire (None: rendering failed, 5.00). The answers the core hands out again and
    again (the heartbeat's 2.04, PUT acknowledgements, cached GET answers: the same Response objects, their bodies
    encoded once) are kept by identity in _LEAN_ANSWERS, so the next one skips this."""
    if answer is None:
        return LeanResponse(int(Code.INTERNAL_SERVER_ERROR), b"internal error", TEXT_PLAIN)
    code, body, content_format, max_age = encoded(answer)
    lean = LeanResponse(code, body, content_format, max_age, answer.silent)
    if type(answer.body) is EncodedSignal or (answer.body is None and answer.diagnostic is None):
        if len(_LEAN_ANSWERS) >= LEAN_ANSWERS_KEPT:
            _LEAN_ANSWERS.clear()
        _LEAN_ANSWERS[id(answer)] = (answer, lean)
    return lean


_LEAN_ANSWERS: dict[int, tuple[Response, LeanResponse]] = {}
"""Lean answers by the id() of their Response, kept with it: while an entry lives, its Response does, so no other
object can take that id. Responses are frozen; a LeanResponse is only read once made."""
LEAN_ANSWERS_KEPT = 4096
"""Emptied when full (bounded memory, nothing to age): as many as the core keeps answers (RENDERED_BODIES)."""


def to_message(response: Response) -> aiocoap.Message:
    """A core Response as a CoAP message (CBOR body, or a plain-text diagnostic)."""
    code, payload, content_format, max_age = encoded(response)
    message = aiocoap.Message(code=Code(code), payload=payload)
    if content_format is not None:
        message.opt.content_format = content_format
    if max_age is not None:
        message.opt.max_age = max_age
    return message


class _Block1Spool(Block1Spool):
    """aiocoap 0.4.17's spool lets the ValueError of a block that leaves a gap (or overlaps) escape, although its
    own comment means it as 4.08 Request Entity Incomplete (RFC 7959 §2.9.2): the client got a 5.00, the log a
    traceback. Found by fuzzing (tools/fuzz_campaign.py)."""

    def feed_and_take(self, req: aiocoap.Message) -> aiocoap.Message:
        try:
            return super().feed_and_take(req)
        except ValueError:
            raise IncompleteException from None


class _Block2Cache(Block2Cache):
    """aiocoap 0.4.17's cache answers a GET for block N > 0 with nothing cached (the cache expired, or the peer
    starts mid-way) 4.08 Request Entity Incomplete, an upload's code. RFC 7959 §2.4 lets a server regenerate the
    body instead; its ETag tells the client whether the body changed between blocks (RFC 9132 §4.4.2)."""

    async def extract_or_insert(
        self, req: aiocoap.Message, response_builder: Callable[[], Awaitable[aiocoap.Message]]
    ) -> aiocoap.Message:
        try:
            return await super().extract_or_insert(req, response_builder)
        except IncompleteException:
            return block_of(await response_builder(), req)  # a block past the end: BadRequest, 4.00


class DotsResource(aiocoap.resource.ObservableResource, aiocoap.resource.PathCapable):
    """mitigate, config, hb and tm-setup, all below /.well-known/dots (the remaining Uri-Path reaches `render`)."""

    def __init__(self, service: SignalService) -> None:
        super().__init__()
        self._block1 = _Block1Spool()  # aiocoap's Resource reassembles Block1 requests in this attribute
        self._block2 = _Block2Cache()  # and keeps the bodies it answers in Block2 blocks in this one
        self.service = service
        self._observers: dict[str, dict[int, _Observation]] = {}
        """Per client name: a change is only ever looked up among its owner's observers (O(own), not O(all))."""
        self._ids = itertools.count()
        self.requests: collections.Counter[tuple[str, str, str]] = collections.Counter()
        """(method, resource, response code) of every request answered: for metrics."""
        self.remotes: dict[str, Any] = {}
        """Latest aiocoap remote of each client (by name): where server-initiated heartbeats go."""
        self._block_tasks: set[asyncio.Task[None]] = set()
        self.uploads = Block1Assembler(DEFAULT_MAX_SIZE)
        """Unfinished Block1 request bodies (RFC 7959 §2.5), checked against the body limit on every block."""

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return not uses_qblock(request)  # Q-Block bodies arrive whole and leave whole: the transport cuts them

    def answer_now(self, pipe: Any) -> bool:
        """Answer a request that is neither an Observe registration nor part of a block-wise transfer (nearly
        every PUT, DELETE and heartbeat) synchronously, from the transport's receive callback (see
        opendots.transport.aiocoap_hooks.PromptAnswerContext); False leaves the request to aiocoap's generic path.
        A response too large for one message still goes through aiocoap's Block2 cache."""
        request = pipe.request
        prepared = prepared_answer(request)
        if prepared is not None:  # carried out on the lean path, its answer too large for one message
            self._send(pipe, prepared, None)
            return True
        options = request.opt
        if options.observe is not None and request.code not in (aiocoap.GET, aiocoap.FETCH):
            options.observe = None  # RFC 7641 §2: Observe means nothing on other methods; aiocoap would trip on it
        block1 = options.block1
        if block1 is not None:
            upload = self.take_block(request)
            if not isinstance(upload, Complete):
                pipe.add_response(upload, is_last=True)
                return True
            request.payload = upload.body
            options.block1 = None
        elif options.observe is not None or options.block2 is not None:
            return False
        if self.service.awaited:
            # The store's write is awaited (PostgreSQL): answered from a task once it is durable, not from here.
            task = asyncio.get_running_loop().create_task(self._answer_later(pipe, block1))
            self._block_tasks.add(task)
            task.add_done_callback(self._block_tasks.discard)
            return True
        try:
            response = self._answer(request)
        except Exception:  # a bug: the client gets a 5.00 as aiocoap would answer, the server keeps running
            log.exception("rendering %s %s failed", request.code, "/".join(options.uri_path))
            response = _internal_error()
        self._send(pipe, response, block1)
        return True

    def answer_lean(self, remote: Any, request: LeanRequest) -> LeanAnswer:
        """answer_now for a plain request on the DTLS lean path (opendots.transport.aiocoap_hooks.lean) to
        /.well-known/dots/...: the same bookkeeping (where the client's heartbeats go, the request counters, 4.15,
        5.00 on a bug, RFC 9132 §4.4.3's silence) without aiocoap Messages. None (nothing done) for any other path
        (DotsSite serves it) and for a CON to a service whose store is awaited (answer_now answers it from a task,
        with aiocoap's Empty ACK if that takes long); a coroutine for a NON to such a service, whose answer is sent
        once the store's write is durable (RFC 9132 §4.4.1)."""
        path = request.path
        if len(path) <= len(WELL_KNOWN_DOTS) or path[:2] != WELL_KNOWN_DOTS:
            return None
        path = path[2:]
        if path == ("",):  # a trailing slash, as Site reads it
            path = ()
        service = self.service
        if service.awaited:
            return self._answer_lean_awaited(remote, request, path) if request.mtype == NON_TYPE else None
        try:
            decoded = self._lean_request(remote, request, path)
            answer = decoded if isinstance(decoded, Response) else service.handle(decoded)
        except Exception:  # as answer_now: a 5.00, the server keeps running
            log.exception("rendering %s %s failed", request.method, "/".join(path))
            answer = None
        return self._lean_response(remote, request, path, answer)

    async def _answer_lean_awaited(self, remote: Any, request: LeanRequest, path: tuple[str, ...]) -> LeanAnswer:
        try:
            decoded = self._lean_request(remote, request, path)
            answer = decoded if isinstance(decoded, Response) else await self.service.answer(decoded)
        except Exception:  # as answer_now
            log.exception("rendering %s %s failed", request.method, "/".join(path))
            answer = None
        return self._lean_response(remote, request, path, answer)

    def _lean_request(self, remote: Any, request: LeanRequest, path: tuple[str, ...]) -> Request | Response:
        """`_request` for the lean path: the core's Request, or the 4.15 of a body that is not CBOR."""
        identity = remote.peer_identity
        cuid = identity.cuid if identity is not None else None
        client = self.service.core.client_name(cuid)
        if client is not None:
            self.remotes[client] = remote
        payload = request.payload or None
        if payload is not None and request.content_format not in (None, DOTS_CBOR):
            return Response("4.15", diagnostic="the payload must be application/dots+cbor (271)")
        return received_request(request.method, path, cuid, payload, request.query, request.if_match_empty)

    def _lean_response(
        self, remote: Any, request: LeanRequest, path: tuple[str, ...], answer: Response | None
    ) -> LeanResponse | aiocoap.Message:
        """ANSWER (None: rendering failed, 5.00) counted and encoded for the lean path."""
        kept = _LEAN_ANSWERS.get(id(answer))
        lean = kept[1] if kept is not None and kept[0] is answer else _lean_encoded(answer)
        resource = path[0] if path and path[0] in RESOURCES else "other"
        self.requests[(request.method, resource, _CODE_TEXT[lean.code])] += 1
        body = lean.payload
        if body and len(body) > remote.maximum_payload_size:  # served in Block2 blocks by aiocoap's path (answer_now)
            message = aiocoap.Message(code=Code(lean.code), payload=body, content_format=lean.content_format)
            if lean.max_age is not None:
                message.opt.max_age = lean.max_age
            if lean.silent:
                message.opt.no_response = NO_RESPONSE_AT_ALL
            return message
        return lean

    async def _answer_later(self, pipe: Any, block1: Any) -> None:
        """answer_now's work for a service whose store is awaited."""
        request = pipe.request
        try:
            response = await self._answer_awaited(request)
        except Exception:  # as answer_now
            log.exception("rendering %s %s failed", request.code, "/".join(request.opt.uri_path))
            response = _internal_error()
        self._send(pipe, response, block1)

    def _send(self, pipe: Any, response: aiocoap.Message, block1: Any) -> None:
        request = pipe.request
        if block1 is not None:
            response.opt.block1 = block1  # RFC 7959 §2.3: the final response echoes the last block's option
        if _needs_blocks(request, response):
            _tag(request, response)
            task = asyncio.get_running_loop().create_task(self._answer_in_blocks(pipe, response))
            self._block_tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._block_tasks.discard)
        else:
            pipe.add_response(response, is_last=True)

    def take_block(self, request: aiocoap.Message) -> aiocoap.Message | Complete:
        """Feed one Block1 block to the assembler: the whole body once complete, else the answer to send now (also
        the gateway's, whose relayed requests come block-wise too: opendots.gateway.shell)."""
        block1 = request.opt.block1
        payload = request.payload
        peer = request.remote.blockwise_key
        key = (peer, request.get_cache_key(_BLOCK_KEY_IGNORES))
        bert = block1.size_exponent == 7  # RFC 8323 §6: one or more 1024-byte blocks per message, numbered per 1024
        whole = len(payload) == block1.size or (bert and payload and len(payload) % 1024 == 0)
        if block1.more and not whole:
            result: Continue | Refuse | Complete = self.uploads.refuse(
                key, "4.00", f"a block with more to come must carry {block1.size} bytes, not {len(payload)}"
            )
        else:
            result = self.uploads.feed(
                peer,
                key,
                start=block1.block_number * (1024 if bert else block1.size),
                more=block1.more,
                payload=payload,
                size1=request.opt.size1,
                now=asyncio.get_running_loop().time(),
            )
        if isinstance(result, Complete):
            return result
        path = request.opt.uri_path
        resource = path[0] if path and path[0] in RESOURCES else "other"
        if isinstance(result, Continue):
            response = aiocoap.Message(code=Code.CONTINUE)
            response.opt.block1 = block1
            return response
        major, minor = result.code.split(".")
        response = aiocoap.Message(
            code=Code((int(major) << 5) | int(minor)), payload=result.diagnostic.encode(), content_format=TEXT_PLAIN
        )
        if result.size1 is not None:
            response.opt.size1 = result.size1
        self.requests[(request.code.name, resource, response.code.dotted)] += 1
        return response

    def session_closed(self, remote: Any) -> None:
        """REMOTE's DTLS session or TLS connection ended: its unfinished Block1 uploads can never complete (a new
        session is a new peer, RFC 7252 §9.1.2), so they go now rather than after the 93 s idle expiry."""
        self.uploads.forget_peer(remote.blockwise_key)

    async def _answer_in_blocks(self, pipe: Any, response: aiocoap.Message) -> None:
        try:
            first_block = await self._block2.extract_or_insert(pipe.request, lambda: _ready(response))
        except RenderableError as refused:  # a block number past the end of the body: 4.00
            first_block = refused.to_message()
        except Exception:  # as answer_now: never leave the client without an answer, never lose the server
            log.exception("splitting the answer to %s into blocks failed", pipe.request.code)
            first_block = _internal_error()
        pipe.add_response(first_block, is_last=True)

    async def render_to_pipe(self, pipe: Any) -> None:
        """aiocoap's path (used when answer_now declined, or by a plain aiocoap Context)."""
        if not self.answer_now(pipe):
            await super().render_to_pipe(pipe)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        response = await self._answer_awaited(request) if self.service.awaited else self._answer(request)
        if _needs_blocks(request, response):
            _tag(request, response)
        return response

    def _answer(self, request: aiocoap.Message) -> aiocoap.Message:
        """The answer, the store written in place (the synchronous fast path)."""
        decoded = self._request(request)
        answer = decoded if isinstance(decoded, aiocoap.Message) else self.service.handle(decoded)
        return self._respond(request, answer)

    async def _answer_awaited(self, request: aiocoap.Message) -> aiocoap.Message:
        """The answer once the store's awaited write is durable (`SignalService.answer`)."""
        decoded = self._request(request)
        answer = decoded if isinstance(decoded, aiocoap.Message) else await self.service.answer(decoded)
        return self._respond(request, answer)

    def _respond(self, request: aiocoap.Message, answer: Response | aiocoap.Message) -> aiocoap.Message:
        if isinstance(answer, aiocoap.Message):
            response = answer
        else:
            response = to_message(answer)
            if answer.silent and not over_tls(request):
                # RFC 9132 §4.4.3 "silently ignored": aiocoap's message layer turns a response marked No-Response
                # for every class (RFC 7967) into the bare ACK a CON needs, and sends nothing for a NON. Over TLS
                # (RFC 8323: no ACKs, no reordering) the client gets the 4.04: silence would leave its request
                # pending for good, and the reordering the rule is about cannot happen there.
                response.opt.no_response = NO_RESPONSE_AT_ALL
        path = request.opt.uri_path
        resource = path[0] if path and path[0] in RESOURCES else "other"
        self.requests[(request.code.name, resource, response.code.dotted)] += 1
        return response

    def _request(self, message: aiocoap.Message) -> Request | aiocoap.Message:
        identity = peer_identity(message)
        client = self.service.core.client_name(identity.cuid if identity is not None else None)
        if client is not None:
            self.remotes[client] = message.remote
        payload = message.payload or None
        if payload is not None and message.opt.content_format not in (None, DOTS_CBOR):
            return to_message(Response("4.15", diagnostic="the payload must be application/dots+cbor (271)"))
        if_match = message.opt.if_match
        return Request(
            method=message.code.name,
            path=tuple(message.opt.uri_path),
            peer=identity.cuid if identity is not None else None,
            payload=payload,
            query=tuple(message.opt.uri_query),
            observe=message.opt.observe,
            if_match_empty=bool(if_match) and all(tag == b"" for tag in if_match),
        )

    async def add_observation(self, request: aiocoap.Message, serverobservation: Any) -> None:
        identity = peer_identity(request)
        client = self.service.core.client_name(identity.cuid if identity else None)
        if client is None or request.code != aiocoap.GET:
            return _decline(serverobservation)
        try:
            path = parse_path(tuple(request.opt.uri_path))
        except Exception:
            return _decline(serverobservation)
        if not isinstance(path, MitigatePath | ConfigPath | TelemetryPath):
            return _decline(serverobservation)
        query = tuple(request.opt.uri_query)
        try:
            content = parse_mitigation_query(query).content if not isinstance(path, ConfigPath) else "a"
        except Rejected:
            return _decline(serverobservation)  # the GET itself is refused (4.00): no observation
        key = next(self._ids)
        own = self._observers.setdefault(client, {})
        own[key] = _Observation(client, path, query, serverobservation, content)
        serverobservation.accept(lambda: self._forget_observation(client, key))

    def _forget_observation(self, client: str, key: int) -> None:
        own = self._observers.get(client)
        if own is not None:
            own.pop(key, None)
            if not own:
                del self._observers[client]

    def observations(self, client: str | None = None) -> list[_Observation]:
        if client is not None:
            return list(self._observers.get(client, {}).values())
        return [observation for own in self._observers.values() for observation in own.values()]

    def observer_count(self, client: str | None = None) -> int:
        return len(self.observations(client))

    def notify(self, event: Event) -> None:
        """Turn a core event into Non-confirmable notifications for the owner's observers only."""
        if isinstance(event, MitigationChanged):
            self._mitigation_changed(event)
        elif isinstance(event, SessionConfigChanged):
            for observation in self.observations(event.client):
                if isinstance(observation.path, ConfigPath):
                    observation.handle.trigger()
        elif isinstance(event, TelemetryChanged):
            self._telemetry_changed(event)
        elif isinstance(event, RedirectionChanged) and event.body is not None:
            for observation in self.observations():
                observation.handle.trigger(
                    _non(to_message(Response("5.03", body=event.body, max_age=event.max_age))), is_last=True
                )

    def _mitigation_changed(self, event: MitigationChanged) -> None:
        now = self.service.clock()
        for observation in self.observations(event.client):
            path = observation.path
            if not isinstance(path, MitigatePath) or path.cuid != event.cuid:
                continue
            if path.mid is not None and path.mid != event.mid:
                continue
            response = Response("2.05", body=content_view(event.snapshot, observation.content))
            if path.mid is None:
                current = self.service.core.render_mitigations(event.client, event.cuid, None, observation.query, now)
                if current.code == "2.05":
                    response = current
            observation.handle.trigger(_non(to_message(response)))

    def _telemetry_changed(self, event: TelemetryChanged) -> None:
        """RFC 9244 §8.2: the client's observers of that cuid get the GET re-rendered; a 4.04 (what they observe is
        gone) is the last notification (RFC 7641 §3.2)."""
        for observation in self.observations(event.client):
            path = observation.path
            if isinstance(path, TelemetryPath) and path.cuid == event.cuid:
                current = self.service.core.render_telemetry(event.client, path.cuid, path.tmid, observation.query)
                observation.handle.trigger(_non(to_message(current)), is_last=not current.is_success)


def _needs_blocks(request: aiocoap.Message, response: aiocoap.Message) -> bool:
    if uses_qblock(request):
        return False  # sent whole to the transport, which sends it in Q-Block2 blocks (RFC 9177 §4.4)
    block2 = request.opt.block2
    size = len(response.payload)
    return size > request.remote.maximum_payload_size or (block2 is not None and size > block2.size)


def _tag(request: aiocoap.Message, response: aiocoap.Message) -> None:
    """RFC 9132 §4.4.2: a GET answered in Block2 blocks carries an ETag (the same in every block), so a client can
    tell that blocks came from one representation of a resource that changes (c=n, c=a)."""
    if request.code == aiocoap.GET and response.code.is_successful() and response.opt.etag is None:
        response.opt.etag = hashlib.blake2b(response.payload, digest_size=8).digest()


def _decline(serverobservation: Any) -> None:
    """No observation: aiocoap (0.4.17) calls the cancellation callback of every observation it offered, accepted or
    not, so accept and withdraw at once (an early deregistration): the request gets its answer alone, instead of the
    answer and an AttributeError logged after it. Found by fuzzing (tools/fuzz_campaign.py)."""
    serverobservation.accept(lambda: None)
    serverobservation.deregister()


def _internal_error() -> aiocoap.Message:
    """What a client gets when rendering its request hit a bug: 5.00 with a plain-text diagnostic."""
    return aiocoap.Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"internal error", content_format=TEXT_PLAIN)


async def _ready(message: aiocoap.Message) -> aiocoap.Message:
    return message


def _non(message: aiocoap.Message) -> aiocoap.Message:
    """RFC 9132 §4.4.2.1: notifications are always Non-confirmable."""
    message.mtype = NON
    return message


class WellKnownCore(aiocoap.resource.Resource):
    """/.well-known/core (RFC 6690): the DOTS signal channel's entry point. It is what libcoap's `-L 5` probes with a
    Q-Block2 option to learn whether the server speaks Q-Block (RFC 9177 §4.1); the answer carries Q-Block2 then."""

    LINKS = b"</.well-known/dots>;ct=271"

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return not uses_qblock(request)

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=self.LINKS, content_format=40)  # application/link-format


class DotsSite(aiocoap.resource.Site):
    """The server's root: hands /.well-known/dots/... to the DOTS resource directly.

    aiocoap's Site strips the path by copying the whole request (a deepcopy of its options, the single largest
    cost of a PUT after the store); here the path of the incoming request is shortened in place. Any other
    path (/.well-known/core, unknown ones) goes through the ordinary Site.
    """

    def __init__(self, resource: DotsResource) -> None:
        super().__init__()
        self.dots = resource
        # The lean path's answers (/.well-known/dots/... only, None for anything else): the resource's own method,
        # no frame of the site's in between on every message.
        self.answer_lean: Callable[[Any, LeanRequest], LeanAnswer] = resource.answer_lean
        self.add_resource(WELL_KNOWN_DOTS, resource)
        self.add_resource((".well-known", "core"), WellKnownCore())

    def answer_now(self, pipe: Any) -> bool:
        """/.well-known/dots/... answered on the spot when the DOTS resource can (PromptAnswerContext)."""
        if not self._strip_dots_prefix(pipe.request.opt):
            return False
        if self.dots.answer_now(pipe):
            return True
        pipe.request.opt.uri_path = (*WELL_KNOWN_DOTS, *pipe.request.opt.uri_path)  # aiocoap's path strips it again
        return False

    async def render_to_pipe(self, pipe: Any) -> None:
        if self._strip_dots_prefix(pipe.request.opt):
            return await self.dots.render_to_pipe(pipe)
        return await super().render_to_pipe(pipe)

    @staticmethod
    def _strip_dots_prefix(options: Any) -> bool:
        path = options.uri_path
        if len(path) > len(WELL_KNOWN_DOTS) and path[:2] == WELL_KNOWN_DOTS and options.uri_path_abbrev is None:
            remainder = path[2:]
            options.uri_path = () if remainder == ("",) else remainder  # as Site does for a trailing slash
            return True
        return False


def build_site(service: SignalService) -> tuple[aiocoap.resource.Site, DotsResource]:
    # Load the YANG schema now, not on the first client's request (~1 s): decode a heartbeat once.
    decode_signal(encode_signal({HEARTBEAT: {"peer-hb-status": True}}))
    resource = DotsResource(service)
    return DotsSite(resource), resource
