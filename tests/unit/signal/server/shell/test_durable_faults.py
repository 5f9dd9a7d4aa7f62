"""A fault between a decision and its settling must never leave the decision pending in the core: the core refuses
to decide on stale state, so one stuck decision would have every later request refused (a server wedged by a single
fault). Faults are injected into a real SQLite store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from opendots.mitigate.base import LoggingMitigator
from opendots.signal.server.core import Request, ServerSettings, SignalServer
from opendots.signal.server.shell.service import SignalService
from opendots.store.records import SignalChanges
from opendots.store.signal import SqliteSignalStore
from opendots.store.threaded import ThreadedSignalStore
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, T0, mitigate_path, scope_body


class _BuggyOnce(SqliteSignalStore):
    """Raises a non-StoreError (a bug, not a database failure) on its first write."""

    failed = False

    def apply(self, changes: SignalChanges) -> None:
        if not self.failed:
            self.failed = True
            raise ValueError("injected bug")
        super().apply(changes)


class _Gated(SqliteSignalStore):
    """Each write waits for `gate` (a worker thread's slow commit)."""

    gate = threading.Event()
    started = threading.Event()

    def apply(self, changes: SignalChanges) -> None:
        self.started.set()
        assert self.gate.wait(10)
        super().apply(changes)


def _put(mid: int, prefix: str) -> Request:
    return Request("PUT", mitigate_path(ALPHA_CUID, mid), ALPHA_CUID, body=scope_body(target_prefix=[prefix]))


def test_a_store_failing_with_an_unexpected_error_is_5_03_and_the_next_request_is_served(tmp_path: Path, caplog):
    store = _BuggyOnce.open(tmp_path / "signal.db")
    core = SignalServer(ServerSettings(clients=[ALPHA, BRAVO]), store.load(), T0)
    service = SignalService(core, store, LoggingMitigator(), clock=lambda: T0)
    assert service.handle(_put(1, "192.0.2.0/28")).code == "5.03"
    assert "injected bug" in caplog.text  # logged with its traceback, as a bug
    assert service.handle(_put(2, "192.0.2.16/28")).code == "2.01"
    assert [row[1] for row in store.dump()["signal_mitigations"]] == [2]
    assert [m.record.mid for m in core.mitigations()] == [2]


async def test_a_request_cancelled_while_its_write_is_awaited_still_settles_and_the_next_is_served(tmp_path: Path):
    _Gated.gate, _Gated.started = threading.Event(), threading.Event()
    store = ThreadedSignalStore(_Gated.open(tmp_path / "signal.db"))
    core = SignalServer(ServerSettings(clients=[ALPHA, BRAVO]), store.load(), T0)
    service = SignalService(core, store, LoggingMitigator(), clock=lambda: T0)
    first = asyncio.ensure_future(service.answer(_put(1, "192.0.2.0/28")))
    assert await asyncio.to_thread(_Gated.started.wait, 10)
    first.cancel()  # the peer went away while the commit runs in the worker
    await asyncio.sleep(0)
    _Gated.gate.set()
    second = await service.answer(_put(2, "192.0.2.16/28"))
    assert second.code == "2.01"
    assert sorted(row[1] for row in store.dump()["signal_mitigations"]) == [1, 2]  # the first write finished
    assert sorted(m.record.mid for m in core.mitigations()) == [1, 2]  # and memory followed it
