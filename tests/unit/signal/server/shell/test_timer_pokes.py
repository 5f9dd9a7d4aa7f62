"""The timer task is woken by a request only when the request brought the core's next deadline forward: the
messages every session repeats (refreshes, heartbeats, GETs) move deadlines later or not at all, and cost no
wake-up; a request that makes something due sooner still gets it done on time (RFC 9132 §4.4.1 lifetimes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from opendots.mitigate.base import LoggingMitigator
from opendots.signal.server.core import Request, ServerSettings, SignalServer
from opendots.signal.server.shell import SignalService
from opendots.store.signal import SqliteSignalStore
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, NO_HEARTBEAT, T0, mitigate_path, scope_body


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _service(tmp_path: Path, clock: Clock, mitigator: LoggingMitigator) -> tuple[SignalService, list[int]]:
    settings = ServerSettings(clients=[ALPHA, BRAVO], session_defaults=NO_HEARTBEAT)
    store = SqliteSignalStore.open(tmp_path / "s.db")
    service = SignalService(SignalServer(settings, store.load(), clock()), store, mitigator, clock=clock)
    service.poke_coalesce = 0.0
    pokes: list[int] = []
    real = service.poke

    def counted() -> None:
        pokes.append(1)
        real()

    service.poke = counted  # type: ignore[method-assign]
    return service, pokes


def _put(mid: int, prefix: str, lifetime: int) -> Request:
    return Request(
        "PUT",
        mitigate_path(ALPHA_CUID, mid),
        peer=ALPHA_CUID,
        body=scope_body(target_prefix=[prefix], lifetime=lifetime),
    )


async def _asleep(service: SignalService) -> None:
    for _ in range(20):  # let the timer task look at the deadlines and fall asleep on them
        await asyncio.sleep(0)
    await service.idle()


@contextlib.asynccontextmanager
async def _one_mitigation_held(
    tmp_path: Path,
) -> AsyncIterator[tuple[SignalService, list[int], Clock, LoggingMitigator]]:
    """A started service holding mitigation 1 (600 s), its timer task asleep, no poke counted yet."""
    clock, mitigator = Clock(), LoggingMitigator()
    service, pokes = _service(tmp_path, clock, mitigator)
    await service.start()
    try:
        assert service.handle(_put(1, "2001:db8:6401::/64", 600)).code == "2.01"
        await _asleep(service)
        pokes.clear()
        yield service, pokes, clock, mitigator
    finally:
        await service.stop()


async def test_refreshes_moving_the_deadline_later_do_not_wake_the_timer_task(tmp_path: Path):
    async with _one_mitigation_held(tmp_path) as (service, pokes, clock, _):
        for _ in range(50):
            clock.now += 1
            assert service.handle(_put(1, "2001:db8:6401::/64", 600)).code == "2.04"
            assert service.handle(Request("GET", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID)).code == "2.05"
        assert pokes == []


async def test_a_request_bringing_a_deadline_forward_wakes_the_timer_task_and_it_expires_on_time(tmp_path: Path):
    async with _one_mitigation_held(tmp_path) as (service, pokes, clock, mitigator):
        assert service.handle(_put(2, "2001:db8:6401:1::/64", 10)).code == "2.01"
        assert pokes == [1]
        await _asleep(service)
        clock.now += 11
        service.poke()  # the test's clock moved (the timer task sleeps on the real one)
        for _ in range(100):
            await asyncio.sleep(0.01)
            await service.idle()
            if list(mitigator.active) == [f"{ALPHA_CUID}/1"]:
                break
        assert list(mitigator.active) == [f"{ALPHA_CUID}/1"]


def _count_looks(service) -> list[int]:
    """A list that grows by one each time the service reads the core's next_timer()."""
    looks: list[int] = []
    real = service.core.next_timer

    def counted() -> float | None:
        looks.append(1)
        return real()

    service.core.next_timer = counted
    return looks


async def test_requests_moving_deadlines_later_cost_no_look_at_every_deadline(tmp_path: Path):
    # The core's timer_mark says nothing moved earlier: next_timer() (every peer's and mitigation's heap) is not read.
    async with _one_mitigation_held(tmp_path) as (service, pokes, clock, _):
        looks = _count_looks(service)
        for _ in range(20):
            clock.now += 1
            assert service.handle(_put(1, "2001:db8:6401::/64", 600)).code == "2.04"
            assert service.handle(Request("GET", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID)).code == "2.05"
        assert (looks, pokes) == ([], [])
        assert service.handle(_put(2, "2001:db8:6401:1::/64", 10)).code == "2.01"  # an earlier deadline: looked at
        assert looks and pokes == [1]


async def test_a_later_deadline_is_looked_at_once_then_requests_cost_no_look_again(tmp_path: Path):
    # Mitigation 2 ends after mitigation 1: the timer task sleeps on; the refreshes after it do not look again.
    async with _one_mitigation_held(tmp_path) as (service, pokes, clock, _):
        looks = _count_looks(service)
        assert service.handle(_put(2, "2001:db8:6401:1::/64", 3600)).code == "2.01"
        assert (looks, pokes) == ([1], [])
        for _ in range(20):
            clock.now += 1
            assert service.handle(_put(2, "2001:db8:6401:1::/64", 3600)).code == "2.04"
            assert service.handle(_put(1, "2001:db8:6401::/64", 600)).code == "2.04"
        assert (looks, pokes) == ([1], [])
