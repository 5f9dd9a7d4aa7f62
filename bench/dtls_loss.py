"""How DTLS connection attempts fare under datagram loss: the share that completes within a connect budget.

Needs root (a network namespace whose loopback drops LOSS % of UDP datagrams with nftables `numgen random`; the
kernel has no netem). In the namespace, a DTLS server (the project's) and ATTEMPTS client contexts, started
BATCH at a time, each doing what the agent's connect does: a DTLS handshake, then a CoAP ping (empty CON, RST).
Every stage gets a generous deadline, so one run yields the success rate for every budget up to it: how long the
handshake and the ping took is recorded, not just pass/fail. `ping` (the client's attempt before) gave each stage
its own timeout, so it succeeded within a budget when both stages did; `open_session` (now) when the handshake did.

    sudo .venv/bin/python bench/dtls_loss.py --loss 30 --attempts 60

Prints both success rates at budgets of 6, 10, 15, 20, 30 s (the agent's connect_timeout is 10 s, the loss tests'
6 s), and what the failures were.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGETS = (6.0, 10.0, 15.0, 20.0, 30.0)


def _ruleset(percent: int) -> str:
    return (
        "table inet odloss {\n  chain out {\n    type filter hook output priority 0; policy accept;\n"
        f"    meta l4proto udp numgen random mod 100 < {percent} counter drop\n  }}\n}}\n"
    )


async def _attempt(credentials, port: int, deadline: float) -> dict[str, float | str | None]:
    """One connection attempt, each stage given DEADLINE: the handshake (all `open_session` waits for over DTLS),
    then the CoAP ping the client's attempts sent after it before (`ping` gave each stage its own timeout)."""
    from opendots.transport import create_client_context, open_session, ping

    context = await create_client_context(credentials, server_name="localhost")
    result: dict[str, float | str | None] = {"handshake": None, "ping": None}
    try:
        started = time.monotonic()
        await open_session(context, f"coaps://127.0.0.1:{port}", timeout=deadline)
        result["handshake"] = time.monotonic() - started
        started = time.monotonic()
        await ping(context, f"coaps://127.0.0.1:{port}", timeout=deadline)
        result["ping"] = time.monotonic() - started
    except Exception as failure:  # a failed attempt is data here
        result["error"] = type(failure).__name__
    finally:
        await context.shutdown()
    return result


async def _inner(args: argparse.Namespace) -> None:
    import aiocoap.resource

    from opendots.config import TlsFiles
    from opendots.pki.setup import init_pki
    from opendots.transport import start_server

    directory = Path(tempfile.mkdtemp(prefix="dtls-loss-"))
    init_pki(directory)
    server_files = TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    client_files = TlsFiles(directory / "ca.crt", directory / "client.crt", directory / "client.key")
    endpoint = await start_server(
        aiocoap.resource.Site(),
        credentials=server_files,
        bind=[("127.0.0.1", 5999)],
        tls=False,
        handshake_timeout=args.server_handshake_timeout,
        max_handshakes_per_address=args.batch,  # every attempt comes from 127.0.0.1: measure the client, not the cap
    )
    results = []
    try:
        for first in range(0, args.attempts, args.batch):
            batch = range(first, min(first + args.batch, args.attempts))
            results += await asyncio.gather(*(_attempt(client_files, 5999, args.deadline) for _ in batch))
    finally:
        await endpoint.shutdown()
    print(json.dumps(results))


def _report(results: list[dict], loss: int) -> None:
    total = len(results)
    print(f"{total} attempts at {loss} % loss in each direction; share of attempts done within each budget")
    rows = {
        "handshake only (open_session, now)": [r["handshake"] for r in results if r["handshake"] is not None],
        "handshake + ping (ping, before)": [
            max(r["handshake"], r["ping"]) for r in results if r["handshake"] is not None and r["ping"] is not None
        ],
    }
    for label, times in rows.items():
        rates = "  ".join(f"<= {b:g} s: {sum(t <= b for t in times) / total:4.0%}" for b in BUDGETS)
        median = f"median stage {statistics.median(times):.1f} s" if times else "none"
        print(f"  {label:36} {rates}   ({median})")
    errors: dict[str, int] = {}
    for result in results:
        if "error" in result:
            stage = "handshake" if result["handshake"] is None else "ping"
            errors[f"{stage}: {result['error']}"] = errors.get(f"{stage}: {result['error']}", 0) + 1
    print(f"  failures within {BUDGETS[-1]:g} s: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=int, default=30)
    parser.add_argument("--attempts", type=int, default=60)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--server-handshake-timeout", type=float, default=10.0)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        asyncio.run(_inner(args))
        return
    name = f"od-dtlsloss-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        if args.loss:
            subprocess.run(
                ["ip", "netns", "exec", name, "nft", "-f", "-"], input=_ruleset(args.loss), text=True, check=True
            )
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        command = ["ip", "netns", "exec", name, sys.executable, __file__, "--inner", *sys.argv[1:]]
        out = subprocess.run(command, env=env, text=True, capture_output=True, check=True).stdout
        _report(json.loads(out.strip().splitlines()[-1]), args.loss)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


if __name__ == "__main__":
    main()
