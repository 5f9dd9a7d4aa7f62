"""`opendots server --workers 2` as real processes (issue #18): requests through either worker (the kernel picks it
by the client's source port, SO_REUSEPORT) reach one shared state; one worker drives the mitigators; the parent's
operator socket and /metrics see the whole node; a killed worker is restarted and the lease moves on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import urllib.request

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal
from tests.conftest import free_port
from tests.helpers.cluster import SCOPE, DotsClient, Node
from tests.helpers.workers import start_workers

pytestmark = pytest.mark.timeout(240)


async def _until(condition, what: str, attempts: int = 300) -> None:
    """Poll CONDITION (a coroutine function) until true: a bound on attempts, not a timing assertion."""
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def _one_client_per_worker(pki, node: Node, cuid: str) -> tuple[dict[int, DotsClient], list[DotsClient]]:
    """Client contexts (each its own source port) until each worker holds one's session: {worker: client}."""
    by_worker: dict[int, DotsClient] = {}
    opened: list[DotsClient] = []
    for _ in range(32):
        before = {w["worker"]: w["sessions"]["dtls"] for w in (await node.status())["workers"]}
        client = await DotsClient.open(pki, "client", cuid)
        opened.append(client)
        assert await client.entries(node) == []
        after = {w["worker"]: w["sessions"]["dtls"] for w in (await node.status())["workers"]}
        grown = [index for index in after if after[index] > before[index]]
        assert len(grown) == 1, (before, after)  # one session, in one worker
        by_worker.setdefault(grown[0], client)
        if len(by_worker) == 2:
            return by_worker, opened
    raise AssertionError("32 source ports all hashed to one worker")


def _metric(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str | None:
    """Where the workers keep their state: None, an SQLite file of the PKI directory; or a fresh PostgreSQL
    database, where each worker is a node of the cluster (opendots.signal.server.shell.cluster)."""
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


async def test_two_workers_share_one_state_and_one_mitigator_driver_and_a_killed_worker_comes_back(
    pki_dir, database, tmp_path
):
    # A copy of its own: the workers' database and poke sockets (a killed worker leaves its socket file) must not
    # land in the session's shared PKI directory, which other tests copy.
    pki_dir = shutil.copytree(pki_dir, tmp_path / "pki")
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients}["client"]
    metrics_port = free_port(socket.SOCK_STREAM)
    node = await start_workers(pki_dir, 2, metrics=metrics_port, db=database)
    opened: list[DotsClient] = []
    try:
        by_worker, opened = await _one_client_per_worker(pki_dir, node, cuid)
        a, b = by_worker[0], by_worker[1]

        # Created through worker 0, read through worker 1 (RFC 9132 §4.4.2): one store, the change log read first.
        assert (await a.put(node, 1, "203.0.113.0/28")).code == aiocoap.CREATED
        assert [e["mid"] for e in await b.entries(node)] == [1]

        # An observer on worker 1 hears the status changes made through worker 0 (§4.4.2.1): poked after the commit
        # (SQLite), or NOTIFYed (PostgreSQL). (A refresh that keeps the status is notified on neither worker.)
        # Withdrawn (§4.4.4), then asked again while active-but-terminating: active again, with the new lifetime.
        observe = b.observe(node, 1)
        first = await asyncio.wait_for(observe.response, 15)
        assert decode_signal(first.payload)[SCOPE]["scope"][0]["lifetime"] == 3600
        notifications = observe.observation.__aiter__()
        assert (await a.request(node, aiocoap.DELETE, 1)).code == aiocoap.DELETED
        withdrawn = await asyncio.wait_for(notifications.__anext__(), 15)
        assert decode_signal(withdrawn.payload)[SCOPE]["scope"][0]["status"] == "dots-client-withdrawn-mitigation"
        assert (await a.put(node, 1, "203.0.113.0/28", lifetime=600)).code == aiocoap.CHANGED
        revived = decode_signal((await asyncio.wait_for(notifications.__anext__(), 15)).payload)[SCOPE]["scope"][0]
        assert (revived["status"], revived["lifetime"]) == ("attack-mitigation-in-progress", 600)
        observe.observation.cancel()

        # 'mid' rules across workers (§4.4.1): a lower mid overlapping mid 1 gets 4.09 Conflict on worker 1,
        # which decides under SQLite's write lock on what worker 0 wrote.
        stale = await b.put(node, 0, "203.0.113.0/28")
        assert stale.code == aiocoap.CONFLICT, stale

        # The node seen whole: one mitigator driver, sessions summed, the client connected.
        status = await node.status()
        if database is None:  # worker 1 read worker 0's writes because it was poked, not only by its poll
            assert status["workers"][1]["cluster"]["pokes"] >= 1, status["workers"]
        assert [w["drives-mitigators"] for w in status["workers"]].count(True) == 1
        # Every datagram of a client's source port reached the worker holding its session (SO_REUSEPORT's hash):
        # one session per client context, none started again elsewhere by a misrouted record.
        assert status["sessions"]["dtls"] == sum(w["sessions"]["dtls"] for w in status["workers"]) == len(opened)
        assert {c["name"]: c["connected"] for c in status["clients"]}["client"] is True
        assert {c["name"]: c["mitigations"] for c in status["clients"]}["client"] == 1
        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{metrics_port}/metrics")
        assert _metric(text, "opendots_workers ") == 2
        dtls = 'opendots_signal_sessions{state="established",transport="dtls"}'
        assert _metric(text, dtls) == status["sessions"]["dtls"]

        # kill -9 of the lease holder: the parent starts it again, the other worker takes the lease.
        holder = next(w for w in status["workers"] if w["drives-mitigators"])
        os.kill(holder["pid"], signal.SIGKILL)

        async def restarted() -> bool:
            try:
                workers = (await node.status())["workers"]
            except Exception:
                return False
            again = next((w for w in workers if w["worker"] == holder["worker"]), None)
            drivers = [w for w in workers if w["drives-mitigators"]]
            return again is not None and again["restarts"] == 1 and again["pid"] != holder["pid"] and len(drivers) == 1

        await _until(restarted, "the killed worker restarted and one worker holding the lease")
        fresh = await DotsClient.open(pki_dir, "client", cuid)
        opened.append(fresh)
        assert [e["lifetime"] for e in await fresh.entries(node, 1)] == [pytest.approx(600, abs=60)]
        assert (await fresh.put(node, 2, "198.51.100.0/28")).code == aiocoap.CREATED
    finally:
        for client in opened:
            await client.close()
        workers = []
        if node.process.returncode is None:
            with contextlib.suppress(Exception):
                workers = [w["pid"] for w in (await node.status())["workers"]]
            node.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(node.process.wait(), 30) == 0
        for pid in workers:  # SIGTERM to the parent stopped its workers too
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()
