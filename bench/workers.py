"""`opendots server --workers N` on SQLite: mitigation PUT rate with 1 and 2 workers, and how fast an observer on one
worker hears of a change made through the other.

    .venv/bin/python bench/workers.py [--seconds 5] [--concurrency 16] [--clients 8] [--generators 2]
                                      [--notifications 100]

Rows: PUT rate and latency p50/p99 (DTLS, --concurrency requests in flight spread over --clients client contexts of
one certificate, each its own source port, so SO_REUSEPORT spreads them over the workers; the contexts spread over
--generators load-generating processes, bench/_put_load.py; 40 mitigations per request slot, each its own /80,
created in a 0.5 s warm-up, then refreshed in turn) with `--workers 1` and `--workers 2`, server CPU per PUT over
the parent and its workers, the generator's own CPU per PUT and the share of a core its busiest process used (near
100 %, the generator and not the server caps the rate), how busy the machine's CPUs were and the load average;
cross-worker notification latency (bench/_notified.py: status changes sent through worker 0 by this process, a
withdrawal and a request again in turn, each notified wherever it is made; from the request leaving to the
notification of an observer on worker 1 arriving, beside the same notification to an observer on worker 0; the
writer pokes the others after its commit, and they read the change log every 0.2 s anyway). Not a test: nothing is
asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import signal
import tempfile

from bench._common import percentiles, print_table
from bench._notified import status_change_latency
from bench._put_load import Context, PutLoad, Slot, rate_rows
from opendots.cli.certs import init_pki
from opendots.config import ServerConfig
from tests.helpers.cluster import Node, start_node
from tests.helpers.workers import clients_in_each_worker, start_workers


async def measure(pki: Path, node: Node, load: PutLoad, cuid: str, workers: int, args: argparse.Namespace) -> list:
    rows = []
    if workers > 1:
        opened = await clients_in_each_worker(pki, node, cuid)  # a session in each of two workers
        by_worker = {worker: client for client, worker in opened}
        a, b = by_worker[min(by_worker)], by_worker[max(by_worker)]
        answers, (here, there) = await status_change_latency(
            (a, node), [(a, node), (b, node)], 90_000, "2001:db8:ffff::/64", args.notifications, jitter=0.25
        )
        (n50, n99), (h50, h99), (a50, a99) = percentiles(there), percentiles(here), percentiles(answers)
        note = (
            f"{len(there)} status changes through worker 0 (withdrawn, asked again), observer on worker 1; the same "
            f"notification to an observer on worker 0 p50 {h50:.1f} ms, p99 {h99:.1f} ms; worker 0's answer p50 "
            f"{a50:.1f} ms, p99 {a99:.1f} ms; poked after the commit, polled every 0.2 s; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        rows.append(("cross-worker notification", f"p50 {n50:.1f} ms, p99 {n99:.1f} ms", note))
        for client, _ in opened:
            await client.close()
    before = await node.status()
    await load.open([Context("client", cuid, 0)] * args.clients)
    slots = [Slot(i % args.clients, node.port) for i in range(args.concurrency)]
    await load.run(slots, 0.5, cycle=40)  # sessions up, the mitigations created
    status = await node.status()
    pids = [node.process.pid, *(w["pid"] for w in status.get("workers", []))]
    window, spent = await load.measured(slots, args.seconds, pids, None, cycle=40)
    label = f"--workers {workers} ({args.concurrency} in flight, {args.clients} contexts)"
    rows += rate_rows(label, window, spent, "process" if workers == 1 else "process, the parent's too")
    if workers > 1:
        held = {w["worker"]: w["sessions"]["dtls"] for w in before["workers"]}
        sessions = [w["sessions"]["dtls"] - held.get(w["worker"], 0) for w in status["workers"]]
        rows[-1] = (rows[-1][0], rows[-1][1], f"{rows[-1][2]}; the generators' DTLS sessions per worker {sessions}")
    return rows


async def main(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="od-workers-") as directory:
        pki = Path(directory)
        init_pki(pki)
        cuid = ServerConfig.load(pki / "server.toml").clients[0].cuid
        load = PutLoad(pki, args.generators)
        for workers in (1, 2):
            # One worker: the plain server, which is what `--workers 1` runs.
            single = workers == 1
            node = await _single(pki) if single else await start_workers(pki, workers, db=str(pki / "w2.db"))
            try:
                rows += await measure(pki, node, load, cuid, workers, args)
            finally:
                await load.open([])  # the generators' sessions closed before their server goes
                node.process.send_signal(signal.SIGTERM)
                await node.process.wait()
        load.close()
    print_table(rows)


async def _single(pki: Path) -> Node:
    """`opendots server` alone (no --workers), with an operator socket: the reference row."""
    return await start_node(pki, "single", str(pki / "single.db"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--notifications", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
