"""CPU per message of the DOTS handling alone, in process: the decoded request in, the response body encoded out.

What bench/message_cpu.py's OpenDOTS figure holds beyond its floor, without the transport: `SignalService.handle`
(authentication, dispatch, decision, the SQLite write, the in-memory update) and the CBOR encoding of the answer's
body, for a heartbeat PUT /hb, a refresh PUT (the same mitigation request, the same bytes) and a GET of one
mitigation, driven directly with `Request` objects on the server `opendots server` starts (start_signal_server:
SQLite store, data channel aliases and ACLs). The reference, measured in the same run, is a handler that answers
4.04 at once (the Request and Response construction alone); figures are CPU time per message (time.process_time)
over N messages, the best of ROUNDS rounds, and each one's ratio to the reference.

Usage: PYTHONPATH=. python bench/handler_cpu.py [--messages 20000] [--rounds 5] [--profile /tmp/handler.prof]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable

from bench._common import free_port, print_table
from opendots.cli.certs import init_pki
from opendots.model import decode_signal, encode_signal
from opendots.pki import cuid_from_certificate
from opendots.signal.server.core import Request, Response
from opendots.signal.server.core.messages import HEARTBEAT

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
KINDS = ("heartbeat", "refresh PUT", "GET")


def request(kind: str, cuid: str) -> Request:
    if kind == "heartbeat":
        return Request("PUT", ("hb",), peer=cuid, payload=encode_signal({HEARTBEAT: {"peer-hb-status": True}}))
    path = ("mitigate", f"cuid={cuid}", "mid=1")
    if kind == "GET":
        return Request("GET", path, peer=cuid)
    entry = {"target-prefix": ["2001:db8:6401::/48"], "target-protocol": [6], "lifetime": 3600}
    return Request("PUT", path, peer=cuid, payload=encode_signal({SCOPE: {"scope": [entry]}}))


def per_message(answer: Callable[[Request], bytes | None], message: Request, count: int, rounds: int) -> float:
    """Best of ROUNDS of the CPU time per message answering MESSAGE COUNT times."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            answer(message)
        best = min(best, (time.process_time() - started) / count)
    return best


async def main(args: argparse.Namespace) -> None:
    from opendots.config import ServerConfig
    from opendots.mitigate.base import LoggingMitigator
    from opendots.signal.server.shell.run import start_signal_server

    logging.basicConfig(level=logging.ERROR)
    pki = Path(tempfile.mkdtemp(prefix="opendots-bench-handler-"))
    init_pki(pki, client_names=[])
    config = ServerConfig.load(pki / "server.toml")
    server = await start_signal_server(config, bind=[("127.0.0.1", free_port())], mitigator=LoggingMitigator())
    service = server.service
    cuid = cuid_from_certificate((pki / "client.crt").read_bytes())

    def dots(message: Request) -> bytes | None:
        response = service.handle(message)
        return encode_signal(response.body, validate=False) if response.body is not None else None

    def reference(message: Request) -> bytes | None:
        Response("4.04", diagnostic="no such resource")
        return None

    first = service.handle(request("refresh PUT", cuid))
    assert first.code == "2.01", first
    await service.idle()
    profiler = None
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    rows: list[tuple[str, str, str]] = []
    base = per_message(reference, request("GET", cuid), args.messages, args.rounds)
    rows.append(("reference (answers 4.04 at once)", f"{base * 1e6:.2f} µs/message", "Request and Response only"))
    for kind in KINDS:
        message = request(kind, cuid)
        answer = service.handle(message)
        shown = decode_signal(encode_signal(answer.body, validate=False)) if answer.body is not None else None
        seconds = per_message(dots, message, args.messages, args.rounds)
        await service.idle()  # the events of the run (none for these kinds) acted on, the timers looked at
        note = f"ratio to the reference {seconds / base:.0f}; answers {answer.code} {shown or ''}"
        rows.append((f"{kind}, DOTS handling CPU", f"{seconds * 1e6:.1f} µs/message", note[:150]))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    print_table(rows)
    await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000, help="messages per kind and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per kind (the best counts)")
    parser.add_argument("--profile", type=Path, help="write a cProfile (CPU time) of the handling to this file")
    asyncio.run(main(parser.parse_args()))
