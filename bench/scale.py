"""Scale-out benchmark: `opendots server` processes on one PostgreSQL database beside one on SQLite, same run.

    .venv/bin/python bench/scale.py [--seconds 3] [--concurrency 16] [--notifications 200] [--failovers 3]
                                    [--pg-url postgresql://...]

Rows: mitigation PUT rate and per-request latency p50/p99 (DTLS, --concurrency requests in flight, each a new
'mid' with its own /64, so nothing supersedes or conflicts) for one node on SQLite, one node on PostgreSQL and two
nodes on PostgreSQL (requests alternating between them); cross-node notification latency (an observer on node B,
a refresh PUT sent to node A: from the PUT leaving to B's notification arriving); failover time (SIGKILL of the
node holding the mitigator lease until the other says, on its operator socket, that it holds the lease, polled
every 20 ms). Without --pg-url a throwaway PostgreSQL cluster is started (initdb in a temporary directory, the
tests' helper). The load generator is this process (one event loop): its CPU caps the rates it can offer; the
figures compare backends under the same generator, they are not the server's ceiling. Not a test: nothing is
asserted. Server CPU per PUT counts the opendots processes only (PostgreSQL's own backends come on top).
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
import signal
import tempfile
import time

import aiocoap

from bench._common import cpu_seconds, free_port, percentiles, print_table
from opendots.cli.certs import init_pki
from opendots.config import ServerConfig
from opendots.model import decode_signal
from tests.helpers.cluster import SCOPE, DotsClient, Node, start_node

_mids = itertools.count(1)


async def load(
    client: DotsClient, nodes: list[Node], seconds: float, concurrency: int
) -> tuple[float, list[float], str]:
    """PUT new mitigations for SECONDS with CONCURRENCY in flight, spread over NODES: (rate, latencies, codes)."""
    latencies: list[float] = []
    codes: collections.Counter[str] = collections.Counter()
    end = time.monotonic() + seconds

    async def worker(index: int) -> None:
        node = nodes[index % len(nodes)]
        while time.monotonic() < end:
            mid = next(_mids)
            prefix = f"2001:db8:{mid >> 16:x}:{mid & 0xFFFF:x}::/64"
            started = time.perf_counter()
            try:
                response = await client.put(node, mid, prefix)
                codes[str(response.code)] += 1
            except Exception as problem:  # a timeout under load: counted, not fatal
                codes[type(problem).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    return len(latencies) / elapsed, latencies, ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))


async def notification_latency(client: DotsClient, a: Node, b: Node, count: int) -> list[float]:
    """Refresh one mitigation through A COUNT times; the time until B's observer hears each refresh."""
    mid = next(_mids)
    created = await client.put(a, mid, "203.0.113.128/28", lifetime=3600)
    assert created.code == aiocoap.CREATED, (created.code, created.payload)
    await client.entries(b, mid)  # B holds it
    observe = client.observe(b, mid)
    await asyncio.wait_for(observe.response, 15)
    notifications = observe.observation.__aiter__()
    samples = []
    for i in range(count):
        lifetime = 3500 - i  # every refresh changes what observers are told; a late, older one says more
        started = time.perf_counter()
        put = asyncio.ensure_future(client.put(a, mid, "203.0.113.128/28", lifetime=lifetime))
        while True:
            notified = await asyncio.wait_for(notifications.__anext__(), 15)
            if decode_signal(notified.payload)[SCOPE]["scope"][0]["lifetime"] <= lifetime:
                break
        samples.append(time.perf_counter() - started)
        await put
    observe.observation.cancel()
    return samples


async def failover(pki: Path, url: str, nodes: list[Node]) -> float:
    """SIGKILL the lease holder among NODES (replaced in the list by a new node); seconds until another holds it."""
    statuses = [await node.status() for node in nodes]
    holder = next(node for node, status in zip(nodes, statuses, strict=True) if status["cluster"]["lease"])
    other = next(node for node in nodes if node is not holder)
    holder.process.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    await holder.process.wait()
    while not (await other.status())["cluster"]["lease"]:
        await asyncio.sleep(0.02)
    took = time.perf_counter() - killed
    nodes[nodes.index(holder)] = await start_node(pki, f"{holder.name}x", url)
    return took


async def main(args: argparse.Namespace, url: str) -> None:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="opendots-scale-") as directory:
        pki = Path(directory)
        init_pki(pki)
        with (pki / "server.toml").open("a") as config:  # the load creates tens of thousands of mitigations
            config.write("\n[signal]\nmax_mitigations_per_client = 10000000\n")
        cuid = next(c.cuid for c in ServerConfig.load(pki / "server.toml").clients if c.name == "client")
        client = await DotsClient.open(pki, "client", cuid)
        try:
            setups: list[tuple[str, list[str]]] = [
                ("SQLite, 1 node", [str(pki / "bench.db")]),
                ("PostgreSQL, 1 node", [url]),
                ("PostgreSQL, 2 nodes", [url, url]),
            ]
            for label, databases in setups:
                nodes = [await start_node(pki, f"n{i}", db) for i, db in enumerate(databases)]
                try:
                    await load(client, nodes, 0.5, args.concurrency)  # sessions up, caches warm
                    cpu = sum(cpu_seconds(node.process.pid) for node in nodes)
                    rate, latencies, codes = await load(client, nodes, args.seconds, args.concurrency)
                    cpu = sum(cpu_seconds(node.process.pid) for node in nodes) - cpu
                    p50, p99 = percentiles(latencies)
                    per_put = cpu / max(1, len(latencies)) * 1e6
                    rows.append((f"PUT rate, {label}", f"{rate:.0f}/s", f"{codes}; server CPU {per_put:.0f} us/PUT"))
                    rows.append((f"PUT latency p50/p99, {label}", f"{p50:.1f} / {p99:.1f} ms", ""))
                    if len(nodes) == 2:
                        samples = await notification_latency(client, nodes[0], nodes[1], args.notifications)
                        p50, p99 = percentiles(samples)
                        notes = f"{len(samples)} refreshes through A, observer on B"
                        rows.append(("cross-node notification p50/p99", f"{p50:.1f} / {p99:.1f} ms", notes))
                        times = [await failover(pki, url, nodes) for _ in range(args.failovers)]
                        rows.append(
                            (
                                "failover (SIGKILL to lease taken)",
                                f"{max(times):.2f} s max",
                                " ".join(f"{t:.2f}" for t in times) + " s; lease retried every 1 s",
                            )
                        )
                finally:
                    for node in nodes:
                        await node.stop()
        finally:
            await client.close()
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--notifications", type=int, default=200)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--pg-url", help="an existing, empty PostgreSQL database (default: a throwaway cluster)")
    arguments = parser.parse_args()
    cluster = None
    if arguments.pg_url is None:
        from tests.helpers.postgres import Cluster, unavailable

        reason = unavailable()
        if reason is not None:
            raise SystemExit(f"no PostgreSQL: {reason} (or give --pg-url)")
        cluster = Cluster(free_port())
        cluster.start()
    try:
        asyncio.run(main(arguments, arguments.pg_url or cluster.fresh_database()))
    finally:
        if cluster is not None:
            cluster.stop()
