"""The gateway's upstream leg: our client agent (opendots.signal.client.shell.agent.ClientAgent) whose session the
relay sends the downstream requests on, as they came (NON or CON, block-wise when large, Observe registrations), and
whose session changes and redirections (RFC 9132 §4.6) reach the gateway (opendots.gateway.shell)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiocoap
import aiocoap.error

from opendots.gateway.relay import DOTS_CBOR, Outbound
from opendots.model import ModelError, decode_signal
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.client.shell import coap
from opendots.signal.client.shell.agent import REDIRECTED_SIGNAL, ClientAgent
from opendots.signal.client.shell.control import ControlError

if TYPE_CHECKING:
    from opendots.gateway.shell import Gateway

WELL_KNOWN_DOTS = (".well-known", "dots")
_METHODS = {"GET": aiocoap.GET, "PUT": aiocoap.PUT, "DELETE": aiocoap.DELETE}
UPSTREAM_OPERATIONS = frozenset({"ping", "session", "config-get", "config-set", "config-delete"})
"""The client agent's operations the admin socket keeps: the upstream leg's session and its configuration."""


class UpstreamUnavailable(Exception):
    """The upstream session cannot carry a request now (down, broken, or no answer in time)."""


class UpstreamRedirected(UpstreamUnavailable):
    """The upstream server answered 5.03 naming an alternate server (RFC 9132 §4.6): the upstream leg follows it."""


class UpstreamAgent(ClientAgent):
    """The client agent as the gateway's upstream leg: its session changes reach the gateway."""

    def __init__(self, gateway: Gateway, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gateway = gateway

    def _session_up(self, context: aiocoap.Context, connection: Any) -> None:
        super()._session_up(context, connection)
        self.gateway.upstream_changed(True)

    def _mark_lost(self, reason: str) -> None:
        super()._mark_lost(reason)
        self.gateway.upstream_changed(False)

    async def _session_down(self) -> None:
        self.gateway.upstream_changed(False)
        await super()._session_down()

    async def _control(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        if operation == "gateway":
            return self.gateway.status()
        if operation not in UPSTREAM_OPERATIONS:
            # The upstream 'mid's under the gateway's cuid are the relay's (opendots.store.gateway_state): a mid
            # the agent allocated on its own could replace a relayed mitigation.
            raise ControlError(f"{operation!r} is not available on a DOTS gateway's admin socket", "4.03")
        return await super()._control(operation, args)

    # --- relayed requests on the current session ---------------------------------------------------------------

    def _session(self) -> tuple[aiocoap.Context, str, bool]:
        connection, context = self.connection, self.context
        if connection is None or context is None or self._lost:
            raise UpstreamUnavailable("no session with the upstream DOTS server")
        return context, connection.candidate.base_uri, connection.reliable

    def _message(self, sent: Outbound, base_uri: str, confirmable: bool) -> aiocoap.Message:
        # As the downstream request came: NON (mitigation requests, RFC 9132 §4.4.1) retransmitted on the session's
        # schedule by coap.transmit, as the agent's own are; CON by aiocoap on the session's parameters (§4.5.2);
        # over TLS nothing is retransmitted (RFC 8323).
        tuning = coap.session_tuning(self.core.parameters, confirmable)
        message = aiocoap.Message(code=_METHODS[sent.method], uri=base_uri, transport_tuning=tuning)
        message.opt.uri_path = (*WELL_KNOWN_DOTS, *sent.path)
        if sent.query:
            message.opt.uri_query = sent.query
        message.opt.hop_limit = sent.hop_limit  # RFC 8768 (RFC 9132 §4.4.1.2: a gateway SHOULD add it)
        if sent.if_match_empty:
            message.opt.if_match = [b""]
        if sent.observe is not None:
            message.opt.observe = sent.observe
        if sent.payload:
            message.payload = sent.payload
            message.opt.content_format = DOTS_CBOR
        return message

    async def relay(self, sent: Outbound) -> aiocoap.Message:
        """The upstream answer to SENT. A redirection (RFC 9132 §4.6) is this leg's to follow, not the downstream
        client's: the agent's core takes it (TTL, loop window, fall-back), the session moves to the alternate server
        and SENT is sent again there, once (§4.6: the client SHOULD resend the failed request)."""
        try:
            return await self._relay_once(sent)
        except UpstreamRedirected:
            if not await self.wait_connected(self.settings.connect_timeout * 2):
                raise UpstreamUnavailable("redirected: no session with the alternate DOTS server yet") from None
            return await self._relay_once(sent)

    def _redirected(self, answer: aiocoap.Message) -> bool:
        """Whether ANSWER redirects this leg; if so the agent's core has taken it (and the session is moving)."""
        if answer.code.dotted != "5.03" or not answer.payload:
            return False
        try:
            body = decode_signal(answer.payload)
        except (ModelError, ValueError):
            return False
        if REDIRECTED_SIGNAL not in body:
            return False
        response = DotsResponse(code="5.03", body=body, max_age=answer.opt.max_age)
        self.core.handle_response(_RELAYED, response, self.clock())
        self.pump()
        return True

    async def _relay_once(self, sent: Outbound) -> aiocoap.Message:
        """SENT on the current session: NON retransmitted until answered or the session's schedule is spent, a body
        larger than a message sent block-wise (Q-Block when the server supports it, RFC 9177), as the agent does
        for its own requests; the whole bounded by the agent's request_timeout."""
        context, base_uri, reliable = self._session()
        what = f"relayed {sent.method} /{'/'.join(sent.path)}"
        timeout = self.settings.request_timeout
        try:
            async with asyncio.timeout(timeout):
                answer = await coap.transmit(
                    context,
                    lambda: self._message(sent, base_uri, sent.confirmable or reliable),
                    what,
                    confirmable=sent.confirmable,
                    reliable=reliable,
                    parameters=self.core.parameters,
                    timeout=timeout,
                    # aiocoap may still deliver it (retransmitted, or queued on a new handshake): the gateway hears
                    # the answer, and withdraws a PUT accepted after it was answered 5.03 (opendots.gateway.late).
                    late=lambda answer: self.gateway.late_answer(sent, answer),
                )
        except (TimeoutError, coap.NoAnswer):
            raise UpstreamUnavailable("no answer from the upstream DOTS server") from None
        except coap.TransportFailure as error:
            if context is self.context:  # not the shutdown of a session replaced meanwhile (RFC 9132 §4.7)
                self._mark_lost(f"{what}: {error}")
            raise UpstreamUnavailable(str(error) or type(error).__name__) from None
        if self._redirected(answer):
            raise UpstreamRedirected(f"{what}: redirected to an alternate DOTS server")
        return answer

    async def observe(self, sent: Outbound) -> AsyncIterator[tuple[str, bytes, int | None, int | None]]:
        """The answer to an Observe registration, then each notification, as (code, payload, content-format,
        max-age). Raises UpstreamUnavailable when the session goes."""
        context, base_uri, _reliable = self._session()
        pending = context.request(self._message(sent, base_uri, True))  # CON: a registration aiocoap retransmits
        pending.response.add_done_callback(_retrieve)
        try:
            try:
                async with asyncio.timeout(self.settings.request_timeout):
                    first = await pending.response
            except TimeoutError:
                raise UpstreamUnavailable("no answer from the upstream DOTS server") from None
            except aiocoap.error.Error as error:
                raise UpstreamUnavailable(str(error) or type(error).__name__) from None
            if self._redirected(first):
                raise UpstreamRedirected("the observation was redirected to an alternate DOTS server")
            yield message_parts(first)
            if not first.code.is_successful():
                return
            try:
                async for notification in pending.observation:
                    if self._redirected(notification):
                        raise UpstreamRedirected("the observation was redirected to an alternate DOTS server")
                    yield message_parts(notification)
            except aiocoap.error.ResponseWrappingError as error:
                # §4.6: a redirection may come as a 5.03 notification: followed here, the observation registered
                # again on the alternate server (RelayResource._observe), the observer told nothing of it.
                if self._redirected(error.coapmessage):
                    raise UpstreamRedirected("the observation was redirected to an alternate DOTS server") from None
                yield message_parts(error.coapmessage)
                return
            except aiocoap.error.Error as error:
                raise UpstreamUnavailable(str(error) or type(error).__name__) from None
            raise UpstreamUnavailable("the upstream observation ended")
        finally:
            if not pending.observation.cancelled:
                pending.observation.cancel()


_RELAYED = DotsRequest(RequestKind.STATUS, "GET", ())
"""What the agent's core is told a redirection answered: a relayed request, none of the agent's own."""


def message_parts(message: aiocoap.Message) -> tuple[str, bytes, int | None, int | None]:
    content_format = message.opt.content_format
    return (
        message.code.dotted,
        message.payload,
        None if content_format is None else int(content_format),
        message.opt.max_age,
    )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
