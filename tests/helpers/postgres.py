"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a Unix socket there and a free
TCP port on 127.0.0.1, no system service. About 2 s to start; stopped with `-m immediate` (nothing to keep).

As root, initdb refuses to run: the cluster then runs as the `postgres` user (runuser), which owns its directory.
Each test gets its own database on the shared cluster (`fresh_database`), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

BIN = Path(os.environ.get("OPENDOTS_PG_BIN", "/usr/lib/postgresql/15/bin"))

T = TypeVar("T")


def unavailable() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    if not (BIN / "initdb").is_file() or not (BIN / "pg_ctl").is_file():
        return f"PostgreSQL server binaries not found in {BIN} (Debian: apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user for initdb to run as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start PostgreSQL as `postgres`"
    return None


class Cluster:
    def __init__(self, port: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="opendots-pg-"))
        self.data = self.directory / "data"
        self.port = port
        self._names = itertools.count(1)
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            self._prefix = ["runuser", "-u", "postgres", "--"]
            entry = pwd.getpwnam("postgres")
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self.directory.chmod(0o755)

    def _run(self, *command: str | Path) -> None:
        result = subprocess.run(
            [*self._prefix, *map(str, command)], capture_output=True, text=True, timeout=60, cwd=self.directory
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> None:
        self._run(BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.directory / "log", "-w", "start")

    def stop(self) -> None:
        try:
            self._run(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def fresh_database(self) -> str:
        """The URL of a new, empty database on this cluster."""
        import asyncpg

        name = f"t{os.getpid()}_{next(self._names)}"

        async def create() -> None:
            connection = await asyncpg.connect(self.url())
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        asyncio.run(create())
        return self.url(name)


def throwaway_cluster() -> Iterator[Cluster]:
    """A started cluster for a fixture to yield from (skips, saying why, where none can start); stopped after."""
    import socket

    import pytest

    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    from tests.conftest import free_port

    cluster = Cluster(free_port(socket.SOCK_STREAM))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


class LoopThread:
    """An event loop in a thread of its own: lets synchronous test code (the signal harness) drive the async
    PostgreSQL store, which must stay on the loop its pool was made on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class BlockingPostgresStore:
    """The synchronous SignalStore interface over PostgresSignalStore (each call waits for the store on its own
    loop): the same store-behaviour tests run on both backends through the synchronous harness."""

    def __init__(self, url: str) -> None:
        from opendots.store.postgres import PostgresSignalStore

        self.url = url
        self.loop = LoopThread()
        self.store = self.loop.run(PostgresSignalStore.open(url))

    def load(self) -> Any:
        return self.store.load()

    def apply(self, changes: Any) -> None:
        self.loop.run(self.store.apply(changes))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        return self.loop.run(self.store.dump())

    def close(self) -> None:
        try:
            self.loop.run(self.store.close())
        finally:
            self.loop.close()
