"""DOTS Happy Eyeballs (RFC 9132 §4.3) with a fake clock."""

from __future__ import annotations

import pytest

from opendots.signal.client.core.eyeballs import Candidate, EyeballsCache, HappyEyeballs, order_candidates


def test_order_is_udp6_udp4_tcp6_tcp4() -> None:
    ordered = order_candidates(["192.0.2.1", "2001:db8::1", "[2001:db8::2]"], 4646)
    assert [(c.transport, c.address) for c in ordered] == [
        ("dtls", "2001:db8::1"),
        ("dtls", "2001:db8::2"),
        ("dtls", "192.0.2.1"),
        ("tls", "2001:db8::1"),
        ("tls", "2001:db8::2"),
        ("tls", "192.0.2.1"),
    ]
    assert ordered[0].base_uri == "coaps://[2001:db8::1]:4646"
    assert ordered[-1].base_uri == "coaps+tcp://192.0.2.1:4646"
    assert [c.transport for c in order_candidates(["192.0.2.1"], 1, ["tls"])] == ["tls"]


def test_race_staggers_attempts_and_first_success_wins() -> None:
    candidates = order_candidates(["2001:db8::1", "192.0.2.1"], 4646)
    race = HappyEyeballs(candidates, attempt_delay=0.25)
    assert race.start(100.0) == [candidates[0]]
    assert race.next_timer() == 100.25
    assert race.handle_timer(100.1) == []
    assert race.handle_timer(100.25) == [candidates[1]]
    # The second DTLS attempt fails fast: the next one (TLS over IPv6) starts at once, not after the delay.
    assert race.attempt_failed(candidates[1], 100.3) == [candidates[2]]
    assert race.handle_timer(100.55) == [candidates[3]]
    losers = race.attempt_succeeded(candidates[3])
    assert race.winner == candidates[3]
    assert set(losers) == {candidates[0], candidates[2]}
    assert race.finished and race.next_timer() is None
    assert race.attempt_succeeded(candidates[0]) == [candidates[0]]  # a late success is a loser


def test_race_fails_when_every_candidate_fails() -> None:
    candidates = order_candidates(["192.0.2.1"], 4646)
    race = HappyEyeballs(candidates)
    first = race.start(0)[0]
    second = race.attempt_failed(first, 0.01)[0]
    assert race.attempt_failed(second, 0.02) == []
    assert race.all_failed and race.failed == (first, second)


def test_cache_remembers_the_winner_for_ten_minutes_and_probes_dtls_later() -> None:
    candidates = order_candidates(["2001:db8::1", "192.0.2.1"], 4646)
    cache = EyeballsCache()
    assert cache.candidates(candidates, 0) == candidates
    tls_winner = Candidate("192.0.2.1", 4646, "tls")
    cache.remember(tls_winner, 1000.0)
    assert cache.candidates(candidates, 1000.0 + 599) == [tls_winner]
    assert cache.candidates(candidates, 1000.0 + 601) == candidates
    assert cache.next_dtls_probe() == 1000.0 + 24 * 3600
    assert not cache.dtls_probe_due(1000.0 + 3600)
    assert cache.dtls_probe_due(1000.0 + 24 * 3600)
    cache.dtls_probed(1000.0 + 24 * 3600)
    assert not cache.dtls_probe_due(1000.0 + 24 * 3600 + 1)
    assert EyeballsCache(dtls_probe_interval=1).dtls_probe_interval == 300  # never below 5 minutes
    cache.remember(candidates[0], 2000.0)  # DTLS won: nothing to probe
    assert cache.next_dtls_probe() is None and not cache.dtls_probe_due(10**9)


async def test_race_runner_starts_staggered_and_cancels_losers() -> None:
    import asyncio

    from opendots.signal.client.shell.connect import ConnectError, race

    candidates = order_candidates(["2001:db8::1", "192.0.2.1"], 4646)
    started: list[tuple[Candidate, float]] = []
    cancelled: list[Candidate] = []
    loop = asyncio.get_running_loop()
    begin = loop.time()

    async def attempt(candidate: Candidate) -> float:
        started.append((candidate, loop.time() - begin))
        try:
            if candidate == candidates[0]:
                await asyncio.sleep(10)  # UDP over IPv6 blackholed
            if candidate == candidates[1]:
                raise ConnectionRefusedError("UDP over IPv4 refused")
            await asyncio.sleep(0.01)
            return 0.001
        except asyncio.CancelledError:
            cancelled.append(candidate)
            raise

    connection = await race(candidates, attempt, attempt_delay=0.05, clock=loop.time)
    assert connection.candidate == candidates[2] and connection.reliable
    assert [c for c, _ in started] == candidates[:3]
    assert started[1][1] >= 0.045  # the second attempt waited for the Connection Attempt Delay
    assert started[2][1] - started[1][1] < 0.04  # the failure started the third at once
    await asyncio.sleep(0)
    assert cancelled == [candidates[0]]

    async def refuse(candidate: Candidate) -> float:
        raise OSError("unreachable")

    with pytest.raises(ConnectError, match="unreachable"):
        await race(candidates, refuse, attempt_delay=0.01, clock=loop.time)
