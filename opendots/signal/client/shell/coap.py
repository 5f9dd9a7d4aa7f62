"""The CoAP edge of the client: DotsRequest → aiocoap message, aiocoap response → DotsResponse, NON retransmission.

aiocoap never retransmits NON requests, so `send` does it here (unless the transport moves the request with Q-Block,
RFC 9177, which retransmits only what was lost, on its own), on the RFC 7252 §4.8 schedule computed by the
core from the session's max-retransmit / ack-timeout / ack-random-factor: every transmission is a new NON message
(new token) and the first answer to any of them wins. CON requests (session configuration) are retransmitted by
aiocoap itself; over TLS nothing is retransmitted (RFC 8323).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import aiocoap
import aiocoap.error

from opendots.errors import UnavailableError
from opendots.model import ModelError, decode_signal, decode_telemetry, encode_signal, encode_telemetry
from opendots.signal.client.core.requests import CONTENT_FORMAT_DOTS_CBOR, DotsRequest, DotsResponse
from opendots.signal.client.core.timing import SessionParameters, retransmission_schedule
from opendots.transport import ClientRequest, client_request
from opendots.transport.qblock import QBlockLimits, QBlockParameters
from opendots.transport.qblock_client import QBlockFailed

log = logging.getLogger(__name__)
_METHODS = {"GET": aiocoap.GET, "PUT": aiocoap.PUT, "DELETE": aiocoap.DELETE}


RESPONSE_MAX_SIZE = QBlockLimits().max_body
"""The largest response body decoded (1 MiB, the Q-Block engine's bound on a body)."""


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
        self.parameters = parameters


def session_tuning(parameters: SessionParameters, confirmable: bool) -> aiocoap.TransportTuning:
    """CON (retransmitted by aiocoap on the session's parameters) when CONFIRMABLE, else NON."""
    return _SessionTuning(parameters, confirmable)


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
                # A response may pass the 64 KiB a request body stops at: a GET of 10,000 mitigations is ~450 KiB,
                # which Q-Block2 (or Block2) puts together within the transport's own bound on a body.
                body = decode(message.payload, RESPONSE_MAX_SIZE)
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


def qblock_parameters(parameters: SessionParameters) -> QBlockParameters | None:
    """The Q-Block engine's parameters for the session: the RFC 9362 values in force with PARAMETERS (the set that
    applies now), or None (RFC 9177's defaults) when the engine cannot use them."""
    try:
        return QBlockParameters(**parameters.robust().engine_values())
    except ValueError as problem:
        log.debug("RFC 9362 values unusable for Q-Block (%s); using RFC 9177's", problem)
        return None


async def start_request(context: aiocoap.Context, message: aiocoap.Message, timeout: float) -> ClientRequest:
    # The RFC 9177 §4.1 probe, once per session, may precede the first large body or GET: a third of the wait.
    parameters = getattr(message.transport_tuning, "parameters", None)
    try:
        return await client_request(
            context,
            message,
            qblock_parameters=qblock_parameters(parameters) if parameters is not None else None,
            probe_timeout=min(5.0, timeout / 3),
        )
    except aiocoap.error.Error as error:
        raise TransportFailure(str(error) or type(error).__name__) from error


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
    answer = await transmit(
        context,
        lambda: build_message(base_uri, request, reliable=reliable, parameters=parameters),
        f"{request.method} {request.uri_path}",
        confirmable=request.confirmable,
        reliable=reliable,
        parameters=parameters,
        timeout=timeout,
        single=single,
        rng=rng,
    )
    return to_dots_response(answer, telemetry=request.telemetry)


async def transmit(
    context: aiocoap.Context,
    make: Callable[[], aiocoap.Message],
    what: str,
    *,
    confirmable: bool,
    reliable: bool,
    parameters: SessionParameters,
    timeout: float = 30.0,
    single: bool = False,
    rng: random.Random | None = None,
    late: LateAnswer | None = None,
) -> aiocoap.Message:
    """The first answer to the message MAKE builds (WHAT names it in errors and logs), a new one per NON
    retransmission (new token), as `send` says; also what the gateway relays a downstream request with.

    LATE: when no answer came in time, each transmission aiocoap may still answer (a CON it retransmits, a message
    queued on a DTLS handshake) is handed to LATE(future) for LATE_WINDOW seconds instead of being forgotten: the
    gateway withdraws what was accepted after its client was told 5.03 (opendots.gateway.late)."""
    first = await start_request(context, make(), timeout)
    if reliable or confirmable or single or first.qblock:
        # Q-Block (RFC 9177) retransmits on its own: only missing blocks, never the whole body again.
        pending = first.pending
        keep = late is not None and not first.qblock
        try:
            async with asyncio.timeout(timeout):  # not wait_for: 3.11's can swallow a racing cancel
                return await (asyncio.shield(pending.response) if keep else pending.response)
        except asyncio.CancelledError:
            if keep:
                _hand_over(pending.response, late)
            raise
        except TimeoutError:
            if first.qblock:  # stop the transfer: its blocks and timers go (RFC 9177 §4.3)
                pending.response.cancel()
                await asyncio.sleep(0)  # let aiocoap's and the engine's done callbacks run (see below)
            elif keep:
                _hand_over(pending.response, late)
            raise NoAnswer(f"no answer to {what} within {timeout:.1f} s") from None
        except QBlockFailed as error:
            raise NoAnswer(f"no answer to {what}: {error}") from None
        except aiocoap.error.Error as error:
            raise TransportFailure(str(error) or type(error).__name__) from error
    offsets = retransmission_schedule(parameters, rng)
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempts: list[asyncio.Future[aiocoap.Message]] = []
    answered = False
    try:
        for number, next_offset in enumerate(offsets[1:]):
            attempt = first if not number else await start_request(context, make(), timeout)
            attempts.append(asyncio.ensure_future(attempt.pending.response))
            if number:
                log.debug("NON retransmission %d of %s", number, what)
            wait = max(0.0, started + next_offset - loop.time())
            done, _ = await asyncio.wait(attempts, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                answered = True
                try:
                    return future.result()
                except aiocoap.error.Error as error:
                    raise TransportFailure(str(error) or type(error).__name__) from error
        raise NoAnswer(f"no answer to {what} after {len(attempts)} transmissions")
    finally:
        cancelled = False
        for future in attempts:
            if not future.done() and late is not None and not answered:
                _hand_over(future, late)
            elif not future.done():
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


LATE_WINDOW = 120.0
"""Seconds a late answer is still listened for (`transmit`'s LATE): past RFC 7252's MAX_TRANSMIT_WAIT (93 s), after
which aiocoap itself gives a CON up."""


LateAnswer = Callable[[asyncio.Future[aiocoap.Message]], None]


def _hand_over(future: asyncio.Future[aiocoap.Message], late: LateAnswer) -> None:
    future.add_done_callback(late)
    asyncio.get_running_loop().call_later(LATE_WINDOW, future.cancel)  # bounded: nothing is listened for forever
