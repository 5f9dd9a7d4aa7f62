"""The nftables mitigator's top-talker policy on a real router namespace, driven by a clock the test moves: the
narrow drop and its passed-traffic counter installed in one batch, the judgement made from the kernel's counters,
the widening (and the watch's removal) in one batch that keeps the mitigation's counter, a restart back to the whole
scope. Bounded paced floods from named and unnamed attacker addresses; counts from nft tallies."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.base import MitigationScope
from opendots.mitigate.nftables import NftablesMitigator
from opendots.mitigate.nftables_ruleset import counter_name
from opendots.mitigate.nftables_watch import passed_counter_name, target_counter_name
from opendots.mitigate.top_talkers import Phase, TopTalkerSettings
from tests.helpers.nft import named_counters

pytestmark = pytest.mark.lab
PACKETS = 1_000
SETTINGS = TopTalkerSettings(policy="sources-first", window=10.0, max_passed_share=0.2, min_passed_pps=10.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def mitigator(lab: Lab, table_name: str) -> AsyncIterator[tuple[NftablesMitigator, Clock]]:
    clock = Clock()
    running = NftablesMitigator(
        lab.router_ingress,
        table=table_name,
        netns=lab.router.name,
        clock=clock,
        top_talkers=SETTINGS,
        count_passed=True,
    )
    yield running, clock
    await running.cleanup()


@dataclass(frozen=True)
class Target:
    """A victim address with a fresh port and tally, a named and an unnamed attacker, and the scope naming one."""

    victim: str
    port: int
    tally: VictimTally
    named: ipaddress.IPv4Address
    unnamed: ipaddress.IPv4Address
    scope: MitigationScope

    @classmethod
    def make(cls, lab: Lab, key: str, victim_index: int, first_source: int) -> Target:
        named, unnamed = lab.attacker_sources(2, first=first_source)
        victim = str(lab.victim_v4[victim_index])
        port = 20000 + secrets.randbelow(20000)
        tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
        target = (ipaddress.ip_network(f"{victim}/32"),)
        return cls(
            victim,
            port,
            tally,
            named,
            unnamed,
            MitigationScope(key, target, top_talkers=(ipaddress.ip_network(named),)),
        )

    def send(self, lab: Lab, source: ipaddress.IPv4Address) -> None:
        """A paced flood of PACKETS from SOURCE: each one is delivered or dropped by the router, none lost."""
        options = {"count": PACKETS, "duration": 10.0, "pps": 10_000, "source_address": str(source)}
        assert flood(lab.attacker, self.victim, self.port, **options).sent == PACKETS

    def delivered(self) -> int:
        return self.tally.count(self.port)


async def test_named_talkers_are_dropped_alone_then_the_whole_scope_when_others_carry_the_attack(
    lab: Lab, table_name: str, mitigator: tuple[NftablesMitigator, Clock]
):
    nft, clock = mitigator
    target, key = Target.make(lab, "c/1", 0, 40), "c/1"
    await nft.apply(target.scope)
    status = nft.top_talker_status(key)
    assert status is not None and status.phase is Phase.NARROW

    target.send(lab, target.named)
    assert target.delivered() == 0  # the named source: dropped
    target.send(lab, target.unnamed)
    assert target.delivered() == PACKETS  # another source toward the same target: through, and counted as passed
    assert named_counters(lab, f"{table_name}_tt")[passed_counter_name(key)] == PACKETS

    # Judged over the window from the kernel's counters: 1,000 dropped, 1,000 passed (50 %) → widen.
    clock.now += 4.0
    assert (await nft.counters_many([key]))[key].pkts_dropped == PACKETS
    assert nft.top_talker_status(key).phase is Phase.NARROW  # type: ignore[union-attr]
    clock.now += 7.0
    await nft.counters_many([key])
    status = nft.top_talker_status(key)
    assert status is not None and status.phase is Phase.WIDE and status.reason.startswith("widened: 91 pps")
    # The policy's watch went in the same batch; what passed toward the target is still counted (total-traffic).
    assert named_counters(lab, f"{table_name}_tt") == {target_counter_name(key): PACKETS}
    assert named_counters(lab, table_name)[counter_name(key)] == PACKETS  # the mitigation's counter carried over

    target.send(lab, target.unnamed)
    assert target.delivered() == PACKETS  # now the whole scope: the unnamed source is dropped too
    assert (await nft.counters(key)).pkts_dropped == 2 * PACKETS
    await nft.apply(target.scope)  # the same request again: stays wide
    assert nft.top_talker_status(key).phase is Phase.WIDE  # type: ignore[union-attr]


async def test_a_narrow_drop_that_holds_stays_narrow_and_a_restart_enforces_the_whole_scope(
    lab: Lab, table_name: str, mitigator: tuple[NftablesMitigator, Clock]
):
    nft, clock = mitigator
    target, key = Target.make(lab, "c/2", 1, 42), "c/2"
    await nft.apply(target.scope)
    for _ in range(3):
        target.send(lab, target.named)
    clock.now += 11.0
    await nft.counters_many([key])
    status = nft.top_talker_status(key)
    assert status is not None and status.phase is Phase.NARROW and status.reason.startswith("holding: 0 pps")
    assert target.delivered() == 0
    assert passed_counter_name(key) in named_counters(lab, f"{table_name}_tt")

    restarted = NftablesMitigator(
        lab.router_ingress, table=table_name, netns=lab.router.name, top_talkers=SETTINGS, count_passed=True
    )
    assert await restarted.restore([target.scope]) == {}
    assert restarted.top_talker_status(key) is None
    assert named_counters(lab, f"{table_name}_tt") == {target_counter_name(key): 0}  # no watch left behind
    assert named_counters(lab, table_name)[counter_name(key)] == 3 * PACKETS  # counted drops survive the restart
    target.send(lab, target.unnamed)
    assert target.delivered() == 0  # the whole scope


async def test_rate_limited_talkers_keep_a_trickle_and_their_drops_follow_the_mitigation_when_it_widens(
    lab: Lab, table_name: str
):
    """top_talker_action = "rate-limit": the named source's traffic toward the target beyond the rate is dropped
    (counted as the mitigation's drops, in the watch table); widening moves those counts to the mitigation's
    own counter."""
    clock = Clock()
    settings = replace(SETTINGS, action="rate-limit", rate_limit=92 * 50)  # 50 flood packets a second
    nft = NftablesMitigator(
        lab.router_ingress,
        table=table_name,
        netns=lab.router.name,
        clock=clock,
        top_talkers=settings,
        count_passed=True,
    )
    try:
        target, key = Target.make(lab, "c/3", 0, 44), "c/3"
        await nft.apply(target.scope)
        assert "rate-limiting 1 named top talkers only" in nft.top_talker_status(key).describe()  # type: ignore[union-attr]
        assert counter_name(key) not in named_counters(lab, table_name)  # nothing of it in the mitigator's own table

        target.send(lab, target.named)  # 1,000 packets in 0.1 s against 50 a second: most go
        trickle = target.delivered()
        assert 0 < trickle < PACKETS / 4
        dropped = (await nft.counters(key)).pkts_dropped
        assert dropped == PACKETS - trickle
        assert named_counters(lab, f"{table_name}_tt")[passed_counter_name(key)] == trickle

        target.send(lab, target.unnamed)  # not named: through
        assert target.delivered() == trickle + PACKETS
        clock.now += 11.0
        await nft.counters_many([key])
        assert nft.top_talker_status(key).phase is Phase.WIDE  # type: ignore[union-attr]
        assert named_counters(lab, f"{table_name}_tt") == {target_counter_name(key): trickle + PACKETS}
        assert named_counters(lab, table_name)[counter_name(key)] == dropped  # the rate limit's drops carried over
        target.send(lab, target.unnamed)
        assert target.delivered() == trickle + PACKETS  # the whole scope now
        assert (await nft.counters(key)).pkts_dropped == dropped + PACKETS
    finally:
        await nft.cleanup()


async def test_a_narrow_form_too_large_to_enforce_falls_back_to_the_whole_scope_and_says_so(
    lab: Lab, table_name: str, mitigator: tuple[NftablesMitigator, Clock]
):
    """256 talkers toward 1,000 targets are 256,000 match entries, over the actuator's bound per mitigation: the
    mitigation is not refused (the whole scope, 1,000 entries, protects the targets), and the policy says why."""
    nft, _ = mitigator
    targets = tuple(ipaddress.ip_network(f"10.{i // 250}.{i % 250}.1/32") for i in range(1_000))
    talkers = tuple(ipaddress.ip_network(f"198.18.0.{i}/32") for i in range(256))
    scope = MitigationScope("c/4", targets, top_talkers=talkers)
    await nft.apply(scope)
    status = nft.top_talker_status("c/4")
    assert status is not None and status.phase is Phase.WIDE
    assert status.reason.startswith("narrow drop refused: mitigation c/4: 256000 match entries")
    assert named_counters(lab, f"{table_name}_tt") == {target_counter_name("c/4"): 0}
    listing = lab.router.run(["nft", "list", "table", "netdev", table_name]).stdout
    assert "10.3.249.1" in listing and "198.18.0.1" not in listing


async def test_a_watch_table_deleted_by_hand_is_built_again_and_the_judgement_goes_on(
    lab: Lab, table_name: str, mitigator: tuple[NftablesMitigator, Clock]
):
    nft, clock = mitigator
    target, key = Target.make(lab, "c/5", 1, 46), "c/5"
    await nft.apply(target.scope)
    lab.router.run(["nft", "delete", "table", "netdev", f"{table_name}_tt"])
    await nft.counters_many([key])  # the next poll finds it gone and installs it again
    assert named_counters(lab, f"{table_name}_tt") == {passed_counter_name(key): 0, target_counter_name(key): 0}
    target.send(lab, target.unnamed)  # the named source sends nothing: all of this passes
    clock.now += 11.0
    await nft.counters_many([key])
    assert nft.top_talker_status(key).phase is Phase.WIDE  # type: ignore[union-attr]
    target.send(lab, target.unnamed)
    assert target.delivered() == PACKETS
