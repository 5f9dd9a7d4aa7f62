"""bench/blocks.py's load generator for its `ours` rows: our DOTS client stack (opendots.transport's DTLS client
context, whose QBlockClient moves bodies with Q-Block1/Q-Block2, and opendots.signal.client.shell.coap's request
path: the one the client agent uses) against the server of bench/blocks.py, in its network namespace.

One process per cell, started by blocks.py with a JSON spec as its argument; each transfer has a DTLS session of
its own (a DOTS session is up before the attack: its handshake and the RFC 9177 §4.1 probe are done before the
clock starts). `qblock`: a NON request, Q-Block1/Q-Block2 with the RFC 9362 values the session negotiated;
`block`: the same client with Q-Block switched off (`create_client_context(qblock=False)`), the request CON, so
aiocoap's Block1/Block2 moves it in lock step with the session's ack-timeout, ack-random-factor and max-retransmit.
Prints one JSON line: per transfer, in the order of the spec's mids, its index and mid, the seconds (None: no
session, not answered within the cap, or answered wrong) and why, and this process's CPU seconds during the timed
part.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import files

_CURRENT: contextvars.ContextVar[int | None] = contextvars.ContextVar("transfer", default=None)  # its mid
_TRACE: dict[int, list] = {}  # transfer index -> [(seconds since its request, event, detail)]


def _trace_senders() -> None:
    """spec["trace"]: record each Q-Block1 body's timeline (sets, probes, 2.31s, 4.08s, the final answer), wrapping
    the engine's Q1Sender methods here (bench-only instrumentation, nothing in the engine): where slow transfers lose
    their time."""
    from opendots.transport.qblock import sender as module

    cls = module.Q1Sender
    init, poll, on_continue, on_missing, on_final = (
        cls.__init__,
        cls.poll,
        cls.on_continue,
        cls.on_missing,
        cls.on_final,
    )

    def note(self, event: str, detail) -> None:
        index = getattr(self, "_bench_index", None)
        if index is not None:
            _TRACE.setdefault(index, []).append((round(time.monotonic() - self._bench_start, 3), event, detail))

    def nums(blocks) -> str:
        return ",".join(str(block.option.num) for block in blocks)

    def init_(self, *a, **k):
        init(self, *a, **k)
        self._bench_index, self._bench_start = _CURRENT.get(), time.monotonic()

    def poll_(self, now):
        probes = self._probes
        out = poll(self, now)
        if out:
            note(self, "probe" if self._probes > probes else "set", nums(out))
        elif self.failed:
            note(self, "failed", self.failed)
        return out

    def on_continue_(self, option, now):
        out = on_continue(self, option, now)
        note(self, "2.31", f"{option.num} -> {nums(out)}")
        return out

    def on_missing_(self, payload, now):
        from opendots.transport.qblock.options import decode_missing

        out = on_missing(self, payload, now)
        note(self, "4.08", f"{decode_missing(payload)} -> {nums(out)}")
        return out

    def on_final_(self):
        on_final(self)
        note(self, "final", "")

    cls.__init__, cls.poll, cls.on_continue, cls.on_missing, cls.on_final = (
        init_,
        poll_,
        on_continue_,
        on_missing_,
        on_final_,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _session(spec: dict[str, Any], base: str):
    """A client context with its DTLS session open (and, for Q-Block, the server's support learnt)."""
    import aiocoap.error

    from opendots.transport import create_client_context, open_session, probe_qblock

    context = await create_client_context(
        files(Path(spec["directory"]), spec["stem"]), server_name="localhost", qblock=spec["mode"] == "qblock"
    )
    attempts = []  # what each attempt ended with, for the failure's reason
    for _attempt in range(10):  # the handshake passes the loss; the probe (a CON GET) may not
        started = time.monotonic()
        try:
            await open_session(context, base, timeout=10.0)
            supports = spec["mode"] != "qblock" or await probe_qblock(context, f"{base}/.well-known/core", timeout=10.0)
            if supports:
                return context
            attempts.append(f"probe {supports} {time.monotonic() - started:.1f}s")
        except (TimeoutError, OSError, aiocoap.error.Error) as problem:
            attempts.append(f"{type(problem).__name__} {time.monotonic() - started:.1f}s")
            continue
    state = await _session_state(context, base)
    await context.shutdown()
    raise RuntimeError(f"no session (or no Q-Block support learnt) after 10 attempts ({state}): {'; '.join(attempts)}")


async def _session_state(context, base: str) -> str:
    """What the client side knows of a session that never learnt Q-Block: its DTLS state and what came back on it."""
    import aiocoap

    from opendots.transport.aiocoap_hooks import find_message_manager, find_request_interface

    try:
        message = aiocoap.Message(code=aiocoap.GET, uri=f"{base}/.well-known/core")
        await find_request_interface(context, message)
        remote = message.remote
        manager = await find_message_manager(context, remote)
        received = getattr(manager.message_interface, "messages_received", "?") if manager else "?"
        return f"established {remote.connection.established}, closed {remote.connection.closed}, received {received}"
    except Exception as problem:  # diagnostics only
        return f"state unknown: {type(problem).__name__}"


def _request(spec: dict[str, Any], index: int):
    from opendots.model import decode_signal
    from opendots.signal.client.core.requests import DotsRequest, RequestKind, status_request

    case = spec["case"]
    if case.startswith("put"):
        from bench.blocks import _large_put_body  # the body the libcoap rows PUT

        mid = spec["mids"][index]
        body = decode_signal(_large_put_body(spec["put_limit"], mid))
        path = (".well-known", "dots", "mitigate", f"cuid={spec['cuid']}", f"mid={mid}")
        request = DotsRequest(RequestKind.MITIGATE, "PUT", path, body, mid=mid)
    elif case == "get 1 MiB":
        request = DotsRequest(RequestKind.STATUS, "GET", ("bench", "body"))
    else:
        request = status_request(spec["cuid"])
    return DotsRequest(**{**request.__dict__, "confirmable": spec["mode"] == "block"})


async def _transfer(spec: dict[str, Any], context, request, parameters, base: str) -> dict[str, Any]:
    """One timed request on an open session: how the agent sends it (build_message, start_request), then the wait
    for the answer, which is checked."""
    import aiocoap

    from opendots.signal.client.shell.coap import build_message, start_request, to_dots_response

    case = spec["case"]
    message = build_message(base, request, reliable=False, parameters=parameters)
    started = time.monotonic()
    result: dict[str, Any] = {"seconds": None, "why": ""}
    pending = None
    try:
        async with asyncio.timeout(spec["cap"]):
            first = await start_request(context, message, spec["cap"])
            pending = first.pending
            answer: aiocoap.Message = await pending.response
        seconds = time.monotonic() - started
        result["qblock"] = first.qblock
        if case.startswith("put"):
            ok = answer.code.dotted == "2.01"
        elif case == "get 1 MiB":
            ok = hashlib.sha256(answer.payload).hexdigest() == spec["sha256"]
        else:  # as the agent reads it
            ok = len(to_dots_response(answer).scopes) >= spec["mitigations"]
        result["seconds"] = seconds if ok else None
        result["why"] = "" if ok else f"answered {answer.code.dotted} ({len(answer.payload)} bytes)"
    except TimeoutError:
        result["why"] = "past the cap"
        if pending is not None:
            pending.response.cancel()
            await asyncio.sleep(0)
    except Exception as problem:  # what the stack raised: counted as not delivered, with its name
        result["why"] = f"{type(problem).__name__}: {problem}"[:80]
    return result


async def _main(spec: dict[str, Any]) -> None:
    from opendots.signal.client.core.timing import SignalConfig

    parameters = SignalConfig.from_body(spec["config"]).mitigating
    if spec.get("trace"):
        _trace_senders()
    base = f"coaps://127.0.0.1:{spec['port']}"
    results: list[dict[str, Any]] = []
    cpu = 0.0
    for first in range(0, spec["transfers"], spec["parallel"]):
        batch = range(first, min(first + spec["parallel"], spec["transfers"]))
        requests = [_request(spec, index) for index in batch]
        sessions = await asyncio.gather(*(_session(spec, base) for _ in batch), return_exceptions=True)
        before = _cpu()  # the timed part only: not the handshakes and probes, nor building the bodies

        async def one(context, request) -> dict[str, Any]:
            if isinstance(context, BaseException):
                return {"seconds": None, "why": f"no session: {context}"[:600]}
            if spec.get("trace"):
                _CURRENT.set(request.mid)
            return await _transfer(spec, context, request, parameters, base)

        # One result per transfer at its own position, with its mid: blocks.py checks a PUT's 2.01 against what the
        # server holds under that mid (a session that failed must not shift the later results onto other mids).
        answered = await asyncio.gather(*(one(c, r) for c, r in zip(sessions, requests, strict=True)))
        for index, result in zip(batch, answered, strict=True):
            results.append({**result, "index": index, "mid": requests[index - first].mid})
        cpu += _cpu() - before
        for context in sessions:
            if not isinstance(context, BaseException):
                await context.shutdown()
    if spec.get("trace"):
        for result in results:
            result["trace"] = _TRACE.get(result["mid"], [])
    print(json.dumps({"results": results, "cpu": cpu}))


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_main(json.loads(sys.argv[1])))
