"""The shell's awaited settle path (issue 12: a network database's writes are awaited): a real SQLite store run in a
worker thread behind AsyncSignalStore. Nothing is answered or applied before the write is durable, concurrent
requests are decided one at a time (the core refuses to decide while a decision is pending), and a failed write is
5.03 and changes nothing (RFC 9132 §4.4.1 answers only what is stored)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opendots.mitigate.base import LoggingMitigator
from opendots.signal.server.core import Request, ServerSettings, SignalServer
from opendots.signal.server.shell.durable import settle_async
from opendots.signal.server.shell.service import SignalService
from opendots.store.signal import SqliteSignalStore
from opendots.store.threaded import ThreadedSignalStore
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, T0, mitigate_path, scope_body


def _service(tmp_path: Path) -> tuple[SignalService, ThreadedSignalStore]:
    store = ThreadedSignalStore(SqliteSignalStore.open(tmp_path / "signal.db"))
    core = SignalServer(ServerSettings(clients=[ALPHA, BRAVO]), store.load(), T0)
    return SignalService(core, store, LoggingMitigator(), clock=lambda: T0), store


def _put(mid: int, prefix: str) -> Request:
    return Request("PUT", mitigate_path(ALPHA_CUID, mid), ALPHA_CUID, body=scope_body(target_prefix=[prefix]))


async def test_an_awaited_store_has_the_mitigation_durable_before_the_answer(tmp_path: Path):
    service, store = _service(tmp_path)
    assert service.awaited
    with pytest.raises(TypeError):  # the synchronous fast path cannot wait for the write
        service.handle(_put(1, "192.0.2.0/28"))
    response = await service.answer(_put(1, "192.0.2.0/28"))
    assert response.code == "2.01"
    assert [row[:2] for row in store.dump()["signal_mitigations"]] == [(ALPHA_CUID, 1)]
    assert [m.record.mid for m in service.core.mitigations()] == [1]


async def test_concurrent_requests_are_decided_one_at_a_time_while_a_write_is_awaited(tmp_path: Path):
    service, store = _service(tmp_path)
    prefixes = [f"192.0.2.{16 * i}/28" for i in range(8)]
    answers = await asyncio.gather(*(service.answer(_put(i + 1, p)) for i, p in enumerate(prefixes)))
    assert [a.code for a in answers] == ["2.01"] * 8
    assert sorted(row[1] for row in store.dump()["signal_mitigations"]) == list(range(1, 9))
    assert sorted(m.record.mid for m in service.core.mitigations()) == list(range(1, 9))


async def test_a_write_the_awaited_store_refuses_is_5_03_and_changes_nothing(tmp_path: Path):
    service, store = _service(tmp_path)
    connection = store.store.database.connection
    connection.execute("PRAGMA query_only = ON")
    try:
        refused = await service.answer(_put(1, "192.0.2.0/28"))
    finally:
        connection.execute("PRAGMA query_only = OFF")
    assert refused.code == "5.03"
    assert store.dump()["signal_mitigations"] == [] and service.core.mitigations() == []
    assert (await service.answer(_put(1, "192.0.2.0/28"))).code == "2.01"  # free to decide again


async def test_settle_async_awaits_the_write_before_the_core_applies_the_decision(tmp_path: Path):
    service, store = _service(tmp_path)
    core = service.core
    decision = core.handle(_put(1, "192.0.2.0/28"), T0)
    pending = asyncio.ensure_future(settle_async(core, store, decision, T0))
    await asyncio.sleep(0)  # the task runs up to its awaited write, in a worker thread
    assert core.mitigations() == []  # not applied before the awaited write completes
    with pytest.raises(RuntimeError):  # and nothing new is decided meanwhile
        core.handle(_put(2, "192.0.2.16/28"), T0)
    response, _ = await pending
    assert response is not None and response.code == "2.01"
    assert [m.record.mid for m in core.mitigations()] == [1] and store.dump()["signal_mitigations"]
