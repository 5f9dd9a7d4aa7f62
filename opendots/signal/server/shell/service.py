"""The asyncio edge of the signal-channel server: one object that owns the sans-I/O core.

It serialises requests into the core (which is synchronous and fast), stores each decision before the core applies
it (`durable.settle`; `durable.settle_async`, one decision at a time, for a store whose writes are awaited), runs
the core's timers, applies mitigation events to a Mitigator in order, resolves target names, and hands every other
event (notifications, heartbeats, session loss) to the transport layer through `on_event`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from opendots.domain import Counters, MitigationScope
from opendots.mitigate.base import Lifecycle, Mitigator, MitigatorError, Restorable, read_counters, refused_by
from opendots.signal.server.core import (
    Decision,
    Event,
    MitigationActivated,
    MitigationExpired,
    MitigationUpdated,
    MitigationWithdrawn,
    PeerLost,
    Redirection,
    Request,
    Response,
    SignalServer,
    Status,
)
from opendots.signal.server.core.events import describe
from opendots.signal.server.core.filtering import AclActivationStore
from opendots.signal.server.shell.data_reads import DataReads, Fetched, notification_keys, request_keys
from opendots.signal.server.shell.data_reads import diagnostic as data_diagnostic
from opendots.signal.server.shell.durable import AsyncSignalStore, settle, settle_async
from opendots.store.records import SignalStore

log = logging.getLogger(__name__)
COUNTER_SLICE = 100
"""Counter readings decided between two turns of the event loop (refresh_counters)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClusterSettler(Protocol):
    """What the service asks of a cluster node (opendots.signal.server.shell.cluster.ClusterNode)."""

    async def settle(
        self, decide: Callable[[], Decision], mode: str, request: Request | None = None
    ) -> tuple[Response | None, list[Event]]: ...

    async def publish_counters(self, measured: dict[str, Counters]) -> None: ...


class WorkerSettler(Protocol):
    """What the service asks of a worker sharing an SQLite file with others (workers_sqlite.WorkerSync)."""

    def settle(self, decide: Callable[[], Decision], mode: str) -> tuple[Response | None, list[Event]]: ...

    async def publish_counters(self, measured: dict[str, Counters]) -> None: ...


def _mode(request: Request) -> str:
    """How a request is decided with other nodes or workers around: a mitigation request on the rows the others
    wrote (a write also under the shared lock); /config and tm-setup after reading what the client set through the
    others; heartbeats and telemetry reports are this process's own business."""
    if request.path[:1] == ("mitigate",):
        return "read" if request.method == "GET" else "write"
    if request.path[:1] in (("config",), ("tm-setup",)):
        return "client"  # decided on what the client set through any node (shell.client_state): PostgreSQL keeps
        # the higher 'sid' by a trigger (store.postgres_state), SQLite workers decide it under their write lock
    return "local"


class NameResolver(Protocol):
    async def resolve(self, name: str) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo); an IP literal resolves to itself."""

    async def resolve(self, name: str) -> list[IPAddress]:
        with contextlib.suppress(ValueError):
            return [ipaddress.ip_address(name)]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError as problem:
            log.warning("cannot resolve %s: %s", name, problem)
            return []
        return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


class SignalService:
    def __init__(
        self,
        core: SignalServer,
        store: SignalStore | AsyncSignalStore,
        mitigator: Mitigator,
        *,
        acl_store: AclActivationStore | None = None,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[Event], None] | None = None,
        resolver: NameResolver | None = None,
        counters_interval: float = 10.0,
        poke_coalesce: float = 0.005,
    ) -> None:
        self.core = core
        self.store = store
        self.acl_store = acl_store
        """Where RFC 9133 ACL activation changes are stored (the data channel), before the signal store."""
        self.awaited = inspect.iscoroutinefunction(store.apply)
        """The store's writes are awaited (AsyncSignalStore): decisions are settled one at a time under _lock."""
        self._lock = asyncio.Lock()
        self._settling: set[asyncio.Task[Response | None]] = set()
        self.mitigator = mitigator
        self.clock = clock
        self.on_event = on_event or (lambda event: None)
        self.resolver = resolver or SystemResolver()
        self._queue: asyncio.Queue[list[Event]] = asyncio.Queue()
        """The events of one request or timer, in order: one queue hand-off per batch, not per event."""
        self._wake = asyncio.Event()
        self._asleep = False
        """The timer task sleeps until `_asleep_until`; while it does not (not started, gathering pokes, running a
        step), every request pokes."""
        self._asleep_until: float | None = None
        """The deadline the timer task sleeps until (None: none, it waits for a poke)."""
        self._asleep_mark: tuple[int, float | None] | None = None
        """The core's timer_mark() when the task took `_asleep_until`: while it holds, no deadline moved earlier."""
        self._tasks: list[asyncio.Task[None]] = []
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        """(action, result) of every mitigator call, e.g. ("apply", "ok"), ("withdraw", "failed"): for metrics."""
        self.session_losses = 0
        self.counters_interval = counters_interval
        self.poke_coalesce = poke_coalesce
        """Seconds during which pokes (one per request) are gathered before the timers are looked at again."""
        self.cluster: ClusterSettler | None = None
        """Several nodes on one database (opendots.signal.server.shell.cluster): decisions read what the others
        wrote first, and mitigation writes take the locks of their scope."""
        self._drives = True
        self.fence: Callable[[], bool] = lambda: True
        """Whether the lease (several nodes) lets this node act now (opendots.signal.server.shell.lease_fence)."""
        self._mitigator_started = False
        self.data_reads: DataReads | None = None
        """The data channel's store as the core reads it (aliases, RFC 9133 ACLs): on a remote store, what a request
        needs is read off the loop first (opendots.signal.server.shell.data_reads)."""
        self.observed: Callable[[str], bool] = lambda client_name: True
        """Whether a client has observers its notifications are rendered for (the resource's): only then are the
        ACLs they show read beforehand (a remote data store)."""
        self._shown: Fetched = {}
        """The data channel's entries read for the batch of events being acted on (`_notification_reads`)."""
        self.worker_sync: WorkerSettler | None = None
        """Worker processes on one SQLite file (opendots.signal.server.shell.workers_sqlite): mitigation requests
        are decided on what the other workers wrote, writes under SQLite's write lock."""

    @property
    def drives_mitigator(self) -> bool:
        """Whether this node acts on mitigation events with its mitigators (one node of a cluster: the lease's,
        while its fence holds): checked before every mitigator call."""
        return self._drives and self.fence()

    @drives_mitigator.setter
    def drives_mitigator(self, drives: bool) -> None:
        self._drives = drives

    async def start(self) -> None:
        """Start the actuators, re-enforce every stored mitigation (actuators forget across our restarts,
        and a mitigator with `restore` also drops what ended while we were down), then run timers. A cluster
        node without the mitigator lease leaves the actuators alone until it takes the lease (`drive`)."""
        if self.drives_mitigator:
            await self.drive()
        self._tasks = [
            asyncio.create_task(self._timers()),
            asyncio.create_task(self._dispatch()),
            asyncio.create_task(self._poll_counters()),
        ]

    async def drive(self) -> None:
        """Take the mitigators over: started, and re-applying every mitigation held now (the restart path)."""
        self.drives_mitigator = True
        if isinstance(self.mitigator, Lifecycle) and not self._mitigator_started:
            await self.mitigator.start()
        self._mitigator_started = True
        restoring = self.core.restore_events()
        if isinstance(self.mitigator, Restorable):
            scopes = [await self._with_names(e.client, e.scope, e.names) for e in restoring]
            refused = refused_by(self.mitigator, await self.mitigator.restore(scopes))
            for key in refused:
                self._settle(
                    lambda key=key: self.core.report_status(key, Status.ATTACK_EXCEEDED_CAPABILITY, self.clock())
                )
        else:
            self._enqueue(restoring)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if isinstance(self.mitigator, Lifecycle) and self._mitigator_started:
            await self.mitigator.stop()

    def handle(self, request: Request, fetched: Fetched | None = None) -> Response:
        """Answer one request; the store is written before this returns, side effects follow in order. Only for a
        store that writes in place (the fast path); `answer` serves both kinds. FETCHED: the data channel's entries
        read for it beforehand (`answer` does)."""
        if self.awaited:
            raise TypeError("this store's writes are awaited: use `await answer(request)`")
        if self.worker_sync is None and (self.data_reads is None or not fetched):
            # One process, nothing read beforehand (nearly every request): `_settle` without its indirections.
            core, store, now = self.core, self.store, self.clock()
            response, events = settle(core, store, core.handle(request, now), now, self.acl_store)  # type: ignore[arg-type]
            if events:
                self._queue.put_nowait(events)
        else:
            response = self._settle(self._decider(request, fetched), _mode(request))
        self._poke_if_sooner()
        assert response is not None
        return response

    async def answer(self, request: Request) -> Response:
        """Answer one request once its changes are durable, whichever kind of store this service has."""
        fetched: Fetched | None = None
        if self.data_reads is not None and self.data_reads.remote:
            # Aliases and ACLs the decision will read, read first in a worker thread, before the decision lock:
            # a stalled data store holds up this request alone.
            keys = request_keys(request, self._acl_names_held)
            try:
                fetched = await self.data_reads.fetch(keys, self.clock())
            except Exception as problem:  # StoreError, StoreUnavailable: the store is out of reach
                log.error("signal request %s %s: %s", request.method, "/".join(request.path), problem)
                return Response("5.03", diagnostic=data_diagnostic(problem))
        if not self.awaited:
            return self.handle(request, fetched)
        # Several nodes: a mitigation request is decided on the rows the others wrote (a write also under the
        # cluster's lock); heartbeats, /config and telemetry are this node's own business.
        response = await self._settle_awaited(self._decider(request, fetched), _mode(request), request)
        self._poke_if_sooner()
        assert response is not None
        return response

    def _decider(self, request: Request, fetched: Fetched | None) -> Callable[[], Decision]:
        reads = self.data_reads
        if reads is None or not fetched:
            return lambda: self.core.handle(request, self.clock())

        def decide() -> Decision:
            with reads.using(fetched):
                return self.core.handle(request, self.clock())

        return decide

    def _acl_names_held(self, cuid: str, mid: int | None) -> set[tuple[str, str]]:
        """(cuid, ACL name) of the 'acl-list's of the held mitigations of CUID (and MID): what a GET shows."""
        table = self.core.table
        if mid is not None:
            found = table.get((cuid, mid))
            held = [found] if found is not None else []
        else:
            held = [m for m in table if m.record.cuid == cuid]
        return {(m.record.cuid, control.acl_name) for m in held for control in m.request.acl_controls}

    def _settle(self, decide: Callable[[], Decision], mode: str = "write") -> Response | None:
        """Decide, store the decision, let the core apply it, queue its events: what to answer. With an awaited
        store the decision is settled in a task (a timer's or a mitigator's: nobody waits for an answer)."""
        if self.awaited:
            task = asyncio.get_running_loop().create_task(self._decide_and_settle(decide, mode))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            return None
        if self.worker_sync is not None and mode != "local":
            response, events = self.worker_sync.settle(decide, mode)
        else:
            response, events = settle(self.core, self.store, decide(), self.clock(), self.acl_store)  # type: ignore[arg-type]
        self._enqueue(events)
        return response

    async def _settle_awaited(
        self, decide: Callable[[], Decision], mode: str = "write", request: Request | None = None
    ) -> Response | None:
        # A caller cancelled mid-write (a request whose peer went away) must not leave the decision half-settled,
        # pending in the core for ever: the settling runs in its own task, which finishes whatever the caller does.
        task = asyncio.get_running_loop().create_task(self._decide_and_settle(decide, mode, request))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return await asyncio.shield(task)

    async def _decide_and_settle(
        self, decide: Callable[[], Decision], mode: str = "write", request: Request | None = None
    ) -> Response | None:
        """MODE (with several nodes): "write" decides under the locks of REQUEST's scope (the whole table without
        one: opendots.signal.server.shell.write_scopes) on the database's current rows,
        "timer" takes the lock only when the step stores something, "read" reads what changed first, "client" what
        the client set through the other nodes (/config, /tm-setup), "local"
        (heartbeats, /config, telemetry, counters) decides on this node's memory."""
        # The core refuses to decide while a decision is pending: decide and settle under one lock.
        async with self._lock:
            if self.cluster is not None and mode != "local":
                response, events = await self.cluster.settle(decide, mode, request)
            else:
                decision = decide()
                store: AsyncSignalStore = self.store  # type: ignore[assignment]
                response, events = await settle_async(self.core, store, decision, self.clock(), self.acl_store)
        self._enqueue(events)
        return response

    async def follow(self, feed: Callable[[], Awaitable[list[Event]]]) -> None:
        """Run FEED (it reads what other nodes changed and hands it to the core) between decisions; act on what
        it returns."""
        async with self._lock:
            events = await feed()
        self._enqueue(events)

    def follow_now(self, feed: Callable[[], list[Event]]) -> Awaitable[None]:
        """`follow` for a store written in place (worker processes on one SQLite file): FEED runs between decisions
        (under the lock an awaited store's decisions hold)."""

        async def feeding() -> list[Event]:
            return feed()

        return self.follow(feeding)

    def note_traffic(self, client_name: str) -> None:
        """The client answered a server heartbeat or opened a session: it is alive (§4.7)."""
        self._enqueue(self.core.note_traffic(client_name, self.clock()))
        self.poke()

    def report_status(self, key: str, status: Status) -> None:
        """Mitigator or operator feedback for mitigation KEY ("<cuid>/<mid>"); observers get notified."""
        self._settle(lambda: self.core.report_status(key, status, self.clock()))

    def terminate(self, key: str) -> None:
        """Operator: end mitigation KEY as a server may (status 6): stored, withdrawn, observers notified."""
        self._settle(lambda: self.core.terminate(key, self.clock()))

    def report_counters(self, key: str, counters: Counters) -> None:
        """What a mitigator measured for mitigation KEY; a change is notified to observers (§4.4.2.1)."""
        self._settle(lambda: self.core.report_counters(key, counters, self.clock()), "local")

    def acl_activation_changed(self, cuid: str) -> None:
        """The data channel changed CUID's ACLs: notify observers of mitigations naming them (RFC 9133)."""
        self._enqueue(self.core.acl_activation_changed(cuid, self.clock()))

    def set_redirection(self, redirection: Redirection | None) -> None:
        """Operator: send clients to an alternate server (5.03 to requests and observers, §4.6), or stop."""
        self._enqueue(self.core.set_redirection(redirection))

    def poke(self) -> None:
        """Re-read next_timer() now (after a request, or when a test moved its clock)."""
        self._wake.set()

    def _poke_if_sooner(self) -> None:
        """After a request: wake the timer task only when the core's next deadline is now before the one it sleeps
        until. Nearly every request (a heartbeat, a refresh, a GET) moves deadlines later or not at all: the task
        then wakes at the old deadline, finds nothing due and looks again, instead of waking for every message."""
        if not self._asleep:
            self.poke()
            return
        mark = self.core.timer_mark()
        if mark == self._asleep_mark:
            return  # nothing moved earlier since the task (or this) looked: next_timer() is no sooner
        due, waiting = self.core.next_timer(), self._asleep_until
        if due is not None and (waiting is None or due < waiting):
            self.poke()
        else:  # looked at: nothing is due before the task wakes, and while this mark holds nothing will be
            self._asleep_mark = mark

    async def idle(self) -> None:
        """Wait until every queued event has been acted on (tests, orderly shutdown)."""
        while self._settling:
            await asyncio.gather(*self._settling)
        await self._queue.join()

    def _enqueue(self, events: list[Event]) -> None:
        if events:
            self._queue.put_nowait(events)

    def timer_step(self) -> None:
        """One step of the core's timer work (expiry, one lost session, ...), stored, then applied: the
        synchronous-store path of the timer task, also for drivers without an event loop (the fuzz harness)."""
        self._settle(lambda: self.core.handle_timer(self.clock()), "timer")  # the write lock only if it stores

    async def _timers(self) -> None:
        deadline = self.core.next_timer()
        while True:
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            woken = False
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel racing with the wake-up.
            # No await since `deadline` was read: the mark goes with it.
            self._asleep, self._asleep_until, self._asleep_mark = True, deadline, self.core.timer_mark()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                        woken = True
            finally:
                self._asleep = False
            if woken:
                # Every request pokes; next_timer() walks every peer, too much per request with many clients.
                # Let a burst of pokes gather, then look once. Timers are seconds long: a few ms late is nothing.
                await asyncio.sleep(self.poke_coalesce)
            self._wake.clear()
            if woken and ((deadline := self.core.next_timer()) is None or deadline > self.clock()):
                continue
            if self.awaited:  # this step is stored before the next is looked at
                await self._settle_awaited(lambda: self.core.handle_timer(self.clock()), "timer")
            else:
                self.timer_step()
            deadline = self.core.next_timer()

    async def _poll_counters(self) -> None:
        """Ask the mitigator what it really dropped, so status reports carry measured counters (§4.4.2)."""
        while True:
            await asyncio.sleep(self.counters_interval)
            await self.refresh_counters()

    async def refresh_counters(self) -> None:
        """One batch read of every enforced mitigation's counters (one nft call, not one per mitigation)."""
        if not self.drives_mitigator:  # the lease holder measures, and tells the other nodes
            return
        keys = [mitigation.mitigator_key for mitigation in self.core.mitigations() if mitigation.enforcing]
        measured = await read_counters(self.mitigator, keys)
        for index, (key, counters) in enumerate(measured.items(), 1):
            self.report_counters(key, counters)
            if index % COUNTER_SLICE == 0:
                # Each reading is decided on the loop (RFC 9244 rates too, when asked for): with thousands of
                # mitigations, let the other clients' heartbeats and requests through between slices.
                await asyncio.sleep(0)
        for shared in (self.cluster, self.worker_sync):
            if shared is not None:
                await shared.publish_counters(measured)
        while self._settling:  # an awaited store settles each reading in a task: the batch is done when they are
            await asyncio.gather(*self._settling)
        self.counters_read()

    def counters_read(self) -> None:
        """A batch of readings is done: RFC 9244 §8.3 requests get their traffic, /tm observers are notified."""
        self._enqueue(self.core.counters_read(self.clock()))

    async def _dispatch(self) -> None:
        while True:
            events = await self._queue.get()
            try:
                self._shown = await self._notification_reads(events)
                for event in events:
                    try:
                        await self._act(event)
                    except Exception:  # one failing event must not stop the ones behind it
                        log.exception("signal event failed: %s", describe(event))
            finally:
                self._shown = {}
                self._queue.task_done()

    async def _notification_reads(self, events: list[Event]) -> Fetched:
        """The ACLs notifying EVENTS shows (RFC 9133 §3.2.1), read at once in a worker thread when the data store is
        remote: rendered on the loop, each would be a network round trip holding every other client's heartbeat.
        A store out of reach leaves them unread (None): the notification shows the activation types requested."""
        reads = self.data_reads
        if reads is None or not reads.remote:
            return {}
        keys = notification_keys(events, self.observed, self.core.acls_shown)
        try:
            return await reads.fetch(keys, self.clock())
        except Exception as problem:  # StoreError, StoreUnavailable
            log.warning("notifications show the requested ACL activation types: %s", data_diagnostic(problem))
            return dict.fromkeys(keys)

    def _tell(self, event: Event) -> None:
        """EVENT to the transport layer (notifications), with the data channel's entries read for it at hand."""
        reads = self.data_reads
        if reads is None or not self._shown:
            self.on_event(event)
            return
        with reads.using(self._shown):
            self.on_event(event)

    async def _act(self, event: Event) -> None:
        if not self.drives_mitigator:  # another node holds the mitigator lease and acts on this
            if isinstance(event, PeerLost):
                self.session_losses += 1
            self._tell(event)
            return
        if isinstance(event, MitigationActivated | MitigationUpdated):
            scope = await self._with_names(event.client, event.scope, event.names)
            if not scope.target_prefixes:
                # Names that resolved to nothing usable: never hand a mitigator an empty (all-or-nothing) target.
                log.error("mitigation %s has no address to act on", scope.key)
                self._settle(
                    lambda: self.core.report_status(scope.key, Status.ATTACK_EXCEEDED_CAPABILITY, self.clock())
                )
                self._tell(event)
                return
            action = "apply" if isinstance(event, MitigationActivated) else "update"
            try:
                if isinstance(event, MitigationActivated):
                    await self.mitigator.apply(scope)
                else:
                    await self.mitigator.update(scope)
            except MitigatorError as problem:
                # No DOTS status says "failed"; 4 (exceeded capability) is the nearest truthful one.
                self.outcomes[(action, "failed")] += 1
                log.error("mitigator %s could not apply %s: %s", self.mitigator.name, scope.key, problem)
                self._settle(
                    lambda: self.core.report_status(scope.key, Status.ATTACK_EXCEEDED_CAPABILITY, self.clock())
                )
            else:
                self.outcomes[(action, "ok")] += 1
        elif isinstance(event, MitigationWithdrawn) or (isinstance(event, MitigationExpired) and event.was_enforced):
            try:
                await self.mitigator.withdraw(event.key)
            except MitigatorError as problem:
                self.outcomes[("withdraw", "failed")] += 1
                log.error("mitigator %s could not withdraw %s: %s", self.mitigator.name, event.key, problem)
            else:
                self.outcomes[("withdraw", "ok")] += 1
        elif isinstance(event, PeerLost):
            self.session_losses += 1
        self._tell(event)

    async def _with_names(self, client_name: str, scope: MitigationScope, names: tuple[str, ...]) -> MitigationScope:
        """Add the addresses of target names, keeping only those the client may protect (§4.4.1.1)."""
        if not names:
            return scope
        client = next((c for c in self.core.settings.clients if c.name == client_name), None)
        extra = []
        for name in names:
            for address in await self.resolver.resolve(name):
                prefix = ipaddress.ip_network(address)
                if client is not None and client.covers_prefix(prefix):
                    extra.append(prefix)
                else:
                    log.warning("%s resolves to %s, outside %s's prefixes: not mitigated", name, address, client_name)
        prefixes = tuple(dict.fromkeys((*scope.target_prefixes, *extra)))
        return replace(scope, target_prefixes=prefixes)
