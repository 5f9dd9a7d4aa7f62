"""aiocoap's token layer without reference cycles: incoming requests (`AcyclicTokenManager`) and our own requests
waiting for one response (`SingleResponse`, `send_single_request`).

Private names: `TokenManager.process_request`, `incoming_requests`, `request`, `Pipe._unregister_on_event`; checked
by tests/contract/test_aiocoap_hooks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiocoap
from aiocoap.messagemanager import MessageManager
from aiocoap.pipe import Pipe
from aiocoap.tokenmanager import TokenManager


class _IncomingRequest:
    """What `AcyclicTokenManager` keeps of one incoming request while it may still be answered.

    aiocoap's `TokenManager.process_request` keeps a closure `on_event` whose cell holds `stop`, a partial of the
    Pipe's method over `on_event` itself: a reference cycle through the Pipe, the request Message and its Options,
    ~17 tracked objects per request that reference counting never frees. Those a young collection promotes while
    the request is handled are left to the server's periodic collection of the oldest generation
    (opendots.signal.server.shell.collection): thousands per tick at 20,000 heartbeating sessions. Here the only
    cycle (this object -> its registered handler -> this object) is cut when the Pipe ends, so reference counting
    frees everything once the response is sent."""

    __slots__ = ("handler", "key", "manager", "pipe", "request")

    def __init__(self, manager: AcyclicTokenManager, key: tuple[bytes, Any], request: aiocoap.Message, pipe: Pipe):
        self.manager = manager
        self.key = key
        self.request = request
        self.pipe = pipe
        self.handler: Callable[[Any], bool | None] | None = self.on_event
        """The bound method registered on the pipe (kept: the Pipe unregisters a handler by identity)."""

    def on_event(self, event: Any) -> bool | None:
        """As aiocoap's `on_event`: a response goes down to the MessageManager with this request's token and remote;
        True keeps the handler for more (Observe notifications)."""
        response = event.message
        if response is not None:
            request = self.request
            response.token = request.token
            response.remote = request.remote.as_response_address()
            response.request = request  # the MessageManager reads the request's type (piggybacking, NON)
            self.manager.token_interface.send_message(response, self.stop)
        else:
            self.manager.log.error("a request's Pipe carried an error to the TokenManager: %s", event)
        return True if not event.is_last else None

    def stop(self) -> None:
        """No more interest in this request (a newer one on its token, a failed CON response, shutdown)."""
        handler = self.handler
        if handler is not None:
            self.pipe._unregister_on_event(handler)

    def ended(self) -> None:
        incoming = self.manager.incoming_requests
        if incoming is not None and (entry := incoming.get(self.key)) is not None and entry[0] is self.pipe:
            del incoming[self.key]
        self.handler = None  # the cycle's one edge


class AcyclicTokenManager(TokenManager):
    """aiocoap's TokenManager whose incoming requests leave no reference cycle behind (see `_IncomingRequest`).

    Private: overrides `TokenManager.process_request` and keeps its `incoming_requests` table as aiocoap does,
    key (token, remote) -> (Pipe, stop), which aiocoap's `dispatch_error` and `shutdown` read; `Pipe.
    _unregister_on_event`, the method aiocoap's own `stop` is a partial of."""

    def process_request(self, request: aiocoap.Message) -> None:
        key = (request.token, request.remote)
        superseded = self.incoming_requests.pop(key, None)
        if superseded is not None:  # a new request on a token still in use: the old one is given up
            superseded[1]()
        pipe = Pipe(request, self.log)
        incoming = _IncomingRequest(self, key, request, pipe)
        pipe.on_event(incoming.handler)
        pipe.on_interest_end(incoming.ended)
        self.incoming_requests[key] = (pipe, incoming.stop)
        self.context.render_to_pipe(pipe)


class SingleResponse:
    """A request of ours waiting for its one response, without aiocoap's Request machinery.

    `Context.request` builds a BlockwiseRequest, a Request, a Pipe, tasks, a generator and futures for every
    request, left in reference cycles that outlive it until a collection finds them (22 tracked objects per server
    heartbeat, RFC 9132 §4.7, awaited with its timeout): at 20,000 sessions, much of what each periodic collection
    of the oldest generation walked. This stands in for the Pipe in
    the TokenManager's table of outgoing requests; `done` gets the response, or None for an error or `give_up`,
    exactly once, and nothing of it is left in a cycle afterwards.

    Private: duck-types `Pipe` for `TokenManager.request`, `process_response`, `dispatch_error` and `shutdown`
    (they call `request`, `add_response`, `add_exception`, `on_interest_end`, `on_event`)."""

    __slots__ = ("_done", "_ended", "request")

    def __init__(self, request: aiocoap.Message, done: Callable[[aiocoap.Message | None], None]) -> None:
        self.request = request
        self._done: Callable[[aiocoap.Message | None], None] | None = done
        self._ended: Callable[[], Any] | None = None

    def on_interest_end(self, callback: Callable[[], Any]) -> None:
        self._ended = callback  # the TokenManager's removal of this request from its table

    def on_event(self, callback: Any, is_interest: bool = True) -> Callable[[], None]:
        # TokenManager.request registers one only for a transport that returns a canceller (the MessageManager
        # never does): nothing of ours to cancel.
        return lambda: None

    def add_response(self, response: aiocoap.Message, is_last: bool = False) -> None:
        response.request = self.request
        self._finish(response)

    def add_exception(self, exception: BaseException) -> None:
        self._finish(None)

    def give_up(self) -> None:
        """No answer is coming that still matters: forget the request (a late answer is then unknown, as after
        aiocoap's timeout)."""
        self._finish(None)

    def _finish(self, response: aiocoap.Message | None) -> None:
        done, ended = self._done, self._ended
        self._done = self._ended = None
        if ended is not None:
            ended()
        if done is not None:
            done(response)


def send_single_request(
    remote: Any, message: aiocoap.Message, done: Callable[[aiocoap.Message | None], None]
) -> SingleResponse | None:
    """Send MESSAGE (a request, MESSAGE.remote set) through the TokenManager of the DTLS interface that owns its
    remote; DONE gets its response, or None. None when the remote is not a DTLS session of a MessageManager (TLS):
    use `Context.request` then. Private: `TokenManager.request` with a `SingleResponse` for a Pipe."""
    owner = getattr(remote, "owner", None)
    manager = getattr(owner, "message_manager", None)
    if not isinstance(manager, MessageManager):
        return None
    single = SingleResponse(message, done)
    manager.token_manager.request(single)
    return single
