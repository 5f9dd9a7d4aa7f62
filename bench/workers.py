"""`opendots server --workers N` on SQLite: mitigation PUT rate with 1 and 2 workers, and how fast an observer on one
worker hears of a change made through the other.

    .venv/bin/python bench/workers.py [--seconds 5] [--concurrency 16] [--clients 8] [--notifications 100]

Rows: PUT rate and latency p50/p99 (DTLS, --concurrency requests in flight spread over --clients client contexts,
each its own source port, so SO_REUSEPORT spreads them over the workers;
40 mitigations per request slot, each its own /64, created then refreshed in turn)
with `--workers 1` and `--workers 2`, server CPU per PUT over the parent and its workers; cross-worker
notification latency (an observer on worker 1, a refresh PUT sent through worker 0: from the PUT leaving to the
notification arriving; the writer pokes the others after its commit, and they read the change log every 0.2 s
anyway). The load generator is this process (one event
loop): its CPU caps the rate it can offer, the ratio of the two rows is what to read. Not a test: nothing is
asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import collections
import itertools
import random
import signal
import tempfile
import time

import aiocoap

from bench._common import cpu_seconds, percentiles, print_table
from opendots.cli.certs import init_pki
from opendots.config import ServerConfig
from opendots.model import decode_signal
from tests.helpers.cluster import SCOPE, DotsClient, Node, start_node
from tests.helpers.workers import start_workers


async def node_cpu(node: Node) -> float:
    pids = [w["pid"] for w in (await node.status()).get("workers", [])]
    return sum(cpu_seconds(pid) for pid in [node.process.pid, *pids])


async def put_load(
    clients: list[DotsClient], node: Node, seconds: float, concurrency: int
) -> tuple[float, list[float], str]:
    """PUTs for SECONDS, CONCURRENCY in flight: each slot creates 40 mitigations (own /64s), then refreshes them in
    turn (the server allows a client 1,000). Returns the rate, the latencies and the response codes seen."""
    latencies: list[float] = []
    codes: collections.Counter[str] = collections.Counter()
    end = time.monotonic() + seconds

    async def one(index: int) -> None:
        client = clients[index % len(clients)]
        for turn in itertools.count():
            if time.monotonic() >= end:
                return
            mid = 100_000 + index * 100 + turn % 40
            started = time.perf_counter()
            response = await client.put(node, mid, f"2001:db8:{index:x}:{mid & 0xFFFF:x}::/64")
            latencies.append(time.perf_counter() - started)
            codes[str(response.code).split()[0]] += 1

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    rate = len(latencies) / (time.monotonic() - started)
    return rate, latencies, ", ".join(f"{code}: {count}" for code, count in sorted(codes.items()))


async def measure(pki: Path, node: Node, cuid: str, workers: int, args: argparse.Namespace) -> list:
    rows = []
    groups = await spread(pki, node, cuid, args.clients)
    clients = [c for group in groups.values() for c in group]
    if workers > 1 and len(groups) > 1:
        a, b = groups[0][0], groups[1][0]
        n50, n99 = percentiles(await notification_latency(a, b, node, args.notifications))
        note = "poked after the commit; polled every 0.2 s"
        rows.append(("cross-worker notification", f"p50 {n50:.1f} ms, p99 {n99:.1f} ms", note))
    cpu = await node_cpu(node)
    rate, latencies, codes = await put_load(clients, node, args.seconds, args.concurrency)
    used = await node_cpu(node) - cpu
    p50, p99 = percentiles(latencies)
    note = f"server CPU {used / max(1, len(latencies)) * 1000:.2f} ms/PUT; {codes}"
    if workers > 1:
        note += f"; clients per worker {sorted(len(g) for g in groups.values())}"
    rows.append((f"--workers {workers}: PUT rate", f"{rate:.0f}/s", note))
    rows.append((f"--workers {workers}: PUT latency", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", ""))
    for client in clients:
        await client.close()
    return rows


async def spread(pki: Path, node: Node, cuid: str, count: int) -> dict[int, list[DotsClient]]:
    """COUNT client contexts, grouped by the worker that holds each one's session."""
    by_worker: dict[int, list[DotsClient]] = collections.defaultdict(list)
    for _ in range(count):
        before = {w["worker"]: w["sessions"]["dtls"] for w in (await node.status()).get("workers", [])}
        client = await DotsClient.open(pki, "client", cuid)
        await client.entries(node)
        after = {w["worker"]: w["sessions"]["dtls"] for w in (await node.status()).get("workers", [])}
        grown = [index for index in after if after[index] > before.get(index, 0)] or [0]
        by_worker[grown[0]].append(client)
    return by_worker


async def notification_latency(a: DotsClient, b: DotsClient, node: Node, count: int) -> list[float]:
    mid = 90_000
    created = await a.put(node, mid, "2001:db8:ffff::/64")
    assert created.code == aiocoap.CREATED, (created, created.payload)
    observe = b.observe(node, mid)
    await asyncio.wait_for(observe.response, 15)
    notifications = observe.observation.__aiter__()
    latencies = []
    for lifetime in range(1000, 1000 + count):
        await asyncio.sleep(random.uniform(0, 0.25))  # not in step with the workers' 0.2 s poll
        started = time.perf_counter()
        await a.put(node, mid, "2001:db8:ffff::/64", lifetime=lifetime)
        while True:
            notified = await asyncio.wait_for(notifications.__anext__(), 15)
            if decode_signal(notified.payload)[SCOPE]["scope"][0]["lifetime"] == lifetime:
                break
        latencies.append(time.perf_counter() - started)
    observe.observation.cancel()
    return latencies


async def main(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="od-workers-") as directory:
        pki = Path(directory)
        init_pki(pki)
        cuid = ServerConfig.load(pki / "server.toml").clients[0].cuid
        for workers in (1, 2):
            # One worker: the plain server, which is what `--workers 1` runs.
            single = workers == 1
            node = await _single(pki) if single else await start_workers(pki, workers, db=str(pki / "w2.db"))
            try:
                rows += await measure(pki, node, cuid, workers, args)
            finally:
                node.process.send_signal(signal.SIGTERM)
                await node.process.wait()
    print_table(rows)


async def _single(pki: Path) -> Node:
    """`opendots server` alone (no --workers), with an operator socket: the reference row."""
    return await start_node(pki, "single", str(pki / "single.db"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--notifications", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
