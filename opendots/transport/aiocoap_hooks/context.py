"""The aiocoap Context: answering requests on the spot, finding a remote for a URI, serving one block of a
response, and quieting aiocoap's harmless shutdown races.

Private names: `Context.render_to_pipe`, `Options._options`, `Context.request_interfaces`,
`Context.find_remote_and_interface`, `Message._extract_block`; checked by tests/contract/test_aiocoap_hooks.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiocoap

from opendots.transport.coap_checks import prepared_refusal, refusal_for
from opendots.transport.qblock_server import uses_qblock


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


async def find_request_interface(context: aiocoap.Context, message: aiocoap.Message) -> Any:
    """Fill MESSAGE.remote the way `Context.request` would, opening a session if needed.

    Semi-private: `Context.find_remote_and_interface` is documented as "unstable"; it is the only way to get a
    remote for a URI without sending a request.
    """
    return await context.find_remote_and_interface(message)


def has_transports(context: aiocoap.Context) -> bool:
    """Whether CONTEXT got any transport yet (private: `Context.request_interfaces`)."""
    return bool(context.request_interfaces)


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
            logging.getLogger(__package__).debug("aiocoap shutdown race (harmless): %s", problem)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
