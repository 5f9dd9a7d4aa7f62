"""The asyncio service around the core, with the real LoggingMitigator and a clock the test moves."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from opendots.mitigate.base import Counters, LoggingMitigator, MitigationScope, MitigatorError
from opendots.signal.server.core import MitigationChanged, Request, ServerSettings, SignalServer, Status
from opendots.signal.server.shell import SignalService
from opendots.signal.server.shell.service import COUNTER_SLICE
from opendots.store.signal import SqliteSignalStore
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, NO_HEARTBEAT, SCOPE, T0, mitigate_path, scope_body


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class TableResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, name: str):
        return [ipaddress.ip_address(a) for a in self.table.get(name, [])]


class FailingMitigator(LoggingMitigator):
    async def apply(self, scope: MitigationScope) -> None:
        raise MitigatorError("no capacity left")


def make_service(tmp_path: Path, mitigator: LoggingMitigator, clock: Clock, **kw) -> tuple[SignalService, list]:
    settings = ServerSettings(clients=[ALPHA, BRAVO], session_defaults=NO_HEARTBEAT)
    store = SqliteSignalStore.open(tmp_path / "s.db")
    core = SignalServer(settings, store.load(), clock())
    seen: list = []
    return SignalService(core, store, mitigator, clock=clock, on_event=seen.append, **kw), seen


def put(mid: int, **entry) -> Request:
    return Request("PUT", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID, body=scope_body(**entry))


async def test_apply_expire_and_restart_reapply(tmp_path: Path):
    clock, mitigator = Clock(), LoggingMitigator()
    service, seen = make_service(tmp_path, mitigator, clock)
    await service.start()
    try:
        assert service.handle(put(1, target_prefix=["2001:db8:6401::1/128"], lifetime=60)).code == "2.01"
        await service.idle()
        assert list(mitigator.active) == [f"{ALPHA_CUID}/1"]
        assert any(isinstance(e, MitigationChanged) for e in seen)
        clock.now += 61
        service.poke()
        for _ in range(100):  # the timer task wakes on its own schedule
            await asyncio.sleep(0.01)
            await service.idle()
            if not mitigator.active:
                break
        assert mitigator.active == {}
    finally:
        await service.stop()


async def test_restart_reapplies_stored_mitigations(tmp_path: Path):
    clock = Clock()
    first, _ = make_service(tmp_path, LoggingMitigator(), clock)
    await first.start()
    assert first.handle(put(1, target_prefix=["192.0.2.0/28"])).code == "2.01"
    await first.stop()
    fresh = LoggingMitigator()
    second, _ = make_service(tmp_path, fresh, clock)
    await second.start()
    await second.idle()
    assert list(fresh.active) == [f"{ALPHA_CUID}/1"]
    await second.stop()


async def test_names_are_resolved_and_only_authorized_addresses_kept(tmp_path: Path):
    clock, mitigator = Clock(), LoggingMitigator()
    resolver = TableResolver({"www.example.com": ["2001:db8:6401::80", "198.51.100.7"]})
    service, _ = make_service(tmp_path, mitigator, clock, resolver=resolver)
    await service.start()
    assert service.handle(put(1, target_fqdn=["www.example.com"])).code == "2.01"
    await service.idle()
    (scope,) = mitigator.active.values()
    assert [str(p) for p in scope.target_prefixes] == ["2001:db8:6401::80/128"]
    await service.stop()


async def test_mitigator_failure_is_reported_as_status_4(tmp_path: Path):
    clock = Clock()
    service, _ = make_service(tmp_path, FailingMitigator(), clock)
    await service.start()
    assert service.handle(put(1, target_prefix=["192.0.2.0/28"])).code == "2.01"
    await service.idle()
    await service.idle()
    get = Request("GET", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID)
    status = service.handle(get).body[SCOPE]["scope"][0]["status"]
    assert status == Status.ATTACK_EXCEEDED_CAPABILITY.label
    await service.stop()


async def test_names_resolving_to_nothing_usable_are_never_applied(tmp_path: Path):
    clock, mitigator = Clock(), LoggingMitigator()
    resolver = TableResolver({"www.example.com": ["198.51.100.7"]})  # not alpha's
    service, _ = make_service(tmp_path, mitigator, clock, resolver=resolver)
    await service.start()
    assert service.handle(put(1, target_fqdn=["www.example.com"])).code == "2.01"
    await service.idle()
    await service.idle()
    assert mitigator.active == {}
    get = Request("GET", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID)
    assert service.handle(get).body[SCOPE]["scope"][0]["status"] == Status.ATTACK_EXCEEDED_CAPABILITY.label
    await service.stop()


async def test_restart_restores_through_the_mitigator_router(tmp_path: Path):
    from opendots.mitigate.router import Assignment, MitigatorRouter

    clock = Clock()
    first, _ = make_service(tmp_path, LoggingMitigator(), clock)
    await first.start()
    assert first.handle(put(1, target_prefix=["192.0.2.0/28"])).code == "2.01"
    assert first.handle(put(2, target_prefix=["2001:db8:6401::/64"])).code == "2.01"
    await first.idle()
    await first.stop()
    actuator = LoggingMitigator()
    only_v4 = Assignment(actuator, prefixes=(ipaddress.ip_network("192.0.2.0/24"),))
    router = MitigatorRouter([only_v4], {ALPHA_CUID: "alpha"})
    second, _ = make_service(tmp_path, router, clock)
    await second.start()
    await second.idle()
    assert list(actuator.active) == [f"{ALPHA_CUID}/1"]
    statuses = {
        mid: second.handle(Request("GET", mitigate_path(ALPHA_CUID, mid), peer=ALPHA_CUID)).body[SCOPE]["scope"][0][
            "status"
        ]
        for mid in (1, 2)
    }
    assert statuses == {1: "attack-mitigation-in-progress", 2: "attack-exceeded-capability"}
    await second.stop()


class CountingMitigator(LoggingMitigator):
    """Reports fixed counters for what it holds (stands for an actuator with real counters, e.g. nftables)."""

    async def counters(self, key: str) -> Counters:
        return Counters(bytes_dropped=1500, pkts_dropped=1) if key in self.active else Counters()


async def test_counters_come_from_the_mitigator(tmp_path: Path):
    clock, mitigator = Clock(), CountingMitigator()
    service, _ = make_service(tmp_path, mitigator, clock)
    await service.start()
    assert service.handle(put(1, target_prefix=["192.0.2.0/28"])).code == "2.01"
    await service.idle()
    get = Request("GET", mitigate_path(ALPHA_CUID, 1), peer=ALPHA_CUID)
    assert "bytes-dropped" not in service.handle(get).body[SCOPE]["scope"][0]
    await service.refresh_counters()
    entry = service.handle(get).body[SCOPE]["scope"][0]
    assert (entry["bytes-dropped"], entry["pkts-dropped"]) == ("1500", "1")
    assert "bps-dropped" not in entry  # not measured, not invented
    await service.stop()


async def test_a_counter_round_over_many_mitigations_lets_the_loop_turn_between_slices(tmp_path: Path):
    """Thousands of enforced mitigations: their readings are decided in slices, so another client's heartbeat
    (here: a callback scheduled when the round starts) runs before the round ends, not after all of it."""
    clock, mitigator = Clock(), CountingMitigator()
    service, _ = make_service(tmp_path, mitigator, clock)
    service.core.settings.max_mitigations_per_client = 1000
    await service.start()
    count = 3 * COUNTER_SLICE
    for mid in range(1, count + 1):
        assert service.handle(put(mid, target_prefix=[f"2001:db8:6401::{mid:x}/128"])).code == "2.01"
    await service.idle()
    measured_when_the_loop_turned: list[int] = []

    def other_client() -> None:
        measured = sum(1 for m in service.core.mitigations() if m.counters.pkts_dropped is not None)
        measured_when_the_loop_turned.append(measured)

    asyncio.get_running_loop().call_soon(other_client)
    await service.refresh_counters()
    assert len(measured_when_the_loop_turned) == 1
    assert 0 < measured_when_the_loop_turned[0] < count  # ran during the round
    assert all(m.counters.pkts_dropped == 1 for m in service.core.mitigations())
    await service.stop()
