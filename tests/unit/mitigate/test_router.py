"""Selecting actuators per client and target prefix ([[mitigators]] in server.toml)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from opendots.config import ConfigError, ServerConfig
from opendots.mitigate.base import Counters, LoggingMitigator, MitigationScope, MitigatorError, read_counters
from opendots.mitigate.router import Assignment, MitigatorRouter, build_router

net = ipaddress.ip_network


@dataclass
class RefusingMitigator:
    """An actuator that cannot enforce anything (e.g. a BGP speaker whose sessions are down)."""

    name: str = "refusing"
    asked: list[str] = field(default_factory=list)

    async def apply(self, scope: MitigationScope) -> None:
        self.asked.append(scope.key)
        raise MitigatorError("speaker down")

    async def update(self, scope: MitigationScope) -> None:
        await self.apply(scope)

    async def withdraw(self, key: str) -> None:
        return None

    async def counters(self, key: str) -> Counters:
        return Counters()

    async def health(self) -> bool:
        return False


@dataclass
class MeasuringMitigator(LoggingMitigator):
    """The logging mitigator plus fixed measurements, to check how the router sums them."""

    name: str = "measuring"
    measured: Counters = field(default_factory=lambda: Counters(bytes_dropped=100, pkts_dropped=2))

    async def counters(self, key: str) -> Counters:
        return self.measured if key in self.active else Counters()


def scope(key: str, *prefixes: str, client: str | None = None) -> MitigationScope:
    return MitigationScope(key=key, target_prefixes=tuple(net(p) for p in prefixes), client=client)


async def test_each_actuator_gets_the_part_of_a_scope_it_covers():
    edge, core = LoggingMitigator(name="edge"), LoggingMitigator(name="core")
    router = MitigatorRouter(
        [Assignment(edge, prefixes=(net("192.0.2.0/24"),)), Assignment(core, prefixes=(net("2001:db8::/32"),))],
        {"cuidA": "alice"},
    )
    await router.apply(scope("cuidA/1", "192.0.2.8/29", "2001:db8::1/128"))
    assert edge.active["cuidA/1"].target_prefixes == (net("192.0.2.8/29"),)
    assert core.active["cuidA/1"].target_prefixes == (net("2001:db8::1/128"),)

    await router.update(scope("cuidA/1", "192.0.2.8/29"))  # the IPv6 target left the scope
    assert "cuidA/1" not in core.active and "cuidA/1" in edge.active
    await router.withdraw("cuidA/1")
    assert not edge.active and not core.active


async def test_client_selection_and_uncovered_scopes_are_refused():
    only_bob = LoggingMitigator(name="bob-only")
    router = MitigatorRouter([Assignment(only_bob, clients=frozenset({"bob"}))])
    with pytest.raises(MitigatorError, match="no mitigator"):
        await router.apply(scope("cuidA/1", "192.0.2.1/32", client="alice"))
    with pytest.raises(MitigatorError, match="no mitigator"):  # whose it is is a field, not read from the key
        await router.apply(scope("cuidB/1", "192.0.2.1/32"))
    await router.apply(scope("cuidB/1", "192.0.2.1/32", client="bob"))
    assert list(only_bob.active) == ["cuidB/1"]


async def test_a_failing_actuator_is_reported_but_the_others_keep_enforcing():
    working, refusing = LoggingMitigator(name="nft"), RefusingMitigator()
    router = MitigatorRouter([Assignment(working), Assignment(refusing)])
    with pytest.raises(MitigatorError, match="refusing: speaker down"):
        await router.apply(scope("c/1", "198.51.100.0/24"))
    assert "c/1" in working.active
    assert not await router.health()


async def test_counters_are_summed_and_unmeasured_fields_stay_none():
    first, second, blind = MeasuringMitigator(name="a"), MeasuringMitigator(name="b"), LoggingMitigator()
    router = MitigatorRouter([Assignment(first), Assignment(second), Assignment(blind)])
    await router.apply(scope("c/7", "203.0.113.9/32"))
    total = await router.counters("c/7")
    assert (total.bytes_dropped, total.pkts_dropped, total.bps_dropped) == (200, 4, None)
    only_blind = MitigatorRouter([Assignment(LoggingMitigator())])
    await only_blind.apply(scope("c/8", "203.0.113.9/32"))
    assert await only_blind.counters("c/8") == Counters()  # nothing measured is never reported as zero


async def test_restore_replaces_state_and_reports_what_it_could_not_enforce():
    nft, refusing = LoggingMitigator(name="nft"), RefusingMitigator()
    router = MitigatorRouter(
        [Assignment(nft, prefixes=(net("192.0.2.0/24"),)), Assignment(refusing, prefixes=(net("198.51.100.0/24"),))]
    )
    refused = await router.restore(
        [scope("c/1", "192.0.2.1/32"), scope("c/2", "198.51.100.1/32"), scope("c/3", "10.0.0.1/32")]
    )
    assert set(refused) == {"c/2", "c/3"}
    assert list(nft.active) == ["c/1"]


@dataclass
class BatchMitigator(MeasuringMitigator):
    """Measures in one batch read, counting its calls."""

    name: str = "batch"
    batches: list[list[str]] = field(default_factory=list)

    async def counters(self, key: str) -> Counters:
        raise AssertionError("a batch-capable actuator must be read in one call")

    async def counters_many(self, keys: list[str]) -> dict[str, Counters]:
        self.batches.append(list(keys))
        return {key: self.measured for key in keys if key in self.active}


async def test_counters_of_many_mitigations_are_read_in_one_batch_per_actuator():
    batch, single = BatchMitigator(), MeasuringMitigator(name="single")
    router = MitigatorRouter(
        [Assignment(batch, prefixes=(net("192.0.2.0/24"),)), Assignment(single, prefixes=(net("198.51.100.0/24"),))]
    )
    await router.apply(scope("c/1", "192.0.2.1/32"))
    await router.apply(scope("c/2", "192.0.2.2/32", "198.51.100.2/32"))
    await router.apply(scope("c/3", "198.51.100.3/32"))
    measured = await read_counters(router, ["c/1", "c/2", "c/3", "c/unknown"])
    assert batch.batches == [["c/1", "c/2"]]
    assert {key: c.pkts_dropped for key, c in measured.items()} == {"c/1": 2, "c/2": 4, "c/3": 2}
    assert await read_counters(LoggingMitigator(), []) == {}


def test_build_router_from_config(server_config: ServerConfig):
    assert [a.mitigator.name for a in build_router(server_config).assignments] == ["logging"]
    server_config.mitigators = [
        {"type": "logging", "clients": ["client"], "prefixes": ["192.0.2.0/24"]},
        {"type": "nftables", "interface": "eth1", "table": "edge", "netns": "router"},
    ]
    router = build_router(server_config)
    assert [a.mitigator.name for a in router.assignments] == ["logging", "nftables"]
    assert router.assignments[0].clients == {"client"}
    for bad in (
        [{"type": "firewall9000"}],
        [{"type": "logging", "clients": ["nobody"]}],
        [{"type": "logging", "prefixes": ["192.0.2.0/33"]}],
        [{"type": "nftables"}],
        [{"type": "bgp", "speaker": "exabgp"}],
    ):
        server_config.mitigators = bad
        with pytest.raises(ConfigError):
            build_router(server_config)


def test_nftables_counts_passed_traffic_only_for_a_server_that_sends_rfc9244_total_traffic(
    server_config: ServerConfig,
):
    """The counting table costs forwarding capacity: on when [signal] telemetry_server_originated is, or when the
    entry's count_passed says so."""
    server_config.mitigators = [
        {"type": "nftables", "interface": "eth1", "table": "edge"},
        {"type": "nftables", "interface": "eth2", "table": "core", "count_passed": True},
    ]
    assert [a.mitigator.count_passed for a in build_router(server_config).assignments] == [False, True]
    server_config.signal = {**server_config.signal, "telemetry_server_originated": True}
    server_config.mitigators[1]["count_passed"] = False
    assert [a.mitigator.count_passed for a in build_router(server_config).assignments] == [True, False]
    server_config.mitigators[1]["count_passed"] = "yes"
    with pytest.raises(ConfigError, match="count_passed must be true or false"):
        build_router(server_config)
