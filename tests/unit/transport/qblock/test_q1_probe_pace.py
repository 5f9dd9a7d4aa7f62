"""The pace of a Q-Block1 client's probes (its last block sent again when nothing comes back) under loss (RFC 9177
§7.2): bench/blocks.py found the 64 KiB PUTs of our client at 30 % loss each way past 10 s in one transfer of ten,
most of the time in probe waits that doubled from the first unanswered probe (0.5, 1, 2, 4 s) while the server was
answering every probe that reached it. A peer heard within NON_RECEIVE_TIMEOUT is not "a peer that does not
respond": probes keep NON_TIMEOUT_RANDOM's pace until then, and only the ones past it back off and count towards
giving up. Driven by `now`, no clock."""

from __future__ import annotations

import random

import pytest

from opendots.transport.qblock import Q1Sender, QBlockParameters, encode_missing
from tests.unit.transport.qblock.link import LOSSY, transfers_at_30_percent_loss


def probes_after_a_4_08(params: QBlockParameters, count: int) -> tuple[Q1Sender, list[float]]:
    """A 3-block body all sent, a 4.08 for block 1 at 10 s and its resend, then COUNT probes nobody answers: the
    times they went."""
    sender = Q1Sender(bytes(3000), params, now=0.0, rng=random.Random(1))
    sender.poll(0.0)
    assert [b.option.num for b in sender.on_missing(encode_missing([1]), 10.0)] == [1]
    times = []
    for _ in range(count):
        at = sender.next_deadline()
        assert at is not None
        [probe] = sender.poll(at)
        assert probe.option.num == 2 and not probe.option.more
        times.append(at)
    return sender, times


def test_unanswered_probes_keep_non_timeout_random_pace_within_non_receive_timeout_then_double_rfc9177_7_2() -> None:
    sender, times = probes_after_a_4_08(LOSSY, 5)
    d = sender.delay
    # Up to 10 + 3d (1.52 s) the next probe is within NON_RECEIVE_TIMEOUT (1.55 s) of the 4.08; then the back-off,
    # from one NON_TIMEOUT_RANDOM (was: 10 + d, 10 + 3d, 10 + 7d, ...: two lost probes cost 2 s, three 4 s)
    assert times == pytest.approx([10 + d, 10 + 2 * d, 10 + 3 * d, 10 + 4 * d, 10 + 6 * d])


def test_a_4_08_heard_again_restores_the_quick_pace() -> None:
    sender, times = probes_after_a_4_08(LOSSY, 4)
    later = times[-1] + 0.01
    sender.on_missing(encode_missing([1]), later)
    assert sender.next_deadline() == pytest.approx(later + sender.delay)


def test_only_the_probes_past_non_receive_timeout_count_towards_non_max_retransmit() -> None:
    params = QBlockParameters(**{**LOSSY.__dict__, "non_max_retransmit": 4})
    sender, _ = probes_after_a_4_08(params, 6)  # two quick ones and four backing off: still going
    assert sender.failed is None
    assert sender.poll(sender.next_deadline()) == []  # a fifth past the silence would pass NON_MAX_RETRANSMIT
    assert sender.failed is not None and "NON_MAX_RETRANSMIT" in sender.failed


def test_at_30_percent_loss_both_ways_95_of_100_seeded_64_block_bodies_arrive_within_10_s_of_link_time() -> None:
    # The lossy-path values through the deterministic link (30 % of the messages lost each way, seeded). With probes
    # doubling from the first: 90 of 100 within 10 s, 2 failed (the slowest 21 s).
    failed, finished = transfers_at_30_percent_loss(LOSSY, count=100)
    assert failed == 0
    assert sum(t <= 10.0 for t in finished) >= 95
