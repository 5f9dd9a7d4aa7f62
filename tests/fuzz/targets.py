"""The server's entry points as fuzz targets: bytes (or plain request values) in, the invariants every answer meets.

A Stack is the signal and data channel of `opendots server`, wired as start_signal_server wires them (one SQLite
file, aliases and ACL control from the data channel), with no socket: a real in-memory DTLS handshake gives the
CoAP requests their authenticated peer, and requests go straight to the code that receives them from the network.

Every target's `run(input)` returns a short outcome label (a response code, "unparsable") and raises
  - Finding, when an invariant breaks: a 5.xx answer, a malformed response code, stored state changed by a request
    that was refused, a body that is not what the content format says;
  - anything else, when an exception escapes the entry point (a crash: the network layer would log it and drop
    the message, or answer 5.00).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap.pipe import Pipe

from opendots.cli.certs import init_pki
from opendots.config import ServerConfig, TlsFiles
from opendots.data.core import DataChannelCore, RestconfRequest
from opendots.data.shell.settings import data_settings_from_table
from opendots.mitigate.base import LoggingMitigator
from opendots.model import ModelError, decode_signal
from opendots.pki import cuid_from_certificate
from opendots.signal.server.core import Request, SignalServer
from opendots.signal.server.shell.acls import DataChannelAclControl
from opendots.signal.server.shell.aliases import DataChannelAliases
from opendots.signal.server.shell.resources import DOTS_CBOR, build_site, to_message
from opendots.signal.server.shell.service import SignalService
from opendots.signal.server.shell.settings import settings_from_table
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.signal import SqliteSignalStore
from opendots.store.sqlite import SqliteDatabase
from opendots.transport.coap_lean import encode_response, parse_request
from opendots.transport.dtls import DtlsConnection, client_context
from opendots.transport.dtls_interface import DtlsRemote
from opendots.transport.dtls_listener import DtlsListener
from tests.fuzz.inputs import RestconfInput, SignalInput

COAP_CODE = re.compile(r"^[245]\.[0-3][0-9]$")
RESTCONF_STATUSES = {200, 201, 204, 400, 401, 403, 404, 405, 406, 409, 412, 413, 415}
STRANGER = "unknown-client-cuid-0000"
T0 = 1_800_000_000.0


class Finding(Exception):
    """An invariant broke (not a crash: the entry point answered, wrongly)."""


class Clock:
    """Moves by one second per request, so lifetimes and timers run while a campaign goes on."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _files(directory: Path, stem: str) -> TlsFiles:
    return TlsFiles(directory / "ca.crt", directory / f"{stem}.crt", directory / f"{stem}.key")


def _handshake(directory: Path, stem: str) -> DtlsConnection:
    """The server side of a real DTLS session with client STEM, datagrams shuttled in memory."""
    now = time.monotonic()
    listener = DtlsListener(_files(directory, "server"), now=now)
    client = DtlsConnection.connect(client_context(_files(directory, stem), "localhost"), now=now)
    server: DtlsConnection | None = None
    for _ in range(10):
        for datagram in client.datagrams_to_send():
            if server is None:
                result = listener.receive(datagram, ("192.0.2.10", 40000), now)
                for reply in result.reply:
                    client.receive_datagram(reply, now)
                server = result.connection
            else:
                server.receive_datagram(datagram, now)
        if server is not None:
            for datagram in server.datagrams_to_send():
                client.receive_datagram(datagram, now)
        if server is not None and server.established and client.established:
            return server
    raise RuntimeError("the in-memory DTLS handshake did not complete")


class Stack:
    """`opendots server`'s signal and data channel on one SQLite file in DIRECTORY, without sockets."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / "server.toml").exists():
            init_pki(directory, client_names=["other"])
        config = ServerConfig.load(directory / "server.toml")
        config = replace(config, db=directory / f"fuzz-{time.monotonic_ns()}.db")
        self.clock = Clock()
        self.database = SqliteDatabase(config.db)
        self.signal_store = SqliteSignalStore(self.database)
        self.data_store = SqliteDataChannelStore(self.database)
        self.data = DataChannelCore(
            self.data_store, config.client_by_cuid, data_settings_from_table(config.clients, config.data)
        )
        aliases = DataChannelAliases(SqliteDataChannelStore(self.database), config.clients, self.clock)
        settings = replace(settings_from_table(config.clients, config.signal), aliases=aliases)
        settings = replace(settings, acl_control=DataChannelAclControl(self.data))
        core = SignalServer(settings, self.signal_store.load(), self.clock())
        self.service = SignalService(
            core, self.signal_store, LoggingMitigator(), acl_store=settings.acl_control, clock=self.clock
        )
        self.site, self.resource = build_site(self.service)
        self.cuids = [cuid_from_certificate((directory / f"{stem}.crt").read_bytes()) for stem in ("client", "other")]
        self.remote = DtlsRemote(None, _handshake(directory, "client"), ("192.0.2.10", 40000), ("192.0.2.1", 4646))
        self.loop = asyncio.new_event_loop()
        self.requests = 0

    def tick(self) -> None:
        """One second passes; now and then the core's timers run and queued events are dropped (no mitigator)."""
        self.clock.now += 1.0
        self.requests += 1
        if self.requests % 50 == 0:
            for _ in range(64):  # each step stores its own writes; a decision left unsettled would wedge the core
                due = self.service.core.next_timer()
                if due is None or due > self.clock.now:
                    break
                self.service.timer_step()
            queue = self.service._queue
            while not queue.empty():
                queue.get_nowait()
                queue.task_done()

    def state(self) -> tuple[Any, str]:
        return self.signal_store.dump(), self.data_store.dump()

    def close(self) -> None:
        self.loop.close()
        self.database.close()


def _check_coap_response(response: aiocoap.Message) -> str:
    code = response.code
    if not code.is_response():
        raise Finding(f"answered with {code!r}, not a response code")
    dotted = code.dotted
    if dotted.startswith("5."):
        raise Finding(f"answered {dotted}: {response.payload[:200]!r}")
    if response.opt.content_format == DOTS_CBOR and response.payload and response.opt.block2 is None:
        try:
            decode_signal(response.payload)
        except ModelError as problem:
            raise Finding(f"{dotted} with a body that does not decode: {problem.diagnostic}") from None
    return dotted


class CoapTarget:
    """The plaintext of a DTLS datagram as our DTLS interface delivers it: a plain request to the lean path
    (opendots.transport.coap_lean, the site's answer_lean); else aiocoap's Message.decode, then the DOTS site
    (answer_now, as PromptAnswerContext offers it, else aiocoap's render_to_pipe). Non-requests (responses, empty
    messages) go to aiocoap's message and token managers, not to our code: counted, not answered."""

    name = "coap"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def run(self, data: bytes) -> str:
        self.stack.tick()
        request = parse_request(data)
        answer = self.stack.site.answer_lean(self.stack.remote, request) if request is not None else None
        if isinstance(answer, aiocoap.Message):  # too large for one message: aiocoap's Block2 serves it
            return _check_coap_response(answer)
        if answer is not None:
            if answer.silent:
                return "no answer"
            encoded = encode_response(request, 0, answer.code, answer.payload, answer.content_format, answer.max_age)
            return _check_coap_response(aiocoap.Message.decode(encoded))
        try:
            message = aiocoap.Message.decode(data, remote=self.stack.remote)
        except (coap_error.UnparsableMessage, UnicodeDecodeError):
            return "unparsable"  # what DtlsInterface._deliver catches: logged, dropped
        if not message.code.is_request():
            return "not a request"
        return self.stack.loop.run_until_complete(self._answer(message))

    async def _answer(self, message: aiocoap.Message) -> str:
        pipe = Pipe(message, logging.getLogger("fuzz"))
        answers: list[Any] = []
        pipe.on_event(lambda event: answers.append(event) or not event.is_last)
        task = None
        if not self.stack.site.answer_now(pipe):
            # aiocoap's path; an Observe registration keeps its coroutine running for as long as it lasts
            task = asyncio.ensure_future(self.stack.site.render_to_pipe(pipe))
        for _ in range(50):  # a block-wise or an aiocoap-path answer comes from a task
            if answers or (task is not None and task.done()):
                break
            await asyncio.sleep(0)
        if task is not None and task.done() and task.exception() is not None:
            refused = task.exception()
            if isinstance(refused, coap_error.RenderableError):  # aiocoap's own refusals: error_to_message answers
                return _check_coap_response(refused.to_message())
            raise refused
        if task is not None and not task.done():
            task.cancel()  # the observation ends here: the campaign must not pile up pending coroutines
        if not answers:
            return "no answer"
        event = answers[0]
        if event.exception is not None:
            raise event.exception
        return _check_coap_response(event.message)


class SignalCoreTarget:
    """A request as the CoAP shell hands it to the sans-I/O core (SignalService.handle): the body as CBOR bytes."""

    name = "signal-core"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def run(self, item: SignalInput) -> str:
        stack = self.stack
        stack.tick()
        peer = (*stack.cuids, None)[item.peer]
        request = Request(
            method=item.method,
            path=item.path,
            peer=peer,
            payload=item.payload,
            query=item.query,
            observe=item.observe,
            if_match_empty=item.if_match_empty,
        )
        before = stack.state()
        response = stack.service.handle(request)
        if not COAP_CODE.match(response.code):
            raise Finding(f"malformed response code {response.code!r}")
        dotted = _check_coap_response(to_message(response))
        if not response.is_success and stack.state() != before:
            raise Finding(f"refused with {dotted} ({response.diagnostic}) but the stored state changed")
        return dotted


class RestconfTarget:
    """A RESTCONF request as the aiohttp shell hands it to DataChannelCore.handle: method, percent-encoded path,
    query pairs, body bytes and headers."""

    name = "restconf"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def run(self, item: RestconfInput) -> str:
        stack = self.stack
        stack.tick()
        peer = (*stack.cuids, STRANGER)[item.peer]
        request = RestconfRequest(
            method=item.method,
            path=item.path,
            peer_cuid=peer,
            query=list(item.query),
            body=item.body,
            content_type=item.content_type,
            accept=item.accept,
            via=item.via,
        )
        before = stack.state()
        response = stack.data.handle(request, stack.clock())
        if response.status == 508 and item.via and stack.data.settings.server_id in item.via:
            return "508"  # RFC 8783 §3.4: a Via naming this server is a loop, answered 508 Loop Detected
        if response.status >= 500:
            raise Finding(f"answered {response.status}: {response.body}")
        if response.status not in RESTCONF_STATUSES:
            raise Finding(f"answered an unexpected status {response.status}")
        if response.body is not None:
            json.dumps(response.body)  # what the shell sends must serialize
        if response.status >= 300 and stack.state() != before:
            raise Finding(f"refused with {response.status} but the stored state changed: {response.body}")
        return str(response.status)


class CborTarget:
    """The CBOR → YANG-JSON decoder every signal-channel body goes through: a dict or a ModelError, nothing else."""

    name = "cbor"

    def __init__(self, stack: Stack | None = None) -> None:
        self.stack = stack

    def run(self, data: bytes) -> str:
        try:
            body = decode_signal(data)
        except ModelError as problem:
            if not COAP_CODE.match(problem.code) or problem.code.startswith("5."):
                raise Finding(f"ModelError with code {problem.code!r}") from None
            return problem.code
        if not isinstance(body, dict):
            raise Finding(f"decoded to {type(body).__name__}, not an object")
        return "decoded"
