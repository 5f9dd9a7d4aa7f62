"""Two workers of `opendots server --workers 2` on one SQLite file, driven in one process without sockets: what one
writes, the other reads before it decides (RFC 9132 §4.4.1 'mid' rules and §4.4.2 GETs hold across workers), what
it reads from the change log reaches its core and observers, and one worker at a time holds the mitigator lease."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opendots.mitigate.base import LoggingMitigator
from opendots.model import encode_signal
from opendots.signal.server.core import Request, ServerSettings, SignalServer
from opendots.signal.server.core.events import Event
from opendots.signal.server.shell.service import SignalService
from opendots.signal.server.shell.workers_sqlite import WorkerSync
from opendots.store.signal import SqliteSignalStore
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, NO_HEARTBEAT, T0, mitigate_path, scope_body


class Worker:
    def __init__(self, path: Path, index: int) -> None:
        self.store = SqliteSignalStore.open(path)
        settings = ServerSettings(clients=[ALPHA, BRAVO], session_defaults=NO_HEARTBEAT)
        self.events: list[Event] = []
        core = SignalServer(settings, self.store.load(), T0)
        self.now = T0
        self.service = SignalService(
            core, self.store, LoggingMitigator(), clock=lambda: self.now, on_event=self.events.append
        )
        self.sync = WorkerSync(self.store, self.service, worker=index, base=path)
        self.sync.prepare()

    def timers(self) -> None:
        """The steps due now, as the service's timer task runs them (bounded)."""
        for _ in range(10):
            due = self.service.core.next_timer()
            if due is None or due > self.now:
                return
            self.service.timer_step()

    def request(self, method: str, mid: int | None, body=None):
        extra = {"payload": encode_signal(body, validate=False)} if body is not None else {}
        return self.service.handle(Request(method, mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID, **extra))


@pytest.fixture
def workers(tmp_path: Path):
    pair = [Worker(tmp_path / "node.db", 0), Worker(tmp_path / "node.db", 1)]
    yield pair
    for worker in pair:
        for fd in (worker.sync._lease_file, worker.sync._write_lock):
            if fd is not None:
                os.close(fd)
        worker.store.close()


def test_a_mitigation_created_through_one_worker_is_read_refreshed_and_withdrawn_through_the_other(workers) -> None:
    a, b = workers
    assert a.request("PUT", 1, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    assert b.request("GET", 1).code == "2.05"  # RFC 9132 §4.4.2: B read the change log before deciding
    assert b.request("PUT", 1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=600)).code == "2.04"
    assert [m.record.lifetime for m in a.service.core.mitigations()] == [3600]  # A has not read the log yet
    changed = a.sync._feed(a.sync._read_changes())
    assert [m.record.lifetime for m in a.service.core.mitigations()] == [600]
    assert changed == []  # §4.4.2.1: a refresh keeps the status, notified on neither worker
    assert b.request("DELETE", 1).code == "2.02"
    changed = a.sync._feed(a.sync._read_changes())
    # The withdrawal is a status change: A's core tells A's observers, as B's told B's (§4.4.2.1).
    assert [(type(e).__name__, e.mid, e.status) for e in changed] == [
        ("MitigationChanged", 1, "dots-client-withdrawn-mitigation")
    ]


def test_a_lower_mid_through_the_other_worker_is_refused_as_if_one_process_decided(workers) -> None:
    a, b = workers
    assert a.request("PUT", 5, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    # §4.4.1: a lower 'mid' overlapping an active one is a conflict, though B's memory never held mid 5.
    assert b.request("PUT", 4, scope_body(target_prefix=["192.0.2.0/28"])).code == "4.09"
    assert b.request("DELETE", 5).code == "2.02"
    assert [m.record.terminating_until for m in a.service.core.mitigations()] == [None]
    a.sync._feed(a.sync._read_changes())
    # Withdrawn through B (§4.4.4): A's core holds it active-but-terminating as B does, until the same moment.
    assert [m.record for m in a.service.core.mitigations()] == [m.record for m in b.service.core.mitigations()]
    assert [m.record.terminating_until for m in a.service.core.mitigations()] != [None]


def test_one_worker_holds_the_mitigator_lease_and_the_other_takes_it_when_it_is_let_go(workers) -> None:
    a, b = workers
    assert (a.sync.lease, b.sync.lease) == (True, False)
    assert (a.service.drives_mitigator, b.service.drives_mitigator) == (True, False)
    assert not b.sync._try_lease()
    assert a.sync._lease_file is not None
    os.close(a.sync._lease_file)  # what the kernel does when the holder's process dies
    a.sync._lease_file = None
    assert b.sync._try_lease()


def test_a_worker_behind_the_pruned_log_reads_every_row_again(workers) -> None:
    a, b = workers
    assert a.request("PUT", 1, scope_body(target_prefix=["192.0.2.0/28"])).code == "2.01"
    assert a.request("PUT", 2, scope_body(target_prefix=["192.0.2.16/28"])).code == "2.01"
    assert a.request("PUT", 3, scope_body(target_prefix=["192.0.2.32/28"])).code == "2.01"
    connection = a.store.database.connection
    newest = connection.execute("SELECT max(seq) FROM node_changes").fetchone()[0]
    connection.execute("DELETE FROM node_changes WHERE seq < ?", (newest,))
    assert newest == 3
    b.sync.seen = 1  # B had read entry 1 only: entry 2, which it had not read, is gone
    changed = b.sync._read_changes()
    assert sorted(key for key, record in changed if record is not None) == [
        (ALPHA_CUID, 1),
        (ALPHA_CUID, 2),
        (ALPHA_CUID, 3),
    ]


def test_an_expiry_decided_by_one_worker_is_decided_again_under_the_write_lock_and_reaches_the_other(workers) -> None:
    a, b = workers
    assert a.request("PUT", 1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=60)).code == "2.01"
    assert b.request("GET", 1).code == "2.05"
    # A refreshed it through A meanwhile (B has not read that yet): B's timer must not expire the refreshed row.
    assert a.request("PUT", 1, scope_body(target_prefix=["192.0.2.0/28"], lifetime=3600)).code == "2.04"
    a.now = b.now = T0 + 61
    b.timers()
    assert [m.record.lifetime for m in b.service.core.mitigations()] == [3600]  # read under the lock, not expired
    a.now = b.now = T0 + 3601
    b.timers()
    a.sync._feed(a.sync._read_changes())
    assert [m.enforcing for m in a.service.core.mitigations()] in ([], [False])
