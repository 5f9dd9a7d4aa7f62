"""This node's part when several `opendots server` processes share one PostgreSQL database.

Every node answers for every mitigation. Its core keeps the mitigations in memory (MitigationTable); this shell
keeps that table in step with the database and feeds what other nodes changed into the core as "changed
elsewhere" events (`SignalServer.changed_elsewhere`), so the core stays sans-I/O:

- after a NOTIFY on `opendots_mitigations` (sent by the database's trigger at every commit that touches a
  mitigation), the node reads the change log past the last entry it saw and reloads those rows: its observers
  are notified as for a change of its own;
- before a mitigation request is decided, the same read (a GET), or the same read under the locks of the request's
  scope, held until the decision is stored (a PUT or DELETE: its client's and its target prefixes' locks; a timer's
  expiry, a mitigator's report, anything naming an alias: the whole table): nothing is decided on a table older
  than the database, and two decisions wait for each other only when one could change the other
  (opendots.store.postgres_scopes);
- the mitigator lease: one node at a time drives the mitigators. It holds a session advisory lock on a connection
  of its own; the others try every LEASE_RETRY seconds and, once one holds it, it waits GRACE, reads everything
  and re-applies what the database holds (the restart path). A holder stops driving VALID seconds after its last
  good check of that session, before any successor starts: never two drivers (shell.lease_fence). Counters its
  mitigators measure reach the others by NOTIFY;
- a client's session established here is announced, and the other nodes stop judging that client's liveness;
- a client's session configuration or telemetry setups written on any node are NOTIFYed (a trigger,
  opendots.store.postgres_state): the others read that client's rows before their next decision
  (opendots.signal.server.shell.client_state);
- a data-channel commit NOTIFYs its cuid: every node tells its signal observers (RFC 9133), and the lease holder
  enforces the client's ACLs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg

from opendots.domain import Counters
from opendots.signal.server.core import Decision, Event, Request, Response
from opendots.signal.server.core.server import UNSTORED
from opendots.signal.server.shell.client_state import FollowedClients
from opendots.signal.server.shell.data_reads import Fetched, alias_names
from opendots.signal.server.shell.durable import settle_async
from opendots.signal.server.shell.lease_fence import CHECK_INTERVAL, CHECK_TIMEOUT, GRACE, LOST_BACKOFF, LeaseFence
from opendots.signal.server.shell.service import SignalService
from opendots.signal.server.shell.write_scopes import write_scope
from opendots.store import postgres_cluster as db
from opendots.store import postgres_scopes as scopes
from opendots.store import postgres_state
from opendots.store.postgres import PostgresSignalStore
from opendots.store.postgres_data import DATA_CHANNEL
from opendots.store.records import StoreError

log = logging.getLogger(__name__)

LEASE_RETRY = 1.0  # seconds between a standby's attempts to take the lease
PRUNE_INTERVAL = 60.0
FAILED_PAUSE = 0.5  # after the database could not be reached: no busy loop of timer steps meanwhile
# InternalClientError: asyncpg's protocol in a state it did not expect, e.g. the FATAL a killed backend sends read
# while the connection was idle, then a query sent before the close is seen: asyncpg aborts the connection without
# calling its termination listeners, so this error is the only news that the session (and the lease's lock) is gone.
_DATABASE_ERRORS = (
    StoreError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class ClusterNode:
    def __init__(self, store: PostgresSignalStore, service: SignalService, url: str, *, node: str) -> None:
        self.store = store
        self.service = service
        self.url = url
        self.node = node
        """This node's name: the application_name of its database sessions (opendots.store.postgres)."""
        self.seen = store.seen
        """The last change-log entry this node's core holds (read at open, then moved on by every read)."""
        self.lease = False
        """Whether this node holds the mitigator lease now (and drives the mitigators while its fence is valid)."""
        self.fence = LeaseFence()
        self._retry_after = 0.0  # a node that lost the lease lets another take it first
        self._driving: asyncio.Task[None] | None = None
        """Taking the mitigators over (or re-applying after late checks), beside the lease checks."""
        self.leases_taken = 0
        self.followed = 0
        """Changes made elsewhere fed to this node's core."""
        self._published: dict[str, Counters] = {}
        self._listener: asyncpg.Connection | None = None
        self._lease_connection: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._resync = False
        self.clients = FollowedClients()
        """Clients whose session configuration or telemetry setups another node changed, to read."""
        self.on_lease: list[Callable[[], Awaitable[None]]] = []
        """Run when this node takes the lease, after the mitigators re-applied the mitigations (ACL enforcement)."""
        self.on_data_change: Callable[[str], None] = lambda cuid: None
        """A data-channel commit (on any node) changed this cuid's aliases or ACLs."""
        self._tasks: list[asyncio.Task[None]] = []
        self._notes: set[asyncio.Task[None]] = set()

    # --- start and stop --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Before the service starts: listen, and try the lease once (a lone node drives its mitigators from the
        first moment, as without a cluster). Raises StoreError when the database cannot be reached."""
        self.service.cluster = self
        # A restarted node gave every client with stored mitigations a liveness clock; with several nodes a
        # client's session may be anywhere: a node judges only the sessions it has seen.
        for client in self.service.core.settings.clients:
            self.service.core.peer_elsewhere(client.name)
        await self._listen()
        self.service.fence = lambda: self.fence.valid(time.monotonic())
        try:
            connection = self._lease_connection = await self._connect_lease()
            sent = time.monotonic()
            if await db.try_lease(connection):
                self.fence.taken(sent)
                # A node that lost the lock a moment ago may still drive until its fence: wait it out, then drive
                # from the first request on.
                log.warning("cluster node %s took the mitigator lease: it drives in %.0f s", self.node, GRACE)
                await asyncio.sleep(GRACE)
                sent = time.monotonic()
                await connection.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)
                self.fence.confirmed(sent)
                self.lease = True
                self.leases_taken += 1
                log.warning("cluster node %s holds the mitigator lease", self.node)
        except _DATABASE_ERRORS as problem:
            self._lose(problem)
        self.service.drives_mitigator = self.lease
        self._tasks = [
            asyncio.create_task(self._follow()),
            asyncio.create_task(self._hold_lease()),
            asyncio.create_task(self._prune()),
        ]

    async def stop(self) -> None:
        if self._driving is not None:
            self._tasks.append(self._driving)
        for task in [*self._tasks, *self._notes]:
            task.cancel()
        for task in [*self._tasks, *self._notes]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        connections = (self._listener, self._lease_connection)
        self._listener = self._lease_connection = None  # closed on purpose: not a lease lost
        for connection in connections:
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(*_DATABASE_ERRORS):
                    await connection.close(timeout=2)

    def describe(self) -> dict[str, Any]:
        """For the operator socket's status."""
        return {
            "node": self.node,
            "lease": self.lease,
            "leases-taken": self.leases_taken,
            "seen": self.seen,
            "clients-followed": self.clients.followed,
            "lease-state": "holds" if self.lease else "grace" if self.fence.held else "standby",
            "actuator-calls": sum(self.service.outcomes.values()),
        }

    # --- deciding on the database's rows ---------------------------------------------------------------

    async def settle(
        self, decide: Callable[[], Decision], mode: str, request: Request | None = None
    ) -> tuple[Response | None, list[Event]]:
        """Called by the service under its lock: decide on what the database holds, store, apply. A write takes the
        locks of REQUEST's scope (opendots.store.postgres_scopes), the whole table without one."""
        core = self.service.core
        events: list[Event] = []
        if mode == "client":
            try:
                events += await self._follow_clients()
            except StoreError as problem:  # answered from what this node holds (a write is refused by the store)
                log.warning("cluster: %s", problem)
            response, settled = await settle_async(
                core, self.store, decide(), self.service.clock(), self.service.acl_store
            )
            return response, events + settled
        try:
            if mode == "timer":
                decision = decide()
                if not decision.pending:  # heartbeats, announcements: nothing to store, nothing to lock
                    return await settle_async(core, self.store, decision, self.service.clock(), self.service.acl_store)
                # Expiries and session losses: decided again under the lock, on the rows the others left.
                core.set_aside(decision)
                events += decision.observed
            if mode == "read":
                seen, changed = await db.read_changes(self.store, self.seen)
                events += await self._feed(changed)
                self.seen = seen  # only once fed: a feed that failed is read again next time
                decision = decide()
                response, settled = await settle_async(
                    core, self.store, decision, self.service.clock(), self.service.acl_store
                )
                return response, events + settled
            scope = write_scope(request) if request is not None and mode == "write" else None
            async with scopes.scoped(self.store, self.seen, scope) as write:
                events += await self._feed(write.changed)
                self.seen = write.seen
                decision = decide()
                now = self.service.clock()
                response, settled = await settle_async(core, write, decision, now, self.service.acl_store)
                if write.committed:
                    self.seen = write.seen
                return response, events + settled
        except StoreError as problem:  # before anything was decided: the database is out of reach
            log.error("cluster: %s", problem)
            await asyncio.sleep(FAILED_PAUSE)
            return Response("5.03", diagnostic=UNSTORED), events  # a timer step's heartbeats still go out

    async def _feed(self, changed: db.Changed) -> list[Event]:
        """CHANGED fed to the core; the aliases the rows name read first, off the loop, when the data channel's
        store is remote (the core resolves them while it takes a row in)."""
        fetched = await self._aliases_of(changed)
        core, now = self.service.core, self.service.clock()
        events: list[Event] = []
        with contextlib.ExitStack() as stack:
            if fetched:
                assert self.service.data_reads is not None
                stack.enter_context(self.service.data_reads.using(fetched))
            for key, record in changed:
                found = core.changed_elsewhere(key, record, now)
                self.followed += bool(found)
                events += found
        return events

    async def _follow_clients(self) -> list[Event]:
        if not self.clients.due:
            return []
        wanted = self.clients.wanted()
        try:
            found = await postgres_state.read_clients(self.store, wanted)
        except StoreError:
            self.clients.pending |= wanted or set()  # read again next time
            self.clients.everything |= wanted is None
            raise
        return self.clients.feed(self.service.core, wanted, found, self.service.clock())

    async def _aliases_of(self, changed: db.Changed) -> Fetched:
        reads = self.service.data_reads
        if reads is None or not reads.remote:
            return {}
        cuids = {client.name: client.cuid for client in self.service.core.settings.clients}
        keys = {
            ("alias", cuids[record.client], name)
            for _, record in changed
            if record is not None and record.client in cuids
            for name in alias_names(record.request)
        }
        return await reads.fetch(keys, self.service.clock())

    async def _catch_up(self) -> list[Event]:
        events = await self._follow_clients()
        return events + await self._catch_up_mitigations()

    async def _catch_up_mitigations(self) -> list[Event]:
        if self._resync:
            self._resync = False
            seen, records = await db.read_everything(self.store)
            held = set(self.service.core.held_keys())
            changed: db.Changed = [(record.key, record) for record in records]
            changed += [(key, None) for key in held - {record.key for record in records}]
            events = await self._feed(changed)
            self.seen = seen
            return events
        seen, changed = await db.read_changes(self.store, self.seen)
        events = await self._feed(changed)
        self.seen = seen
        return events

    # --- following the others --------------------------------------------------------------------------

    async def _listen(self) -> None:
        listener = await db.connect_session(self.url)
        await listener.add_listener(db.MITIGATIONS_CHANNEL, self._on_mitigation)
        await listener.add_listener(db.COUNTERS_CHANNEL, self._on_counters)
        await listener.add_listener(db.PEERS_CHANNEL, self._on_peer)
        await listener.add_listener(DATA_CHANNEL, self._on_data)
        await listener.add_listener(postgres_state.CHANNEL, self._on_client_state)
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener

    def _on_mitigation(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        # "<writer> <cuid>/<mid>": this node's own writes are in its core already. The change log says which
        # keys changed, in commit order: the notification only says when to read it.
        if payload.rpartition(" ")[0] != self.node:
            self._wake.set()

    def _on_counters(self, _connection: Any, pid: int, _channel: str, payload: str) -> None:
        if self.lease:
            return  # this node measured them
        parsed = db.counters_from(payload)
        if parsed is not None:
            self.service.report_counters(*parsed)

    def _on_peer(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError, TypeError):
            node, client = json.loads(payload)
            if node != self.node and isinstance(client, str):
                self.service.core.peer_elsewhere(client)

    def _on_client_state(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        changed = postgres_state.changed_by(payload)
        if changed is not None and changed[0] != self.node:
            self.clients.changed(changed[1])
            self._wake.set()

    def _on_data(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_data_change(payload)

    def _on_listener_lost(self, _connection: Any) -> None:
        self._listener = None
        self._resync = True  # notifications may have been missed meanwhile: read everything when back
        self.clients.lost_track()
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._listener is None:
                    await self._listen()
                await self.service.follow(self._catch_up)
            except _DATABASE_ERRORS as problem:
                log.error("cluster: could not follow the other nodes: %s", problem)
                self._resync = True
                await asyncio.sleep(LEASE_RETRY)
                self._wake.set()

    def announce_session(self, client: str) -> None:
        """CLIENT's session is established on this node: the others stop judging its liveness."""
        payload = json.dumps([self.node, client])
        task = asyncio.get_running_loop().create_task(self._notify(db.PEERS_CHANNEL, payload))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def publish_counters(self, measured: dict[str, Counters]) -> None:
        for key, counters in measured.items():
            if self._published.get(key) != counters:
                self._published[key] = counters
                await self._notify(db.COUNTERS_CHANNEL, db.counters_payload(key, counters))

    async def _notify(self, channel: str, payload: str) -> None:
        try:
            await db.notify(self.store, channel, payload)
        except _DATABASE_ERRORS as problem:
            log.warning("cluster: could not notify %s: %s", channel, problem)

    # --- the mitigator lease ----------------------------------------------------------------------------

    async def _connect_lease(self) -> asyncpg.Connection:
        connection = await db.connect_session(self.url, keepalives=True)
        connection.add_termination_listener(self._lease_connection_closed)
        return connection

    def _lease_connection_closed(self, connection: asyncpg.Connection) -> None:
        """The lease's session ended (backend killed, database restarted): its lock is gone at once."""
        if connection is self._lease_connection:
            self._lose("the lease's database session ended")

    def _lose(self, problem: object) -> bool:
        """The lease's session is gone or given up, and with it the lock: stop driving now (another node may take
        the lock at once; it drives only after GRACE, see lease_fence). Whether the lock was held."""
        held = self.fence.held
        if held:
            log.error("cluster node %s lost the mitigator lease: %s", self.node, problem)
            self._retry_after = time.monotonic() + LOST_BACKOFF
        self.fence.lost()
        self.lease = self.service.drives_mitigator = False
        if self._lease_connection is not None:
            connection, self._lease_connection = self._lease_connection, None
            connection.terminate()
        return held

    async def _hold_lease(self) -> None:
        """Take the lock when free, wait GRACE, drive; while held, check the session every CHECK_INTERVAL seconds
        (each success extends the fence, opendots.signal.server.shell.lease_fence)."""
        while True:
            pause = CHECK_INTERVAL
            if not self.fence.held and time.monotonic() < self._retry_after:
                await asyncio.sleep(pause)  # a healthy node takes the lease first
                continue
            try:
                if self._lease_connection is None or self._lease_connection.is_closed():
                    self._lease_connection = await self._connect_lease()
                connection, sent = self._lease_connection, time.monotonic()
                if not self.fence.held:
                    if await db.try_lease(connection):
                        self.fence.taken(sent)
                        log.warning("cluster node %s took the mitigator lock: it drives in %.0f s", self.node, GRACE)
                    else:
                        pause = LEASE_RETRY
                else:
                    lapsed = self.lease and not self.fence.valid(sent)
                    await connection.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)  # the session, and its lock, is there
                    self.fence.confirmed(sent)
                    # Taking over runs beside these checks (a restore of many mitigations takes a while): the
                    # fence is extended meanwhile.
                    if self._driving is None and not self.lease and not self.fence.in_grace(time.monotonic()):
                        self._drive_in_background(self._take_lease())
                    elif self._driving is None and lapsed:  # the lock kept: nobody else drove, events were skipped
                        log.warning("cluster node %s: lease checks were late; re-applying what it holds", self.node)
                        self._drive_in_background(self._reapply())
            except _DATABASE_ERRORS as problem:
                self._lose(problem)
            except Exception as problem:  # the loop must outlive any failure: dead, it would "hold" for ever
                log.exception("cluster node %s: lease check failed unexpectedly", self.node)
                self._lose(problem)
            await asyncio.sleep(pause)

    def _drive_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        def done(task: asyncio.Task[None]) -> None:
            self._driving = None
            if not task.cancelled() and task.exception() is not None:  # the lease kept, tried on
                error = task.exception()
                log.error("cluster node %s: taking over the mitigators failed", self.node, exc_info=error)

        self._driving = asyncio.get_running_loop().create_task(work)
        self._driving.add_done_callback(done)

    async def _take_lease(self) -> None:
        self._resync = True  # whatever was missed: the mitigators get what the database holds
        await self.service.follow(self._catch_up)
        if not self.fence.held:
            return  # lost meanwhile
        self.lease = True
        self.leases_taken += 1
        log.warning("cluster node %s drives the mitigators: re-applying what the database holds", self.node)
        await self._drive()

    async def _reapply(self) -> None:
        """After a gap in the fence: the events of that gap were not acted on. Read the change log first (its
        notifications may still be queued), then the mitigators get exactly what the database holds active:
        what was withdrawn or expired meanwhile goes (restore replaces, opendots.mitigate.router)."""
        await self.service.follow(self._catch_up)
        if self.fence.held:
            await self._drive()

    async def _drive(self) -> None:
        await self.service.drive()
        for hook in list(self.on_lease):  # a hook may remove itself
            await hook()

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            if self.lease:
                with contextlib.suppress(*_DATABASE_ERRORS):
                    await db.prune(self.store)
