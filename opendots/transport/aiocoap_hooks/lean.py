"""The server's lean path: plain requests (opendots.transport.coap_lean) answered from the DTLS receive callback
without aiocoap Messages, beside aiocoap's MessageManager and sharing its state.

One deduplication table for both paths (RFC 7252 §4.5): the lean path checks and records (session, Message ID) in
the MessageManager's RecentMessages, so a repeat is recognised whichever path the first copy took. A repeat
always goes to aiocoap's path, whose `_deduplicate_message` sends the stored answer again (bytes when the lean
path answered, a Message when aiocoap did) or drops it (NON). NON answers take their Message IDs from the
MessageManager's own counter, so they never collide with the server's heartbeats and notifications.

Private names: `MessageManager._next_message_id`, `MessageManager._process_request` (a request past
deduplication whose answer aiocoap serves in blocks), `TokenManager.incoming_requests` (a request reusing the token of
one aiocoap still serves, e.g. an observation, goes to aiocoap, which supersedes the old one as it always did);
checked by tests/contract/test_aiocoap_hooks.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiocoap

from opendots.transport.aiocoap_hooks.message_layer import TimerlessDedupMessageManager
from opendots.transport.coap_lean import CON, LeanRequest, empty_ack, encode_response, parse_request

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LeanResponse:
    """What the resource answers: CODE the response code byte; SILENT: no answer at all (RFC 9132 §4.4.3, sent as
    aiocoap sends a response marked No-Response: an Empty ACK for a CON, nothing for a NON)."""

    code: int
    payload: bytes = b""
    content_format: int | None = None
    max_age: int | None = None
    silent: bool = False


LeanAnswer = LeanResponse | aiocoap.Message | None
"""A LeanResponse; an aiocoap Message when the answer needs aiocoap's block-wise serving (too large for one
message): the request then goes through aiocoap's path carrying it (`prepared_answer`); None: not for the lean
path (nothing was done), aiocoap's path takes the request. An answerer may also return a coroutine for a NON
request (a store whose writes are awaited) that gives one of the first two once the answer is ready."""


def prepared_answer(request: aiocoap.Message) -> aiocoap.Message | None:
    """The answer the lean path already computed for REQUEST (a body to serve block-wise), if any."""
    return getattr(request, "opendots_answer", None)


class LeanPath:
    """Answers what `coap_lean.parse_request` accepts with ANSWER(remote, request); `receive` says whether it did."""

    def __init__(
        self,
        manager: TimerlessDedupMessageManager,
        answer: Callable[[Any, LeanRequest], LeanAnswer | Awaitable[LeanAnswer]],
        send: Callable[[Any, bytes], None],
    ) -> None:
        self.manager = manager
        self.answer = answer
        self.send = send
        self.answered = 0
        """Requests answered on the lean path (tests, metrics)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def receive(self, remote: Any, data: bytes) -> bool:
        """DATA, a decrypted datagram of REMOTE's session: True when answered here, False for aiocoap's path."""
        request = parse_request(data)
        if request is None:
            return False
        manager = self.manager
        key = remote.serial << 16 | request.mid
        if key in manager.recent.responses:
            return False  # a duplicate: aiocoap's _deduplicate_message answers it from the shared table
        incoming = manager.token_manager.incoming_requests
        if incoming and (request.token, remote) in incoming:
            return False
        try:
            answer = self.answer(remote, request)
        except Exception:  # the resource catches its own; never raise out of the receive callback
            log.exception("the lean path failed on a request from %s", getattr(remote, "hostinfo", remote))
            return False
        if answer is None:
            return False
        manager.first_reception(key)  # from here on a copy of this message is a duplicate, answered or not yet
        if type(answer) is LeanResponse or isinstance(answer, LeanResponse | aiocoap.Message):
            self._send_answer(remote, data, request, key, answer)
        else:  # a coroutine (NON only): repeats meanwhile are dropped as duplicates, as aiocoap drops them
            task = asyncio.get_running_loop().create_task(self._answer_later(remote, data, request, key, answer))
            self._tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._tasks.discard)
        return True

    async def _answer_later(
        self, remote: Any, data: bytes, request: LeanRequest, key: int, pending: Awaitable[LeanAnswer]
    ) -> None:
        try:
            answer = await pending
            if isinstance(answer, LeanResponse | aiocoap.Message):
                self._send_answer(remote, data, request, key, answer)
        except Exception:  # the resource catches its own; a task's exception would only reach asyncio's log
            log.exception("the lean path failed on a request from %s", getattr(remote, "hostinfo", remote))

    def _send_answer(
        self, remote: Any, data: bytes, request: LeanRequest, key: int, answer: LeanResponse | aiocoap.Message
    ) -> None:
        manager = self.manager
        if type(answer) is not LeanResponse and isinstance(answer, aiocoap.Message):
            # Past deduplication already (the key is remembered): straight to aiocoap's request handling, which
            # piggybacks the first block, keeps it for a repeated CON and serves the next blocks.
            message = aiocoap.Message.decode(data, remote=remote)
            message.opendots_answer = answer  # type: ignore[attr-defined]
            manager._process_request(message)
            return
        self.answered += 1
        if answer.silent:
            if request.mtype == CON:
                reply = empty_ack(request.mid)
                manager.recent.answered(key, reply)
                self.send(remote, reply)
            return
        mid = request.mid if request.mtype == CON else manager._next_message_id()
        reply = encode_response(request, mid, answer.code, answer.payload, answer.content_format, answer.max_age)
        if request.mtype == CON:
            manager.recent.answered(key, reply)  # a repeated CON gets these bytes again (§4.5)
        self.send(remote, reply)
