"""The CoAP edge of the client: DotsRequest → aiocoap message, aiocoap response → DotsResponse, NON retransmission.

aiocoap never retransmits NON requests, so `send` does it here, on the RFC 7252 §4.8 schedule computed by the
core from the session's max-retransmit / ack-timeout / ack-random-factor: every transmission is a new NON message
(new token) and the first answer to any of them wins. CON requests (session configuration) are retransmitted by
aiocoap itself; over TLS nothing is retransmitted (RFC 8323).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import aiocoap
import aiocoap.error

from opendots.errors import UnavailableError
from opendots.model import ModelError, decode_signal, decode_telemetry, encode_signal, encode_telemetry
from opendots.signal.client.core.requests import CONTENT_FORMAT_DOTS_CBOR, DotsRequest, DotsResponse
from opendots.signal.client.core.timing import SessionParameters, retransmission_schedule

log = logging.getLogger(__name__)
_METHODS = {"GET": aiocoap.GET, "PUT": aiocoap.PUT, "DELETE": aiocoap.DELETE}


class TransportFailure(UnavailableError):
    """The session could not carry the request (connection closed, handshake gone, ...)."""


class NoAnswer(UnavailableError, TimeoutError):
    """Every transmission of the request went unanswered."""


class _SessionTuning(aiocoap.TransportTuning):
    """aiocoap's CON retransmission driven by the negotiated session parameters (RFC 9132 §4.5.2: MUST use them)."""

    def __init__(self, parameters: SessionParameters, reliability: bool) -> None:
        self.ACK_TIMEOUT = float(parameters.ack_timeout)
        self.ACK_RANDOM_FACTOR = float(parameters.ack_random_factor)
        self.MAX_RETRANSMIT = int(parameters.max_retransmit)
        self.reliability = reliability


def build_message(
    base_uri: str, request: DotsRequest, *, reliable: bool, parameters: SessionParameters | None = None
) -> aiocoap.Message:
    confirmable = request.confirmable or reliable
    tuning = _SessionTuning(parameters or SessionParameters(), confirmable)
    message = aiocoap.Message(code=_METHODS[request.method], uri=base_uri, transport_tuning=tuning)
    message.opt.uri_path = request.path
    if request.query:
        message.opt.uri_query = request.query
    if request.if_match_empty:
        message.opt.if_match = [b""]
    if request.observe is not None:
        message.opt.observe = request.observe
    if request.body is not None:
        message.opt.content_format = CONTENT_FORMAT_DOTS_CBOR
        message.payload = (encode_telemetry if request.telemetry else encode_signal)(request.body)
    return message


def to_dots_response(message: aiocoap.Message, *, telemetry: bool = False) -> DotsResponse:
    """Decode a CoAP response (an RFC 9244 body when TELEMETRY); a payload that is not a DOTS body is kept as the
    diagnostic."""
    decode = decode_telemetry if telemetry else decode_signal
    body: dict[str, Any] | None = None
    diagnostic: str | None = None
    if message.payload:
        if message.opt.content_format == CONTENT_FORMAT_DOTS_CBOR or message.code.is_successful():
            try:
                body = decode(message.payload)
            except ModelError as error:
                diagnostic = f"undecodable DOTS body: {error.diagnostic}"
        else:
            try:
                body = decode(message.payload)
            except (ModelError, ValueError):
                diagnostic = message.payload.decode("utf-8", "replace")
    return DotsResponse(
        code=message.code.dotted,
        body=body,
        max_age=message.opt.max_age,
        diagnostic=diagnostic,
        observe=message.opt.observe,
    )


async def send(
    context: aiocoap.Context,
    base_uri: str,
    request: DotsRequest,
    *,
    reliable: bool,
    parameters: SessionParameters,
    timeout: float = 30.0,
    single: bool = False,
    rng: random.Random | None = None,
) -> DotsResponse:
    """Send REQUEST to the session at BASE_URI and return the first answer.

    NON over DTLS follows the retransmission schedule unless SINGLE (heartbeats: each one is sent once and the
    next heartbeat is the retry); TIMEOUT bounds the wait otherwise. Raises NoAnswer or TransportFailure.
    """
    if reliable or request.confirmable or single:
        pending = context.request(build_message(base_uri, request, reliable=reliable, parameters=parameters))
        try:
            async with asyncio.timeout(timeout):  # not wait_for: 3.11's can swallow a racing cancel
                answer = await pending.response
            return to_dots_response(answer, telemetry=request.telemetry)
        except TimeoutError:
            raise NoAnswer(f"no answer to {request.method} {request.uri_path} within {timeout:.1f} s") from None
        except aiocoap.error.Error as error:
            raise TransportFailure(str(error) or type(error).__name__) from error
    offsets = retransmission_schedule(parameters, rng)
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempts: list[asyncio.Future[aiocoap.Message]] = []
    try:
        for number, next_offset in enumerate(offsets[1:]):
            attempt = context.request(build_message(base_uri, request, reliable=False, parameters=parameters))
            attempts.append(asyncio.ensure_future(attempt.response))
            if number:
                log.debug("NON retransmission %d of %s %s", number, request.method, request.uri_path)
            wait = max(0.0, started + next_offset - loop.time())
            done, _ = await asyncio.wait(attempts, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                try:
                    return to_dots_response(future.result(), telemetry=request.telemetry)
                except aiocoap.error.Error as error:
                    raise TransportFailure(str(error) or type(error).__name__) from error
        raise NoAnswer(f"no answer to {request.method} {request.uri_path} after {len(attempts)} transmissions")
    finally:
        cancelled = False
        for future in attempts:
            if not future.done():
                future.cancel()
                cancelled = True
            else:
                with contextlib.suppress(BaseException):
                    future.exception()  # mark retrieved
        if cancelled:
            # aiocoap forgets a request whose response future was cancelled only in that future's done callback,
            # one loop iteration later; a context shut down before then (a one-shot run does so at once) fails
            # the cancelled future with InvalidStateError. Let the callbacks run first.
            await asyncio.sleep(0)
