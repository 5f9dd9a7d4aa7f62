"""How the HTTPS shell runs the data channel core: CPU-heavy parts in a worker thread, writes one at a time, each
committed before its answer.

Parsing a large body and validating many entries touch only the request's own data, so they run in a worker
thread with no lock held. A write's decision and its commit hold one lock: a request is decided on the state the
previous write left, and two requests (of one client or of a domain's clients, whose ACLs are checked against
each other) never interleave. A large change set is committed in a worker thread through a second connection:
the loop keeps serving (its readers see the last committed state, WAL), and the answer waits for the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from opendots.data.core.body import NeedsValidation, Prepared, parse_or_error
from opendots.data.core.channel import DataChannelCore
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import WRITE_METHODS, RestconfRequest, RestconfResponse
from opendots.store.data_channel import Changes, DataChannelStore
from opendots.store.records import StoreError

log = logging.getLogger(__name__)

INLINE_PARSE_BYTES = 16 * 1024  # larger bodies are parsed in a worker thread (~1 ms of json per 50 KB)
# Larger change sets are committed in a worker thread: SQLite takes ~3 µs per row and JSON encoding ~3 µs per
# small entry, so 200 rows stay around 1 ms on the loop, while 10,000 aliases took ~60-80 ms there.
INLINE_COMMIT_ROWS = 200


class CoreRunner:
    def __init__(self, core: DataChannelCore, clock: Callable[[], float]) -> None:
        self.core = core
        self.clock = clock
        self.writes = asyncio.Lock()  # held from a write's decision to its commit; the expiry purge takes it too
        self._writer: DataChannelStore | None = None
        self._writer_opened = False
        self.commits_off_loop = 0  # change sets committed in a worker thread (tests count them)

    async def serve(self, request: RestconfRequest) -> RestconfResponse:
        prepared = Prepared()
        if request.method in ("POST", "PUT", "PATCH") and len(request.body) > INLINE_PARSE_BYTES:
            prepared.body = await asyncio.to_thread(parse_or_error, request.method, request.content_type, request.body)
        lock = self.writes if request.method in WRITE_METHODS else contextlib.nullcontext()
        for attempt in range(3):
            if attempt == 2:
                prepared.inline_bytes = None  # stored bodies changed under a PATCH twice: finish inline
            async with lock:
                now = self.clock()
                try:
                    response = self.core.decide(request, now, prepared)
                except NeedsValidation as need:
                    pending = need
                else:
                    return await self._commit(response, now)
            await asyncio.to_thread(prepared.validate, pending.entries, pending.check)  # no lock held
        raise AssertionError("unreachable")

    async def _commit(self, response: RestconfResponse, now: float) -> RestconfResponse:
        """Store RESPONSE's changes (the caller holds the write lock), then tell the core's listeners."""
        changes = response.changes
        response.changes = None
        if changes is not None:
            try:
                await self._store(changes, now)
            except StoreError as error:
                log.error("data channel: could not store a change for %s: %s", changes.cuid, error)
                refusal = RestconfError("operation-failed", "the change could not be stored; nothing was changed")
                return RestconfResponse(refusal.status, refusal.body())
        self.core.committed(response)
        return response

    async def _store(self, changes: Changes, now: float) -> None:
        writer = self._writer_store() if changes.rows() > INLINE_COMMIT_ROWS else None
        if writer is None:
            self.core.store.apply(changes, now)
            return
        commit = asyncio.get_running_loop().run_in_executor(None, writer.apply, changes, now)
        self.commits_off_loop += 1
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            # The request was cancelled: keep the write lock until the commit is over (the next decision must
            # see it), and tell the listeners if it was stored.
            await asyncio.wait([commit])
            if not commit.cancelled() and commit.exception() is None:
                self.core.committed(RestconfResponse(204, changed_cuid=changes.cuid))
            raise

    def _writer_store(self) -> DataChannelStore | None:
        if not self._writer_opened:
            self._writer_opened = True
            self._writer = self.core.store.writer()
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
