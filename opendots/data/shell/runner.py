"""How the HTTPS shell runs the data channel core: CPU-heavy parts in a worker thread, writes one at a time, each
committed before its answer.

Parsing a large body and validating many entries touch only the request's own data, so they run in a worker
thread with no lock held. A write's decision and its commit hold one lock: a request is decided on the state the
previous write left, and two requests (of one client, or of a domain's clients, whose ACLs are checked against
each other) never interleave. A request with a large body is decided and committed in a worker thread too, by a
second core on a second connection to the database, so nothing on the loop grows with the body; a large change
set (or a bulk delete) is committed there as well. Meanwhile the loop keeps serving: its readers see the last
committed state (WAL), never half a commit, and the answer waits until the commit is durable.

A store whose every call is a network round trip (PostgreSQL: `store.remote`, each call may wait up to the store's
timeout) is never called from the loop: each whole request (reads, decision, commit) runs in a worker thread of the
runner's own, on a core of its own, at most MAX_REMOTE_REQUESTS at once; writes still hold the lock one at a time.
A store that does not answer is a 503 for that request alone while the loop serves everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from opendots.data.core.body import NeedsValidation, Prepared, parse_or_error
from opendots.data.core.channel import DataChannelCore
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import WRITE_METHODS, RestconfRequest, RestconfResponse
from opendots.store.data_records import Changes
from opendots.store.records import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

INLINE_PARSE_BYTES = 16 * 1024  # larger bodies are parsed in a worker thread (~1 ms of json per 50 KB)
# Larger change sets are committed in a worker thread: a row costs ~5 µs of SQL and ~2 µs of JSON encoding, so
# 200 rows stay near 1 ms on the loop, where 10,000 aliases took 50-90 ms.
INLINE_COMMIT_ROWS = 200
# Requests in worker threads at once on a remote store: its pool has 4 connections, more would only queue there
# (each waiting thread pinned for up to the store's timeout); the rest wait on the loop, costing nothing.
MAX_REMOTE_REQUESTS = 4
T = TypeVar("T")


class CoreRunner:
    def __init__(self, core: DataChannelCore, clock: Callable[[], float]) -> None:
        self.core = core
        self.clock = clock
        self.writes = asyncio.Lock()  # held from a write's decision to its commit; the expiry purge takes it too
        self._worker_core: DataChannelCore | None = None  # on the store's writer(), used only in a worker thread
        self._worker_opened = False
        self.remote = bool(getattr(core.store, "remote", False))
        self._executor: ThreadPoolExecutor | None = None
        self._requests = asyncio.Semaphore(MAX_REMOTE_REQUESTS)
        self._spare_cores: list[DataChannelCore] = []  # a core holds its request's state: one per thread

    async def serve(self, request: RestconfRequest) -> RestconfResponse:
        if not self.remote:
            return await self._serve(request, None)
        async with self._requests:
            core = self._spare_cores.pop() if self._spare_cores else self._new_core(self.core.store)
            try:
                return await self._serve(request, core)
            except StoreError as error:  # a read of the decision failed: nothing was written
                log.error("data channel: the store did not answer for %s: %s", request.peer_cuid, error)
                refusal = RestconfError(
                    "operation-failed", "the data store did not answer; nothing was changed, try again", status=503
                )
                return RestconfResponse(refusal.status, refusal.body())
            finally:
                self._spare_cores.append(core)  # _off_loop returns only once its thread is done with the core

    async def run_store(self, function: Callable[..., T], *args: Any) -> T:
        """FUNCTION(*ARGS), a call on the data store: in a worker thread when the store is remote."""
        return await self._off_loop(function, *args) if self.remote else function(*args)

    async def _serve(self, request: RestconfRequest, remote_core: DataChannelCore | None) -> RestconfResponse:
        prepared = Prepared()
        large = request.method in ("POST", "PUT", "PATCH") and len(request.body) > INLINE_PARSE_BYTES
        if large:
            prepared.body = await asyncio.to_thread(parse_or_error, request.method, request.content_type, request.body)
        worker = remote_core or (self._worker() if large and request.method in WRITE_METHODS else None)
        lock = self.writes if request.method in WRITE_METHODS else contextlib.nullcontext()
        for attempt in range(3):
            if attempt == 2:
                prepared.inline_bytes = None  # stored bodies changed under a PATCH twice: finish inline
            async with lock:
                now = self.clock()
                try:
                    if worker is not None:
                        worker.settings = self.core.settings
                        response = await self._off_loop(worker.decide, request, now, prepared)
                    else:
                        response = self.core.decide(request, now, prepared)
                except NeedsValidation as need:
                    pending = need
                else:
                    return await self._commit(response, now, worker)
            await asyncio.to_thread(prepared.validate, pending.entries, pending.check)  # no lock held
        raise AssertionError("unreachable")

    async def _commit(self, response: RestconfResponse, now: float, worker: DataChannelCore | None) -> RestconfResponse:
        """Store RESPONSE's changes (the caller holds the write lock), then tell the core's listeners. WORKER: the
        core whose store commits in a worker thread (None: on the loop, unless the change set is heavy)."""
        changes = response.changes
        response.changes = None
        if changes is not None:
            if worker is None and _heavy(changes):
                worker = self._worker()
            try:
                if worker is None:
                    self.core.store.apply(changes, now)
                else:
                    # Cancelled after a durable commit, the listeners must still hear of it.
                    await self._off_loop(
                        worker.store.apply, changes, now, after_cancel=lambda: self.core.committed(response)
                    )
            except StoreError as error:
                log.error("data channel: could not store a change for %s: %s", changes.cuid, error)
                status = 503 if isinstance(error, StoreUnavailable) else None
                refusal = RestconfError(
                    "operation-failed", "the change could not be stored; nothing was changed", status=status
                )
                return RestconfResponse(refusal.status, refusal.body())
        self.core.committed(response)
        return response

    async def _off_loop(
        self, function: Callable[..., T], *args: Any, after_cancel: Callable[[], None] | None = None
    ) -> T:
        """FUNCTION(*ARGS) in a worker thread. If the request is cancelled meanwhile, the caller still holds the
        write lock until the thread is done (the next decision must see what it committed), and AFTER_CANCEL runs
        if the function completed."""
        if self.remote and self._executor is None:
            self._executor = ThreadPoolExecutor(MAX_REMOTE_REQUESTS, thread_name_prefix="opendots-data")
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            if after_cancel is not None and not future.cancelled() and future.exception() is None:
                after_cancel()
            raise

    def _worker(self) -> DataChannelCore | None:
        if not self._worker_opened:
            self._worker_opened = True
            store = self.core.store.writer()
            if store is not None:
                self._worker_core = self._new_core(store)
        return self._worker_core

    def _new_core(self, store: Any) -> DataChannelCore:
        return DataChannelCore(store, self.core.authorize, self.core.settings)

    def close(self) -> None:
        if self._worker_core is not None:
            self._worker_core.store.close()
            self._worker_core = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _heavy(changes: Changes) -> bool:
    """Too much SQL for the loop: many rows, or a delete of all of a client's entries."""
    return changes.rows() > INLINE_COMMIT_ROWS or changes.clear_aliases or changes.clear_acls or changes.unregister
