"""How the HTTPS shell runs the data channel core: CPU-heavy parts in a worker thread, writes one at a time, each
committed before its answer.

Parsing a large body and validating many entries touch only the request's own data, so they run in a worker
thread with no lock held. A write's decision and its commit hold one lock: a request is decided on the state the
previous write left, and two requests (of one client, or of a domain's clients, whose ACLs are checked against
each other) never interleave. A request with a large body is decided and committed in a worker thread too, by a
second core on a second connection to the database, so nothing on the loop grows with the body; a large change
set (or a bulk delete) is committed there as well. Meanwhile the loop keeps serving: its readers see the last
committed state (WAL), never half a commit, and the answer waits until the commit is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from opendots.data.core.body import NeedsValidation, Prepared, parse_or_error
from opendots.data.core.channel import DataChannelCore
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import WRITE_METHODS, RestconfRequest, RestconfResponse
from opendots.store.data_records import Changes
from opendots.store.records import StoreError

log = logging.getLogger(__name__)

INLINE_PARSE_BYTES = 16 * 1024  # larger bodies are parsed in a worker thread (~1 ms of json per 50 KB)
# Larger change sets are committed in a worker thread: a row costs ~5 µs of SQL and ~2 µs of JSON encoding, so
# 200 rows stay near 1 ms on the loop, where 10,000 aliases took 50-90 ms.
INLINE_COMMIT_ROWS = 200
T = TypeVar("T")


class CoreRunner:
    def __init__(self, core: DataChannelCore, clock: Callable[[], float]) -> None:
        self.core = core
        self.clock = clock
        self.writes = asyncio.Lock()  # held from a write's decision to its commit; the expiry purge takes it too
        self._worker_core: DataChannelCore | None = None  # on the store's writer(), used only in a worker thread
        self._worker_opened = False

    async def serve(self, request: RestconfRequest) -> RestconfResponse:
        prepared = Prepared()
        large = request.method in ("POST", "PUT", "PATCH") and len(request.body) > INLINE_PARSE_BYTES
        if large:
            prepared.body = await asyncio.to_thread(parse_or_error, request.method, request.content_type, request.body)
        worker = self._worker() if large and request.method in WRITE_METHODS else None
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
                    return await self._commit(response, now, off_loop=worker is not None)
            await asyncio.to_thread(prepared.validate, pending.entries, pending.check)  # no lock held
        raise AssertionError("unreachable")

    async def _commit(self, response: RestconfResponse, now: float, off_loop: bool) -> RestconfResponse:
        """Store RESPONSE's changes (the caller holds the write lock), then tell the core's listeners."""
        changes = response.changes
        response.changes = None
        if changes is not None:
            worker = self._worker() if off_loop or _heavy(changes) else None
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
                refusal = RestconfError("operation-failed", "the change could not be stored; nothing was changed")
                return RestconfResponse(refusal.status, refusal.body())
        self.core.committed(response)
        return response

    async def _off_loop(
        self, function: Callable[..., T], *args: Any, after_cancel: Callable[[], None] | None = None
    ) -> T:
        """FUNCTION(*ARGS) in a worker thread. If the request is cancelled meanwhile, the caller still holds the
        write lock until the thread is done (the next decision must see what it committed), and AFTER_CANCEL runs
        if the function completed."""
        future = asyncio.get_running_loop().run_in_executor(None, function, *args)
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
                self._worker_core = DataChannelCore(store, self.core.authorize, self.core.settings)
        return self._worker_core

    def close(self) -> None:
        if self._worker_core is not None:
            self._worker_core.store.close()
            self._worker_core = None


def _heavy(changes: Changes) -> bool:
    """Too much SQL for the loop: many rows, or a delete of all of a client's entries."""
    return changes.rows() > INLINE_COMMIT_ROWS or changes.clear_aliases or changes.clear_acls or changes.unregister
