"""`opendots server --workers N`: N worker processes on one node, and the parent that keeps them running.

Each worker is a whole `opendots server` (signal and data channels) listening on the same ports with SO_REUSEPORT:
the kernel hashes a UDP peer's address and port to one socket of the group, so a DTLS session's datagrams keep
reaching the worker that holds it (while the group is unchanged: a restarted worker rejoins it and some peers
are hashed elsewhere, where they hand-shake again), and a TLS connection stays with the worker that accepted it.
The workers share the database: on SQLite through its change log and write lock
(opendots.signal.server.shell.workers_sqlite), on PostgreSQL as the nodes of a cluster
(opendots.signal.server.shell.cluster). Exactly one of them drives the mitigators, the lease holder.

The parent holds no session. It starts worker 0 first (it migrates the database), then the others; restarts a
worker that dies (after RESTART_PAUSE); on SIGTERM or SIGINT stops them all (SIGTERM, then SIGKILL after
STOP_GRACE); passes SIGHUP on. It serves the node's operator socket and /metrics itself, from the workers' own
(`<admin_socket>.<n>`, and a metrics endpoint each on 127.0.0.1): the node is seen whole (opendots.cli.node_view).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from opendots.config import ServerConfig

log = logging.getLogger(__name__)

WORKER_ENV = "OPENDOTS_WORKER"
"""Set in each worker's environment: "<index>:<fd>", the fd of the pipe its ready report goes to."""
RESTART_PAUSE = 1.0
STOP_GRACE = 15.0
READY_TIMEOUT = 120.0


def worker_from_environment() -> tuple[int, int] | None:
    """(index, ready fd) when this process is a worker of `--workers N`."""
    value = os.environ.get(WORKER_ENV)
    if not value:
        return None
    index, _, fd = value.partition(":")
    return int(index), int(fd)


def as_worker(config: ServerConfig, index: int, count: int) -> None:
    """What a worker changes in the node's configuration: its number, its own operator socket and metrics, and its
    share of the node's session cap: `max_sessions` (for DTLS, and for TLS) is the node's, and each of COUNT workers
    holds at most max_sessions // COUNT, so the node never holds more than the operator allowed. The kernel hashes
    peers to workers (SO_REUSEPORT), not evenly: a full worker refuses a new session while another has room.
    `max_handshakes` (unfinished DTLS handshakes) is the node's too, its default taken from the node's max_sessions;
    so is `max_handshakes_per_address`: the kernel hashes each source port of an address to a worker, so one address
    opening handshakes from many ports reaches every worker, and a per-worker limit would let it hold N times the
    configured number (each worker keeps at least one, so a peer always gets through its own worker)."""
    config.worker = index
    share_caps(config, count)
    if config.admin_socket is not None:
        config.admin_socket = Path(f"{config.admin_socket}.{index}")
    if config.metrics:
        config.metrics = "127.0.0.1:0"
    _die_with_parent()


def share_caps(config: ServerConfig, count: int) -> None:
    """One worker's share of the node's caps (as_worker says which)."""
    count = max(1, count)
    handshakes = config.max_handshakes or max(64, config.max_sessions // 10)  # the node's (DtlsServer's default)
    config.max_handshakes = max(1, handshakes // count)
    config.max_handshakes_per_address = max(1, config.max_handshakes_per_address // count)
    config.max_sessions = max(1, config.max_sessions // count)


def report_ready(fd: int, describe: str, metrics: list[tuple[Any, ...]] | None, admin: Path | None) -> None:
    """The worker's line to its parent once it serves."""
    bound = f"{metrics[0][0]}:{metrics[0][1]}" if metrics else None
    line = json.dumps({"pid": os.getpid(), "describe": describe, "metrics": bound, "admin": admin and str(admin)})
    with os.fdopen(fd, "w") as pipe:
        pipe.write(line + "\n")


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when its parent dies (kill -9 of the parent leaves no orphan on the ports)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0


class Supervisor:
    def __init__(self, config: ServerConfig, count: int, argv: list[str]) -> None:
        self.config = config
        self.workers = [Worker(index) for index in range(count)]
        self.argv = argv
        self.stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def spawn(self, worker: Worker) -> None:
        """Start WORKER and wait for its ready report; RuntimeError when it exits first."""
        read, write = os.pipe()
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "opendots",
                *self.argv,
                env={**os.environ, WORKER_ENV: f"{worker.index}:{write}"},
                pass_fds=(write,),
            )
        finally:
            os.close(write)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                line = await asyncio.to_thread(_read_all, read)
        finally:
            os.close(read)
        if not line:
            status = await worker.process.wait()
            raise RuntimeError(f"worker {worker.index} exited with status {status} before it served")
        worker.ready = json.loads(line)

    async def start(self) -> None:
        await self.spawn(self.workers[0])  # alone first: it brings the database's schema up to date
        await asyncio.gather(*(self.spawn(worker) for worker in self.workers[1:]))
        self._watchers = [asyncio.create_task(self._watch(worker)) for worker in self.workers]

    async def _watch(self, worker: Worker) -> None:
        while True:
            assert worker.process is not None
            status = await worker.process.wait()
            if self.stopping:
                return
            log.error(
                "worker %d (pid %s) exited with status %s: restarting it", worker.index, worker.process.pid, status
            )
            worker.ready = {}
            await asyncio.sleep(RESTART_PAUSE)
            if self.stopping:
                return
            worker.restarts += 1
            try:
                await self.spawn(worker)
            except (RuntimeError, TimeoutError, OSError) as problem:
                log.error("%s", problem)

    def signal_all(self, number: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(number)

    async def stop(self) -> None:
        self.stopping = True
        for task in self._watchers:
            task.cancel()
        self.signal_all(signal.SIGTERM)
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await worker.process.wait()
            except TimeoutError:
                log.error("worker %d did not stop within %.0f s: killed", worker.index, STOP_GRACE)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()

    def describe(self) -> str:
        first = self.workers[0].ready.get("describe", "opendots server")
        first = first.split("; metrics on")[0].split("; operator socket")[0]  # the worker's own: the node's below
        pids = ", ".join(str(w.ready.get("pid")) for w in self.workers)
        text = f"{first}; {len(self.workers)} workers (pids {pids})"
        if self.config.metrics:
            text += f"; metrics on http://{self.config.metrics}/metrics"
        if self.config.admin_socket is not None:
            text += f"; operator socket {self.config.admin_socket}"
        return text


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def supervise(config: ServerConfig, count: int, argv: list[str]) -> None:
    """Run COUNT workers of `opendots server ARGV` until SIGTERM or SIGINT."""
    from opendots.cli.node_view import start_node_views

    async def main() -> None:
        supervisor = Supervisor(config, count, argv)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        loop.add_signal_handler(signal.SIGHUP, supervisor.signal_all, signal.SIGHUP)
        views = []
        try:
            await supervisor.start()
            views = await start_node_views(config, supervisor)
            click.echo(supervisor.describe(), err=True)
            await stop.wait()
        finally:
            for view in views:
                await view.stop()
            await supervisor.stop()

    try:
        asyncio.run(main())
    except RuntimeError as problem:
        raise click.ClickException(str(problem)) from None
