"""The CoAP face of the DOTS signal channel: one aiocoap resource under /.well-known/dots.

It decodes CBOR with opendots.model, takes the client's identity from the (D)TLS session
(opendots.transport.peer_identity), hands a plain Request to the SignalService, and encodes the answer.
Observations (mitigate and config, RFC 9132 §4.4.2.1, §4.5.3) are kept per client: a notification is
only ever rendered for, and sent to, observers authenticated as the owner of what changed.
"""

from __future__ import annotations

import collections
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import aiocoap
import aiocoap.resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import NON

from opendots.model import ModelError, decode_signal, encode_signal
from opendots.signal.core import (
    Event,
    MitigationChanged,
    RedirectionChanged,
    Request,
    Response,
    SessionConfigChanged,
)
from opendots.signal.core.messages import HEARTBEAT, Rejected
from opendots.signal.core.mitigations import content_view
from opendots.signal.core.paths import ConfigPath, MitigatePath, parse_path
from opendots.signal.core.query import parse_mitigation_query
from opendots.signal.server.service import SignalService
from opendots.transport import peer_identity

log = logging.getLogger(__name__)

DOTS_CBOR = 271  # Content-Format application/dots+cbor (RFC 9132 §10.4)
TEXT_PLAIN = 0
WELL_KNOWN_DOTS = (".well-known", "dots")


@dataclass
class _Observation:
    client: str
    path: MitigatePath | ConfigPath
    query: tuple[str, ...]
    handle: Any
    """aiocoap ServerObservation."""
    content: str = "a"
    """Its Uri-Query 'c' (c, n or a): which members every notification carries."""


def to_message(response: Response) -> aiocoap.Message:
    """A core Response as a CoAP message (CBOR body, or a plain-text diagnostic)."""
    major, minor = response.code.split(".")
    message = aiocoap.Message(code=Code((int(major) << 5) | int(minor)))
    if response.body is not None:
        try:
            # Bodies the server built itself: not validated in production (~3x the encoding cost); the test suites
            # turn validation back on (opendots.model.codec.validate_every_encoding) so a builder bug still fails.
            message.payload = encode_signal(response.body, validate=False)
        except ModelError as problem:  # our own output failed validation (tests): a bug, never send it
            log.error("refusing to send an invalid body (%s): %r", problem.diagnostic, response.body)
            return aiocoap.Message(code=Code.INTERNAL_SERVER_ERROR, payload=b"invalid response body")
        message.opt.content_format = DOTS_CBOR
    elif response.diagnostic:
        message.payload = response.diagnostic.encode()
        message.opt.content_format = TEXT_PLAIN
    if response.max_age is not None:
        message.opt.max_age = response.max_age
    return message


class DotsResource(aiocoap.resource.ObservableResource, aiocoap.resource.PathCapable):
    """mitigate, config and hb, all below /.well-known/dots (the remaining Uri-Path reaches `render`)."""

    def __init__(self, service: SignalService) -> None:
        super().__init__()
        self.service = service
        self._observers: dict[int, _Observation] = {}
        self._ids = itertools.count()
        self.requests: collections.Counter[tuple[str, str, str]] = collections.Counter()
        """(method, resource, response code) of every request answered: for metrics."""
        self.remotes: dict[str, Any] = {}
        """Latest aiocoap remote of each client (by name): where server-initiated heartbeats go."""

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return True

    async def render_to_pipe(self, pipe: Any) -> None:
        """A request that is neither an Observe registration nor part of a block-wise transfer (nearly every
        PUT, DELETE and heartbeat) is answered here directly: aiocoap's generic path adds three coroutine layers
        and the block spools, which return such a request and its response unchanged. A response too large for
        one message still goes through aiocoap's Block2 cache."""
        request = pipe.request
        options = request.opt
        if options.observe is not None or options.block1 is not None or options.block2 is not None:
            return await super().render_to_pipe(pipe)
        response = self._answer(request)
        if len(response.payload) > request.remote.maximum_payload_size:
            response = await self._block2.extract_or_insert(request, lambda: _ready(response))
        pipe.add_response(response, is_last=True)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return self._answer(request)

    def _answer(self, request: aiocoap.Message) -> aiocoap.Message:
        decoded = self._request(request)
        response = decoded if isinstance(decoded, aiocoap.Message) else to_message(self.service.handle(decoded))
        path = request.opt.uri_path
        resource = path[0] if path and path[0] in ("mitigate", "config", "hb") else "other"
        self.requests[(request.code.name, resource, response.code.dotted)] += 1
        return response

    def _request(self, message: aiocoap.Message) -> Request | aiocoap.Message:
        identity = peer_identity(message)
        client = self.service.core.client_name(identity.cuid if identity is not None else None)
        if client is not None:
            self.remotes[client] = message.remote
        body = None
        if message.payload:
            if message.opt.content_format not in (None, DOTS_CBOR):
                return to_message(Response("4.15", diagnostic="the payload must be application/dots+cbor (271)"))
            try:
                body = decode_signal(message.payload)
            except ModelError as problem:
                return to_message(Response(problem.code, diagnostic=problem.diagnostic))
        if_match = message.opt.if_match
        return Request(
            method=message.code.name,
            path=tuple(message.opt.uri_path),
            peer=identity.cuid if identity is not None else None,
            body=body,
            query=tuple(message.opt.uri_query),
            observe=message.opt.observe,
            if_match_empty=bool(if_match) and all(tag == b"" for tag in if_match),
        )

    async def add_observation(self, request: aiocoap.Message, serverobservation: Any) -> None:
        identity = peer_identity(request)
        client = self.service.core.client_name(identity.cuid if identity else None)
        if client is None or request.code != aiocoap.GET:
            return
        try:
            path = parse_path(tuple(request.opt.uri_path))
        except Exception:
            return
        if not isinstance(path, MitigatePath | ConfigPath):
            return
        query = tuple(request.opt.uri_query)
        try:
            content = parse_mitigation_query(query).content if isinstance(path, MitigatePath) else "a"
        except Rejected:
            return  # the GET itself is refused (4.00): no observation
        key = next(self._ids)
        self._observers[key] = _Observation(client, path, query, serverobservation, content)
        serverobservation.accept(lambda: self._observers.pop(key, None))

    def observations(self) -> list[_Observation]:
        return list(self._observers.values())

    def observer_count(self, client: str | None = None) -> int:
        return sum(1 for o in self._observers.values() if client is None or o.client == client)

    def notify(self, event: Event) -> None:
        """Turn a core event into Non-confirmable notifications for the owner's observers only."""
        if isinstance(event, MitigationChanged):
            self._mitigation_changed(event)
        elif isinstance(event, SessionConfigChanged):
            for observation in list(self._observers.values()):
                if observation.client == event.client and isinstance(observation.path, ConfigPath):
                    observation.handle.trigger()
        elif isinstance(event, RedirectionChanged) and event.body is not None:
            for observation in list(self._observers.values()):
                observation.handle.trigger(
                    _non(to_message(Response("5.03", body=event.body, max_age=event.max_age))), is_last=True
                )

    def _mitigation_changed(self, event: MitigationChanged) -> None:
        now = self.service.clock()
        for observation in list(self._observers.values()):
            path = observation.path
            if observation.client != event.client or not isinstance(path, MitigatePath) or path.cuid != event.cuid:
                continue
            if path.mid is not None and path.mid != event.mid:
                continue
            response = Response("2.05", body=content_view(event.snapshot, observation.content))
            if path.mid is None:
                current = self.service.core.render_mitigations(event.client, event.cuid, None, observation.query, now)
                if current.code == "2.05":
                    response = current
            observation.handle.trigger(_non(to_message(response)))


async def _ready(message: aiocoap.Message) -> aiocoap.Message:
    return message


def _non(message: aiocoap.Message) -> aiocoap.Message:
    """RFC 9132 §4.4.2.1: notifications are always Non-confirmable."""
    message.mtype = NON
    return message


class DotsSite(aiocoap.resource.Site):
    """The server's root: hands /.well-known/dots/... to the DOTS resource directly.

    aiocoap's Site strips the path by copying the whole request (a deepcopy of its options, the single largest
    cost of a PUT after the store); here the path of the incoming request is shortened in place. Any other
    path (/.well-known/core, unknown ones) goes through the ordinary Site.
    """

    def __init__(self, resource: DotsResource) -> None:
        super().__init__()
        self.dots = resource
        self.add_resource(WELL_KNOWN_DOTS, resource)

    async def render_to_pipe(self, pipe: Any) -> None:
        options = pipe.request.opt
        path = options.uri_path
        if len(path) > len(WELL_KNOWN_DOTS) and path[:2] == WELL_KNOWN_DOTS and options.uri_path_abbrev is None:
            remainder = path[2:]
            options.uri_path = () if remainder == ("",) else remainder  # as Site does for a trailing slash
            return await self.dots.render_to_pipe(pipe)
        return await super().render_to_pipe(pipe)


def build_site(service: SignalService) -> tuple[aiocoap.resource.Site, DotsResource]:
    # Load the YANG schema now, not on the first client's request (~1 s): decode a heartbeat once.
    decode_signal(encode_signal({HEARTBEAT: {"peer-hb-status": True}}))
    resource = DotsResource(service)
    return DotsSite(resource), resource
