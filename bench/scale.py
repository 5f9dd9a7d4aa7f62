"""Scale-out benchmark: `opendots server` processes on one PostgreSQL database beside one on SQLite, same run.

    .venv/bin/python bench/scale.py [--seconds 3] [--concurrency 16] [--clients 16] [--generators 2]
                                    [--notifications 200] [--failovers 3] [--pg-url postgresql://...]

Setups, each on a fresh database (SQLite file; PostgreSQL database on the throwaway cluster): one node on SQLite,
one node on PostgreSQL, two nodes on PostgreSQL. Rows for each, DTLS, --concurrency requests in flight spread over
the nodes (bench/_put_load.py: --generators load-generating processes, each with its own event loop):
- one client: every PUT from the one certificate `client` (one cuid, a DTLS session per generator process and
  node), each a new 'mid' with its own /80, so nothing supersedes or conflicts; every request takes that client's
  lock on the server (its 'mid' rules and limits);
- --clients clients: each its own certificate and cuid, one request in flight each, targets of their own (no
  overlap): on PostgreSQL the per-scope locks let their writes proceed side by side;
- the same clients on shared targets: 64 /64s all of them ask for, so most PUTs meet another client's mitigation
  (RFC 9132 §4.4.1.3: a conflict, 4.09), across nodes in the two-node setup.
Each rate row gives the server's CPU per PUT (the opendots processes), PostgreSQL's (the postmaster and its
backends, when this script started the cluster), the generator's own CPU per PUT and the share of a core its
busiest process used (near 100 %, the generator and not the server caps the rate), how busy the machine's CPUs
were over the window and how much of that was outside this benchmark (other jobs), and the load average.
Then, on two nodes: cross-node notification latency (bench/_notified.py: status changes sent to node A by this
process, a withdrawal and a request again in turn, each notified wherever it is made; from the request leaving to
the notification of an observer on node B arriving), beside the same notification to an observer on A itself and
A's answer to the request; failover
time (SIGKILL of the node holding the mitigator lease until the other says, on its operator socket, that it holds
the lease, polled every 20 ms).
Without --pg-url a throwaway PostgreSQL cluster is started (initdb in a temporary directory, the tests' helper).
Servers, PostgreSQL and the generator share the machine's CPUs (nothing is pinned): on 2 cores the rates are
CPU-bound and read as ratios between setups of the same run. Not a test: nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import itertools
import os
import signal
import tempfile
import time

from bench._common import free_port, percentiles, print_table
from bench._notified import status_change_latency
from bench._put_load import Context, PutLoad, Slot, rate_rows
from opendots.cli.certs import init_pki
from opendots.config import ServerConfig
from tests.helpers.cluster import DotsClient, Node, start_node

_mids = itertools.count(1)


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


async def main(args: argparse.Namespace, databases: list[str], postgres: int | None) -> None:
    """DATABASES: the PostgreSQL URLs of the one-node and the two-node setups; POSTGRES: its postmaster's pid."""
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="opendots-scale-") as directory:
        pki = Path(directory)
        names = [f"bench{index:02d}" for index in range(args.clients)]
        init_pki(pki, client_names=names)
        with (pki / "server.toml").open("a") as config:  # the load creates tens of thousands of mitigations
            config.write("\n[signal]\nmax_mitigations_per_client = 10000000\n")
        cuids = {c.name: c.cuid for c in ServerConfig.load(pki / "server.toml").clients}
        one = [Context("client", cuids["client"], 0)] * args.generators  # one certificate, a context per process
        many = [Context(name, cuids[name], index + 1) for index, name in enumerate(names)]
        load = PutLoad(pki, args.generators)
        client = await DotsClient.open(pki, "client", cuids["client"])
        try:
            setups: list[tuple[str, str, int]] = [
                ("SQLite, 1 node", str(pki / "sqlite.db"), 1),
                ("PostgreSQL, 1 node", databases[0], 1),
                ("PostgreSQL, 2 nodes", databases[1], 2),
            ]
            for label, db, count in setups:
                nodes = [await start_node(pki, f"n{i}", db) for i in range(count)]
                on_pg = postgres if db.startswith("postgresql") else None
                try:
                    ports = [node.port for node in nodes]
                    spread = [Slot(i, ports[i % count]) for i in range(len(many))]
                    single = [Slot(i % len(one), ports[i % count]) for i in range(args.concurrency)]
                    loads = [
                        ("1 client", one, False, single),
                        (f"{len(many)} clients", many, False, spread),
                        (f"{len(many)} clients, shared targets", many, True, spread),
                    ]  # fmt: skip
                    for kind, contexts, shared, slots in loads:
                        await load.open(contexts)
                        await load.run(slots, 0.5, shared=shared)  # sessions up, caches warm
                        pids = [node.process.pid for node in nodes]
                        window, spent = await load.measured(slots, args.seconds, pids, on_pg, shared=shared)
                        rows += rate_rows(f"{label}, {kind} ({len(slots)} in flight)", window, spent, "node")
                    if count == 2:
                        a, b = nodes
                        answers, (here, there) = await status_change_latency(
                            (client, a), [(client, a), (client, b)], next(_mids), "203.0.113.128/28", args.notifications
                        )
                        (p50, p99), (h50, h99), (a50, a99) = percentiles(there), percentiles(here), percentiles(answers)
                        notes = (
                            f"{len(there)} status changes through A (withdrawn, asked again), observer on B; the same "
                            f"notification to an observer on A p50 {h50:.1f} ms, p99 {h99:.1f} ms; A's answer p50 "
                            f"{a50:.1f} ms, p99 {a99:.1f} ms; load average {os.getloadavg()[0]:.1f}"
                        )
                        rows.append(("cross-node notification p50/p99", f"{p50:.1f} / {p99:.1f} ms", notes))
                        times = [await failover(pki, db, nodes) for _ in range(args.failovers)]
                        rows.append(
                            (
                                "failover (SIGKILL to lease taken)",
                                f"{max(times):.2f} s max",
                                " ".join(f"{t:.2f}" for t in times)
                                + f" s; lease retried every 1 s; load average {os.getloadavg()[0]:.1f}",
                            )
                        )
                finally:
                    for node in nodes:
                        await node.stop()
        finally:
            await client.close()
            load.close()
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight in the one-client rows")
    parser.add_argument("--clients", type=int, default=16, help="clients (one request in flight each) of the others")
    parser.add_argument("--generators", type=int, default=2, help="load-generating processes")
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
        if cluster is None:
            asyncio.run(main(arguments, [arguments.pg_url] * 2, None))  # one database for both PostgreSQL setups
        else:
            postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
            fresh = [cluster.fresh_database(), cluster.fresh_database()]
            asyncio.run(main(arguments, fresh, postmaster))
    finally:
        if cluster is not None:
            cluster.stop()
