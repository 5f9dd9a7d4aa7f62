"""RFC 9177 §7.2: a body to a silent peer is subject to PROBING_RATE, the wait capped at NON_PROBING_WAIT."""

from __future__ import annotations

import random

import pytest

from opendots.transport.qblock import QBlockParameters
from opendots.transport.qblock.pacing import ProbingPacer


def test_a_body_to_a_silent_peer_holds_the_next_one_back_by_its_size_over_probing_rate() -> None:
    pacer = ProbingPacer(QBlockParameters(probing_rate=100.0))
    assert pacer.ready_at() < 0
    pacer.sent(1000, now=5.0)
    assert pacer.ready_at() == 15.0
    pacer.sent(500, now=6.0)  # sent early anyway: the waits add up
    assert pacer.ready_at() == 20.0


def test_the_wait_is_capped_at_non_probing_wait_with_the_default_probing_rate_of_one_byte_a_second() -> None:
    pacer = ProbingPacer(QBlockParameters(), random.Random(1))
    pacer.sent(64 * 1024, now=0.0)
    assert 247.0 <= pacer.ready_at() <= 248.0


def test_an_explicit_non_probing_wait_caps_without_jitter() -> None:
    pacer = ProbingPacer(QBlockParameters(non_probing_wait=30.0))
    pacer.sent(10_000, now=1.0)
    assert pacer.ready_at() == 31.0


def test_hearing_from_the_peer_lifts_the_wait() -> None:
    pacer = ProbingPacer(QBlockParameters())
    pacer.sent(1000, now=0.0)
    pacer.heard(now=3.0)
    assert pacer.ready_at() == 3.0


def test_a_probing_rate_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="PROBING_RATE"):
        QBlockParameters(probing_rate=0.0)
