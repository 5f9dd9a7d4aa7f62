"""The nftables mitigator's top-talker policy on a real router namespace, driven by a clock the test moves: the
narrow drop and its passed-traffic counter installed in one batch, the judgement made from the kernel's counters,
the widening (and the watch's removal) in one batch that keeps the mitigation's counter, a restart back to the whole
scope. Bounded paced floods from named and unnamed attacker addresses; counts from nft tallies."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.base import MitigationScope
from opendots.mitigate.nftables import NftablesMitigator
from opendots.mitigate.nftables_ruleset import counter_name
from opendots.mitigate.nftables_watch import passed_counter_name
from opendots.mitigate.top_talkers import Phase, TopTalkerSettings

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
        lab.router_ingress, table=table_name, netns=lab.router.name, clock=clock, top_talkers=SETTINGS
    )
    yield running, clock
    await running.cleanup()


def counters(lab: Lab, table: str) -> dict[str, int]:
    result = lab.router.run(["nft", "-j", "list", "counters", "table", "netdev", table], check=False)
    if result.returncode != 0:
        return {}
    items = json.loads(result.stdout)["nftables"]
    return {item["counter"]["name"]: item["counter"]["packets"] for item in items if "counter" in item}


def send(lab: Lab, victim: str, port: int, source: ipaddress.IPv4Address) -> None:
    sent = flood(lab.attacker, victim, port, count=PACKETS, duration=10.0, pps=10_000, source_address=str(source))
    assert sent.sent == PACKETS


async def test_named_talkers_are_dropped_alone_then_the_whole_scope_when_others_carry_the_attack(
    lab: Lab, table_name: str, mitigator: tuple[NftablesMitigator, Clock]
):
    nft, clock = mitigator
    named, unnamed = lab.attacker_sources(2, first=40)
    victim = str(lab.victim_v4[0])
    port = 20000 + secrets.randbelow(20000)
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    key = "c/1"
    scope = MitigationScope(key, (ipaddress.ip_network(f"{victim}/32"),), top_talkers=(ipaddress.ip_network(named),))
    await nft.apply(scope)
    status = nft.top_talker_status(key)
    assert status is not None and status.phase is Phase.NARROW

    send(lab, victim, port, named)
    assert tally.count(port) == 0  # the named source: dropped
    send(lab, victim, port, unnamed)
    assert tally.count(port) == PACKETS  # another source toward the same target: through, and counted as passed
    assert counters(lab, f"{table_name}_tt")[passed_counter_name(key)] == PACKETS

    # Judged over the window from the kernel's counters: 1,000 dropped, 1,000 passed (50 %) → widen.
    clock.now += 4.0
    assert (await nft.counters_many([key]))[key].pkts_dropped == PACKETS
    assert nft.top_talker_status(key).phase is Phase.NARROW  # type: ignore[union-attr]
    clock.now += 7.0
    await nft.counters_many([key])
    status = nft.top_talker_status(key)
    assert status is not None and status.phase is Phase.WIDE and status.reason.startswith("widened: 91 pps")
    assert counters(lab, f"{table_name}_tt") == {}  # the watch went in the same batch
    assert counters(lab, table_name)[counter_name(key)] == PACKETS  # the mitigation's counter carried over

    send(lab, victim, port, unnamed)
    assert tally.count(port) == PACKETS  # now the whole scope: the unnamed source is dropped too
    assert (await nft.counters(key)).pkts_dropped == 2 * PACKETS
    await nft.apply(scope)  # the same request again: stays wide
    assert nft.top_talker_status(key).phase is Phase.WIDE  # type: ignore[union-attr]


async def test_a_narrow_drop_that_holds_stays_narrow_and_a_restart_enforces_the_whole_scope(
    lab: Lab, table_name: str, mitigator: tuple[NftablesMitigator, Clock]
):
    nft, clock = mitigator
    named, unnamed = lab.attacker_sources(2, first=42)
    victim = str(lab.victim_v4[1])
    port = 20000 + secrets.randbelow(20000)
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    key = "c/2"
    scope = MitigationScope(key, (ipaddress.ip_network(f"{victim}/32"),), top_talkers=(ipaddress.ip_network(named),))
    await nft.apply(scope)
    for _ in range(3):
        send(lab, victim, port, named)
    clock.now += 11.0
    await nft.counters_many([key])
    status = nft.top_talker_status(key)
    assert status is not None and status.phase is Phase.NARROW and status.reason.startswith("holding: 0 pps")
    assert tally.count(port) == 0
    assert passed_counter_name(key) in counters(lab, f"{table_name}_tt")

    restarted = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name, top_talkers=SETTINGS)
    assert await restarted.restore([scope]) == {}
    assert restarted.top_talker_status(key) is None
    assert counters(lab, f"{table_name}_tt") == {}  # no watch left behind
    assert counters(lab, table_name)[counter_name(key)] == 3 * PACKETS  # counted drops survive the restart
    send(lab, victim, port, unnamed)
    assert tally.count(port) == 0  # the whole scope


async def test_rate_limited_talkers_keep_a_trickle_and_their_drops_follow_the_mitigation_when_it_widens(
    lab: Lab, table_name: str
):
    """top_talker_action = "rate-limit": the named source's traffic toward the target beyond the rate is dropped
    (counted as the mitigation's drops, in the watch table); widening moves those counts to the mitigation's
    own counter."""
    clock = Clock()
    settings = replace(SETTINGS, action="rate-limit", rate_limit=92 * 50)  # 50 flood packets a second
    nft = NftablesMitigator(
        lab.router_ingress, table=table_name, netns=lab.router.name, clock=clock, top_talkers=settings
    )
    try:
        named, unnamed = lab.attacker_sources(2, first=44)
        victim = str(lab.victim_v4[0])
        port = 20000 + secrets.randbelow(20000)
        tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
        key = "c/3"
        target = ipaddress.ip_network(f"{victim}/32")
        scope = MitigationScope(key, (target,), top_talkers=(ipaddress.ip_network(named),))
        await nft.apply(scope)
        assert "rate-limiting 1 named top talkers only" in nft.top_talker_status(key).describe()  # type: ignore[union-attr]
        assert counter_name(key) not in counters(lab, table_name)  # nothing of it in the mitigator's own table

        send(lab, victim, port, named)  # 1,000 packets in 0.1 s against 50 a second: most go
        trickle = tally.count(port)
        assert 0 < trickle < PACKETS / 4
        dropped = (await nft.counters(key)).pkts_dropped
        assert dropped == PACKETS - trickle
        assert counters(lab, f"{table_name}_tt")[passed_counter_name(key)] == trickle

        send(lab, victim, port, unnamed)  # not named: through
        assert tally.count(port) == trickle + PACKETS
        clock.now += 11.0
        await nft.counters_many([key])
        assert nft.top_talker_status(key).phase is Phase.WIDE  # type: ignore[union-attr]
        assert counters(lab, f"{table_name}_tt") == {}
        assert counters(lab, table_name)[counter_name(key)] == dropped  # the rate limit's drops carried over
        send(lab, victim, port, unnamed)
        assert tally.count(port) == trickle + PACKETS  # the whole scope now
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
    assert counters(lab, f"{table_name}_tt") == {}
    listing = lab.router.run(["nft", "list", "table", "netdev", table_name]).stdout
    assert "10.3.249.1" in listing and "198.18.0.1" not in listing
