"""BgpMitigator against a real BGP speaker and BIRD 2 as the receiving peer, each in its own network namespace."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest

from opendots.mitigate.base import Counters, MitigationScope, MitigatorError, PortRange
from opendots.mitigate.bgp import BgpMitigator, BgpSettings, RoutePolicy
from opendots.mitigate.bgp.birdlab import (
    BIRD_AS,
    BIRD_V4,
    DISCARD_V4,
    DISCARD_V6,
    SPEAKER_AS,
    SPEAKER_V4,
    BirdLab,
    missing_prerequisites,
)
from opendots.mitigate.bgp.speakers import SPEAKERS, make_speaker, speaker_unavailable

pytestmark = pytest.mark.lab

TARGET_V4 = ipaddress.ip_network("203.0.113.7/32")
TARGET_V6 = ipaddress.ip_network("2001:db8:5::7/128")
FLOW_V4 = "flow4 { dst 203.0.113.7/32; src 198.51.100.0/24; proto 6,17; dport 80..90,443; }"
FLOW_V6 = "flow6 { dst 2001:db8:5::7/128; next header 17; }"
DISCARD_ACTION = "(generic, 0x80060000, 0x0)"  # RFC 8955 traffic-rate-bytes, rate 0


def scope_v4(key: str = "client/1", ports: tuple[PortRange, ...] = (PortRange(80, 90), PortRange(443, 443))):
    return MitigationScope(
        key=key,
        target_prefixes=(TARGET_V4,),
        target_port_ranges=ports,
        target_protocols=(6, 17),
        source_prefixes=(ipaddress.ip_network("198.51.100.0/24"),),
    )


def scope_v6(key: str = "client/2") -> MitigationScope:
    return MitigationScope(key=key, target_prefixes=(TARGET_V6,), target_protocols=(17,))


@pytest.fixture(scope="module")
def lab() -> Iterator[BirdLab]:
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    with BirdLab() as bird_lab:
        yield bird_lab


@pytest.fixture(params=SPEAKERS)
async def mitigator(request: pytest.FixtureRequest, lab: BirdLab) -> AsyncIterator[BgpMitigator]:
    kind = request.param
    reason = speaker_unavailable(kind)
    if reason:
        pytest.skip(reason)
    speaker = make_speaker(kind, lab.speaker_config())
    policy = RoutePolicy(mode="both", discard_next_hop_v4=DISCARD_V4, discard_next_hop_v6=DISCARD_V6)
    bgp = BgpMitigator(speaker, policy)
    await bgp.start()
    try:
        await wait_until(lab.established, "BGP sessions established")
        yield bgp
    finally:
        await bgp.stop()
        # The next test's speaker must start from a clean BIRD: sessions down, routes gone.
        await wait_until(lambda: not bgp_routes(lab), "routes flushed")


async def wait_until(condition, what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


async def wait_until_async(read, accept, timeout: float = 15.0) -> None:
    """Wait until ACCEPT(await READ()) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not accept(await read()):
        if loop.time() > deadline:
            raise AssertionError(f"{read}: not accepted within {timeout} s")
        await asyncio.sleep(0.05)


def bgp_routes(lab: BirdLab) -> dict[str, str]:
    """BGP-learned routes in all four tables (the static discard routes are BIRD's own)."""
    routes = {}
    for table in ("master4", "master6", "flowtab4", "flowtab6"):
        routes.update({net: text for net, text in lab.routes(table).items() if "BGP univ" in text})
    return routes


async def test_apply_announces_rtbh_and_flowspec_then_withdraw_removes_them(lab: BirdLab, mitigator: BgpMitigator):
    await mitigator.apply(scope_v4())
    await mitigator.apply(scope_v6())
    wanted = {str(TARGET_V4), str(TARGET_V6), FLOW_V4, FLOW_V6}
    await wait_until(lambda: wanted <= set(bgp_routes(lab)), "all four routes at BIRD")

    routes = bgp_routes(lab)
    assert set(routes) == wanted, routes
    for target, next_hop in ((TARGET_V4, DISCARD_V4), (TARGET_V6, DISCARD_V6)):
        text = routes[str(target)]
        assert "BGP.community: (65535,666)" in text
        assert f"BGP.next_hop: {next_hop}" in text
        assert "blackhole" in text.splitlines()[0]  # BIRD resolved the next hop to its null route
    assert DISCARD_ACTION in routes[FLOW_V4]
    assert DISCARD_ACTION in routes[FLOW_V6]
    assert await mitigator.health()
    assert await mitigator.counters("client/1") == Counters()

    await mitigator.withdraw("client/1")
    await wait_until(lambda: set(bgp_routes(lab)) == {str(TARGET_V6), FLOW_V6}, "client/1 routes withdrawn")
    await mitigator.withdraw("client/2")
    await wait_until(lambda: not bgp_routes(lab), "all routes withdrawn")
    await mitigator.withdraw("client/2")  # withdrawing twice is harmless


class OrderWatch:
    """The real speaker, watched: records the order of its announce and withdraw calls and, when a withdrawal is
    sent, waits for BIRD to hold the route it expects by then and keeps what BIRD holds at that moment."""

    def __init__(self, speaker, lab: BirdLab, expected_before_withdraw: str) -> None:
        self._speaker = speaker
        self._lab = lab
        self._expected = expected_before_withdraw
        self.calls: list[str] = []
        self.at_bird_when_withdrawing: dict[str, str] | None = None

    def __getattr__(self, name: str):
        return getattr(self._speaker, name)

    async def announce(self, routes) -> None:
        self.calls.append("announce")
        await self._speaker.announce(routes)

    async def withdraw(self, routes) -> None:
        self.calls.append("withdraw")
        # Withdrawing first would leave the expected route unannounced here: this wait then fails the test.
        await wait_until(lambda: self._expected in bgp_routes(self._lab), "the new rule at BIRD before the withdrawal")
        self.at_bird_when_withdrawing = bgp_routes(self._lab)
        await self._speaker.withdraw(routes)


async def test_update_announces_the_new_rule_before_withdrawing_the_old(lab: BirdLab, mitigator: BgpMitigator):
    await mitigator.apply(scope_v4(ports=(PortRange(80, 80),)))
    old_flow = "flow4 { dst 203.0.113.7/32; src 198.51.100.0/24; proto 6,17; dport 80; }"
    await wait_until(lambda: old_flow in bgp_routes(lab), "first rule")
    new_flow = "flow4 { dst 203.0.113.7/32; src 198.51.100.0/24; proto 6,17; dport 8000..8080; }"
    real_speaker = mitigator.speaker
    watch = OrderWatch(real_speaker, lab, new_flow)
    mitigator.speaker = watch
    try:
        await mitigator.update(scope_v4(ports=(PortRange(8000, 8080),)))
    finally:
        mitigator.speaker = real_speaker
    assert watch.calls == ["announce", "withdraw"]
    # No gap in enforcement: BIRD held the old and the new rule at once, and only then was the old one withdrawn.
    assert watch.at_bird_when_withdrawing is not None
    assert {old_flow, new_flow, str(TARGET_V4)} <= set(watch.at_bird_when_withdrawing)
    await wait_until(lambda: set(bgp_routes(lab)) == {str(TARGET_V4), new_flow}, "only the new rule")


async def test_shared_route_stays_until_the_last_mitigation_ends(lab: BirdLab, mitigator: BgpMitigator):
    await mitigator.apply(scope_v6("client/a"))
    await mitigator.apply(scope_v6("other/b"))
    await wait_until(lambda: FLOW_V6 in bgp_routes(lab), "shared rule")
    await mitigator.withdraw("client/a")
    await asyncio.sleep(0.3)
    assert {str(TARGET_V6), FLOW_V6} <= set(bgp_routes(lab))
    await mitigator.withdraw("other/b")
    await wait_until(lambda: not bgp_routes(lab), "shared rule withdrawn")


async def test_invalid_scope_is_refused_and_changes_nothing(lab: BirdLab, mitigator: BgpMitigator):
    await mitigator.apply(scope_v6())
    await wait_until(lambda: set(bgp_routes(lab)) == {str(TARGET_V6), FLOW_V6}, "valid routes")
    before = bgp_routes(lab)  # with BIRD's receive timestamps: a re-announcement would show too
    invalid = [
        MitigationScope("client/9", (ipaddress.ip_network("203.0.113.0/24"),)),  # RTBH of a whole /24
        MitigationScope("client/9", (TARGET_V4,), target_port_ranges=(PortRange(90, 80),)),
        MitigationScope("client/9", (TARGET_V4,), target_protocols=(256,)),
        MitigationScope("client/9", ()),
        MitigationScope("client/9", (TARGET_V4,), source_prefixes=(ipaddress.ip_network("2001:db8:9::/48"),)),
    ]
    for scope in invalid:
        with pytest.raises(MitigatorError):
            await mitigator.apply(scope)
    # A refused update leaves the mitigation it targeted as it was.
    with pytest.raises(MitigatorError):
        await mitigator.update(MitigationScope("client/2", (ipaddress.ip_network("2001:db8:5::/64"),)))
    await asyncio.sleep(0.3)
    assert bgp_routes(lab) == before
    assert mitigator.active_keys() == ["client/2"]


async def test_rate_limit_is_announced_as_traffic_rate(lab: BirdLab, mitigator: BgpMitigator):
    mitigator.policy = RoutePolicy(mode="flowspec", flowspec_rate_limit_bytes_per_second=12500)
    await mitigator.apply(scope_v6())
    await wait_until(lambda: FLOW_V6 in bgp_routes(lab), "rate-limit rule")
    # traffic-rate-bytes carries an IEEE 754 float: 12500.0 is 0x46435000.
    assert "(generic, 0x80060000, 0x46435000)" in bgp_routes(lab)[FLOW_V6]
    assert set(bgp_routes(lab)) == {FLOW_V6}  # flowspec mode announces no RTBH route


async def test_speaker_restart_restores_active_mitigations(lab: BirdLab, mitigator: BgpMitigator):
    scopes = [scope_v4(), scope_v6()]
    for scope in scopes:
        await mitigator.apply(scope)
    wanted = {str(TARGET_V4), str(TARGET_V6), FLOW_V4, FLOW_V6}
    await wait_until(lambda: set(bgp_routes(lab)) == wanted, "routes before the restart")

    await mitigator.speaker.stop()
    assert not await mitigator.health()
    await wait_until(lambda: not bgp_routes(lab), "peer dropped the routes of the stopped speaker")

    failed = await mitigator.restore(scopes)
    assert failed == []
    await wait_until(lambda: set(bgp_routes(lab)) == wanted, "routes re-announced after the restart", timeout=20)
    await wait_until(lab.established, "sessions back")
    assert await mitigator.health()

    # restart_speaker does the same in one call; a mitigation that ended meanwhile is not brought back.
    await mitigator.restart_speaker([scope_v6()])
    await wait_until(lambda: set(bgp_routes(lab)) == {str(TARGET_V6), FLOW_V6}, "only the live mitigation")


async def test_health_follows_the_bgp_sessions(lab: BirdLab, mitigator: BgpMitigator):
    assert await mitigator.health()
    lab.birdc("disable", "speaker6")
    try:
        await wait_until_async(mitigator.session_states, lambda states: states["2001:db8:1::2"] != "established")
        assert not await mitigator.health()
        assert (await mitigator.session_states())["198.51.100.2"] == "established"
    finally:
        lab.birdc("enable", "speaker6")
    await wait_until(lab.established, "session back")
    await wait_until_async(mitigator.health, bool)


async def test_crashed_speaker_is_seen_and_restart_restores(lab: BirdLab, mitigator: BgpMitigator):
    await mitigator.apply(scope_v6())
    await wait_until(lambda: FLOW_V6 in bgp_routes(lab), "rule before the crash")
    pid = mitigator.speaker.pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGKILL)  # the speaker process this test started
    await wait_until_async(mitigator.health, lambda healthy: not healthy)
    assert not mitigator.speaker.running
    # Without a NOTIFICATION, BIRD notices at TCP close (the kernel resets the socket of the dead process).
    await wait_until(lambda: not bgp_routes(lab), "peer dropped the routes of the dead speaker")
    assert await mitigator.ensure_running(lambda: [scope_v6()])
    assert not await mitigator.ensure_running(lambda: [])  # running again: nothing to do
    await wait_until(lambda: set(bgp_routes(lab)) == {str(TARGET_V6), FLOW_V6}, "routes restored")
    await wait_until_async(mitigator.health, bool)
    # A record that can no longer be enforced is reported, and does not keep the others down.
    assert await mitigator.restore([MitigationScope("bad", ()), scope_v6()]) == ["bad"]
    await asyncio.sleep(0.2)
    assert set(bgp_routes(lab)) == {str(TARGET_V6), FLOW_V6}


async def test_apply_while_the_speaker_is_down_fails_and_keeps_state(lab: BirdLab, mitigator: BgpMitigator):
    await mitigator.apply(scope_v6())
    await mitigator.speaker.stop()
    with pytest.raises(MitigatorError, match="not running"):
        await mitigator.apply(scope_v4())
    with pytest.raises(MitigatorError, match="not running"):
        await mitigator.withdraw("client/2")
    assert mitigator.active_keys() == ["client/2"]  # what the database must restore() once the speaker is back


@pytest.mark.parametrize("kind", SPEAKERS)
async def test_mitigator_built_from_settings(lab: BirdLab, kind: str):
    reason = speaker_unavailable(kind)
    if reason:
        pytest.skip(reason)
    settings = BgpSettings.from_mapping(
        {
            "speaker": kind,
            "mode": "rtbh",
            "local_as": SPEAKER_AS,
            "router_id": str(SPEAKER_V4),
            "netns": lab.speaker_ns,
            "discard_next_hop_v4": str(DISCARD_V4),
            "communities": ["64496:9999"],
            "peers": [{"address": str(BIRD_V4), "remote_as": BIRD_AS, "local_address": str(SPEAKER_V4)}],
        }
    )
    async with settings.build() as mitigator:
        await mitigator.apply(scope_v4())
        await wait_until(lambda: str(TARGET_V4) in bgp_routes(lab), "RTBH route from the configured mitigator")
        assert "BGP.community: (65535,666) (64496,9999)" in bgp_routes(lab)[str(TARGET_V4)]
        assert mitigator.name == f"bgp-rtbh-{kind}"
    await wait_until(lambda: not bgp_routes(lab), "routes gone with the stopped speaker")


@pytest.mark.parametrize("kind", SPEAKERS)
async def test_a_speaker_that_cannot_start_is_reported(lab: BirdLab, kind: str):
    reason = speaker_unavailable(kind)
    if reason:
        pytest.skip(reason)
    missing_namespace = ("ip", "netns", "exec", f"{lab.speaker_ns}-absent")
    mitigator = BgpMitigator(make_speaker(kind, lab.speaker_config(command_prefix=missing_namespace)))
    with pytest.raises(MitigatorError, match=r"not running|exited during start"):
        await mitigator.start()
    assert not await mitigator.health()
    with pytest.raises(MitigatorError):
        await mitigator.apply(scope_v6())
    await mitigator.stop()
