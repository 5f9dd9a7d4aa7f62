"""One worker's part when `opendots server --workers N` runs N processes on one SQLite file (WAL).

Each worker's core keeps the mitigations in memory. What another worker changed reaches this one's core as "changed
elsewhere" events (`SignalServer.changed_elsewhere`, the entry point of several nodes on PostgreSQL), read from a
change log in the database itself:

- every write this worker makes to `signal_mitigations` is logged by TEMP triggers (they exist on this worker's
  connection only: a lone server pays nothing) in `node_changes`, with the writer's number;
- after each mitigation write a worker pokes the others (a datagram on their Unix sockets, `<db>.workers/<n>`),
  and each reads the log past the last entry it saw, reloads the rows other workers changed and feeds them to its
  core: observers here are notified of a change made through another worker within milliseconds, or POLL seconds
  at most when a poke is lost (the log is read every POLL seconds anyway);
- a mitigation request is decided on what the database holds: a GET after that read, a PUT or DELETE (or a timer's
  expiry, a mitigator's report) inside `BEGIN IMMEDIATE`, which is SQLite's write lock, held across the read, the
  decision and its commit: 'mid' rules and conflicts hold however requests race through different workers. The
  workers queue for it on an `flock` of `<db>.write-lock` first: the kernel wakes the next one when it is free,
  where SQLite's own busy handler would sleep 1-100 ms (with the event loop) between attempts;
- the mitigator lease: one worker at a time drives the mitigators, the one holding an exclusive `flock` on
  `<db>.mitigator-lease`. The kernel drops the lock with the process, so another worker (they try every
  LEASE_RETRY seconds) takes over and re-applies what the database holds, as a restarted server does;
- a client's session configuration and telemetry setups are logged too (by client): the others read that client's
  rows again and feed them to their cores (opendots.signal.server.shell.client_state); a /config or /tm-setup
  request is decided inside the write lock too, so a lower 'sid' never replaces a higher one (RFC 9132 §4.5.2);
- counters the lease holder measures and the clients whose session is up in a worker go through the same log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from opendots.domain import Counters
from opendots.signal.server.core import Decision, Event, Response
from opendots.signal.server.core.server import UNSTORED
from opendots.signal.server.shell.client_state import ClientState, FollowedClients
from opendots.signal.server.shell.durable import settle
from opendots.signal.server.shell.service import SignalService
from opendots.store.records import SessionConfigRecord, TelemetrySetupRecord
from opendots.store.signal import SqliteSignalStore, mitigation_record
from opendots.store.sqlite import SqliteDatabase

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between two reads of the change log
LEASE_RETRY = 1.0
PRUNE_INTERVAL = 60.0
KEEP = 10_000  # change-log entries kept behind the newest: a worker further behind reads everything again

_COLUMNS = (
    "cuid, mid, client, cdid, request, lifetime, status, started_at, expires_at, terminating_until, attack_status"
)
_LOG = """CREATE TABLE IF NOT EXISTS node_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, writer INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    payload TEXT)"""


def _triggers(writer: int) -> list[str]:
    """TEMP triggers logging this connection's mitigation writes (WRITER is a number: no quoting to get wrong)."""
    log_row = f"INSERT INTO node_changes (writer, kind, name) VALUES ({int(writer)}, 'mitigation', {{}})"
    return [
        f"CREATE TEMP TRIGGER IF NOT EXISTS node_log_{event.lower()} AFTER {event} ON main.signal_mitigations "
        f"BEGIN {log_row.format(row + '.cuid || ' + repr('/') + ' || ' + row + '.mid')}; END"
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ] + [
        # What a client installed besides mitigations (RFC 9132 §4.5, RFC 9244 §7): the others read its rows again.
        f"CREATE TEMP TRIGGER IF NOT EXISTS node_log_{table}_{event.lower()} AFTER {event} ON main.{table} "
        f"BEGIN INSERT INTO node_changes (writer, kind, name) VALUES ({int(writer)}, 'client', {row}.client); END"
        for table in ("signal_session_configs", "signal_telemetry_setups")
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ]


Changed = list[tuple[tuple[str, int], Any]]


class WorkerSync:
    """Keeps this worker's core in step with the others' writes to the shared SQLite file."""

    def __init__(self, store: SqliteSignalStore, service: SignalService, *, worker: int, base: Path) -> None:
        """BASE: the database file; the lease, the write lock and the workers' sockets are named after it."""
        self.store = store
        self.database: SqliteDatabase = store.database
        self.service = service
        self.worker = worker
        self.lease_path = Path(f"{base}.mitigator-lease")
        self.write_lock_path = Path(f"{base}.write-lock")
        self.sockets = Path(f"{base}.workers")
        self._write_lock: int | None = None
        self._poke: socket.socket | None = None
        self._woken = asyncio.Event()
        self.lease = False
        self.leases_taken = 0
        self.followed = 0
        self.pokes = 0
        """Pokes from other workers after their writes."""
        """Changes made by other workers fed to this worker's core."""
        self.seen = 0
        self.clients = FollowedClients()
        """Clients whose session configuration or telemetry setups another worker changed, to read."""
        self._lease_file: int | None = None
        self._published: dict[str, Counters] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.on_lease: list[Callable[[], Awaitable[None]]] = []
        self.on_data_change: Callable[[str], None] = lambda cuid: None

    # --- start and stop ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Before the service starts: the log and its triggers, where this worker starts reading, the lease tried
        once (the holder drives its mitigators from its first moment)."""
        connection = self.database.connection
        connection.execute(_LOG)
        for statement in _triggers(self.worker):
            connection.execute(statement)
        self.seen = connection.execute("SELECT coalesce(max(seq), 0) FROM node_changes").fetchone()[0]
        self.service.worker_sync = self
        # A client's session may be in any worker: each judges the liveness only of the sessions it has seen.
        for client in self.service.core.settings.clients:
            self.service.core.peer_elsewhere(client.name)
        self.lease = self._try_lease()
        self.service.drives_mitigator = self.lease
        if self.lease:
            self.leases_taken += 1
            log.warning("worker %d holds the mitigator lease", self.worker)

    def start(self) -> None:
        with contextlib.suppress(OSError):  # no socket (a path too long): the others' changes come by the poll
            self.sockets.mkdir(mode=0o700, exist_ok=True)
            own = self.sockets / str(self.worker)
            own.unlink(missing_ok=True)
            poke = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            poke.setblocking(False)
            poke.bind(str(own))
            asyncio.get_running_loop().add_reader(poke.fileno(), self._poked)
            self._poke = poke
        self._tasks = [
            asyncio.create_task(self._follow()),
            asyncio.create_task(self._hold_lease()),
            asyncio.create_task(self._prune()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._poke is not None:
            asyncio.get_running_loop().remove_reader(self._poke.fileno())
            self._poke.close()
            self._poke = None
            with contextlib.suppress(OSError):  # a socket file left behind breaks copying the directory
                (self.sockets / str(self.worker)).unlink(missing_ok=True)
                self.sockets.rmdir()  # the last worker out (OSError while another's socket is there)
        if self._write_lock is not None:
            os.close(self._write_lock)
            self._write_lock = None
        if self._lease_file is not None:
            os.close(self._lease_file)  # the lock goes with it
            self._lease_file = None

    def describe(self) -> dict[str, Any]:
        return {
            "node": f"worker {self.worker}",
            "lease": self.lease,
            "leases-taken": self.leases_taken,
            "seen": self.seen,
            "followed": self.followed,
            "pokes": self.pokes,
            "clients-followed": self.clients.followed,
        }

    # --- deciding on the database's rows ------------------------------------------------------------------

    def settle(self, decide: Callable[[], Decision], mode: str) -> tuple[Response | None, list[Event]]:
        """The service's synchronous settle with other workers around: MODE "read" reads what changed first, "write"
        and "client" (/config, /tm-setup; and a "timer" step that stores something) decide inside SQLite's write lock.

        "client" too: RFC 9132 §4.5.2 refuses a 'sid' lower than the one in force, and a /config PUT decided on a read
        taken outside the lock could commit after a higher one another worker decided meanwhile, replacing it (the
        table keeps the last write). Under the lock the read, the decision and the commit are one step."""
        core, service = self.service.core, self.service
        events: list[Event] = []
        if mode == "timer":
            decision = decide()
            if not decision.pending:
                return settle(core, self.store, decision, service.clock(), service.acl_store)
            core.set_aside(decision)  # decided again under the lock, on the rows the others left
            events += decision.observed
        try:
            if mode == "read":
                events += self._catch_up()
                response, settled = settle(core, self.store, decide(), service.clock(), service.acl_store)
                return response, events + settled
            connection = self.database.connection
            self._lock_writes()
        except (sqlite3.Error, OSError) as problem:
            log.error("worker %d: %s", self.worker, problem)
            return Response("5.03", diagnostic=UNSTORED), events
        try:
            connection.execute("BEGIN IMMEDIATE")  # the data channel and the logs write outside the flock
            try:
                events += self._catch_up()
                response, settled = settle(core, self.store, decide(), service.clock(), service.acl_store)
                connection.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as problem:  # BEGIN or COMMIT: nothing was stored
            log.error("worker %d: %s", self.worker, problem)
            return Response("5.03", diagnostic=UNSTORED), events
        finally:
            self._unlock_writes()
        self._poke_others()
        return response, events + settled

    def _lock_writes(self) -> None:
        if self._write_lock is None:
            self._write_lock = os.open(self.write_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._write_lock, fcntl.LOCK_EX)  # held by another worker for a decision: well under 1 ms

    def _unlock_writes(self) -> None:
        if self._write_lock is not None:
            fcntl.flock(self._write_lock, fcntl.LOCK_UN)

    def _poke_others(self) -> None:
        """Tell the other workers the log has grown (lost pokes only cost the poll's delay)."""
        if self._poke is None:
            return
        with contextlib.suppress(OSError):
            for path in self.sockets.iterdir():
                if path.name != str(self.worker):
                    with contextlib.suppress(OSError):  # a worker gone, or its queue full: it reads anyway
                        self._poke.sendto(b".", str(path))

    def _poked(self) -> None:
        assert self._poke is not None
        with contextlib.suppress(OSError):
            while self._poke.recv(16):
                pass
        self.pokes += 1
        self._woken.set()

    def _read_changes(self) -> Changed:
        """The mitigations other workers changed since `seen`, each once, as the database holds them now (None:
        deleted); also acts on the log's session and counter entries."""
        connection = self.database.connection
        rows = connection.execute(
            "SELECT seq, writer, kind, name, payload FROM node_changes WHERE seq > ? ORDER BY seq", (self.seen,)
        ).fetchall()
        if not rows:
            return []
        oldest = connection.execute("SELECT coalesce(min(seq), 0) FROM node_changes").fetchone()[0]
        behind = self.seen and oldest > self.seen + 1
        self.seen = rows[-1]["seq"]
        if behind:  # pruned past what this worker saw: read every row
            return self._everything()
        keys: dict[tuple[str, int], None] = {}
        for row in rows:
            if row["writer"] == self.worker:
                continue
            if row["kind"] == "mitigation":
                cuid, _, mid = row["name"].rpartition("/")
                keys[(cuid, int(mid))] = None
            elif row["kind"] == "session":
                self.service.core.peer_elsewhere(row["name"])
            elif row["kind"] == "counters" and not self.lease:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    self.service.report_counters(row["name"], Counters(**json.loads(row["payload"])))
            elif row["kind"] == "data":
                self.on_data_change(row["name"])
            elif row["kind"] == "client":
                self.clients.changed(row["name"])
        changed: Changed = []
        for key in keys:
            found = connection.execute(
                f"SELECT {_COLUMNS} FROM signal_mitigations WHERE cuid = ? AND mid = ?", key
            ).fetchone()
            changed.append((key, None if found is None else mitigation_record(found)))
        return changed

    def _catch_up(self) -> list[Event]:
        """What the other workers changed, fed to this worker's core: mitigations, then clients' own state."""
        events = self._feed(self._read_changes())
        if not self.clients.due:
            return events
        wanted = self.clients.wanted()
        found = self._client_rows(wanted)
        return events + self.clients.feed(self.service.core, wanted, found, self.service.clock())

    def _client_rows(self, wanted: set[str] | None) -> dict[str, ClientState]:
        """The session configurations and telemetry setups of the clients WANTED (None: all), as stored now."""
        connection = self.database.connection
        configs = connection.execute("SELECT client, config FROM signal_session_configs").fetchall()
        setups = connection.execute(
            "SELECT cuid, tsid, client, setup FROM signal_telemetry_setups ORDER BY cuid, tsid"
        ).fetchall()  # a few rows a client; read whole rather than one query per client
        found: dict[str, ClientState] = {client: (None, []) for client in wanted or ()}
        for row in configs:
            if wanted is None or row["client"] in wanted:
                found[row["client"]] = (SessionConfigRecord(row["client"], json.loads(row["config"])), [])
        for row in setups:
            if wanted is None or row["client"] in wanted:
                held = found.setdefault(row["client"], (None, []))[1]
                held.append(TelemetrySetupRecord(row["client"], row["cuid"], row["tsid"], json.loads(row["setup"])))
        return found

    def _everything(self) -> Changed:
        self.clients.lost_track()
        rows = self.database.connection.execute(f"SELECT {_COLUMNS} FROM signal_mitigations").fetchall()
        records = [mitigation_record(row) for row in rows]
        held = set(self.service.core.held_keys())
        changed: Changed = [(record.key, record) for record in records]
        return changed + [(key, None) for key in held - {record.key for record in records}]

    def _feed(self, changed: Changed) -> list[Event]:
        core, now = self.service.core, self.service.clock()
        events: list[Event] = []
        for key, record in changed:
            found = core.changed_elsewhere(key, record, now)
            self.followed += bool(found)
            events += found
        return events

    # --- following the others ------------------------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), POLL)
            self._woken.clear()
            try:
                await self.service.follow_now(self._catch_up)
            except sqlite3.Error as problem:
                log.error("worker %d could not read the change log: %s", self.worker, problem)

    def _note(self, kind: str, name: str, payload: str | None = None) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.database.connection.execute(
                "INSERT INTO node_changes (writer, kind, name, payload) VALUES (?, ?, ?, ?)",
                (self.worker, kind, name, payload),
            )

    def announce_session(self, client: str) -> None:
        """CLIENT's session is up in this worker: the others stop judging its liveness."""
        self._note("session", client)

    def data_changed(self, cuid: str) -> None:
        """This worker's data channel committed a change of CUID's aliases or ACLs: the others are told."""
        self._note("data", cuid)

    async def publish_counters(self, measured: dict[str, Counters]) -> None:
        for key, counters in measured.items():
            if self._published.get(key) != counters:
                self._published[key] = counters
                self._note("counters", key, json.dumps(dataclasses.asdict(counters)))

    # --- the mitigator lease ---------------------------------------------------------------------------------

    def _try_lease(self) -> bool:
        if self._lease_file is None:
            self._lease_file = os.open(self.lease_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lease_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    async def _hold_lease(self) -> None:
        while not self.lease:
            await asyncio.sleep(LEASE_RETRY)
            try:
                if self._try_lease():
                    await self._take_lease()
            except Exception:  # a mitigator that failed to start: logged, tried again
                log.exception("worker %d: taking over the mitigators failed", self.worker)

    async def _take_lease(self) -> None:
        await self.service.follow_now(lambda: self._feed(self._everything()) + self._catch_up())
        self.lease = True
        self.leases_taken += 1
        log.warning("worker %d took the mitigator lease: re-applying what the database holds", self.worker)
        await self.service.drive()
        for hook in self.on_lease:
            await hook()

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            if self.lease:
                with contextlib.suppress(sqlite3.Error):
                    self.database.connection.execute(
                        "DELETE FROM node_changes WHERE seq < (SELECT max(seq) FROM node_changes) - ?", (KEEP,)
                    )
