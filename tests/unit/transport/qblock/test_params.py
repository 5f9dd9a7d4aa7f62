"""RFC 9177 §7.2, Table 3: the NON congestion-control parameters, their defaults and the rules between them."""

from __future__ import annotations

import random

import pytest

from opendots.transport.qblock import QBlockLimits, QBlockParameters


def test_defaults_are_those_of_table_3() -> None:
    params = QBlockParameters()
    assert params.max_payloads == 10
    assert params.non_max_retransmit == 4
    assert params.non_timeout == 2.0
    assert params.receive_timeout == 4.0  # twice NON_TIMEOUT
    assert params.partial_timeout == 247.0  # 2 x 15 x 1.5 + 2 x 100 + 2
    assert params.probing_wait(2.0) == 247.0 and params.probing_wait(3.0) == 248.0
    draws = [params.timeout_random(random.Random(seed)) for seed in range(200)]
    assert all(2.0 <= d <= 3.0 for d in draws) and len(set(draws)) == 200  # random, not integral


def test_derived_values_follow_the_values_they_are_derived_from() -> None:
    params = QBlockParameters(non_timeout=1.0, non_max_retransmit=2)
    assert params.receive_timeout == 2.5  # twice 1 s would not be 1 s past NON_TIMEOUT_RANDOM's 1.5 s (§7.2)
    assert QBlockParameters(non_timeout=3.0).receive_timeout == 6.0
    assert params.partial_timeout == 1.0 * 3 * 1.5 + 200 + 1.0


def test_explicit_probing_wait_and_partial_timeout_are_used_without_jitter() -> None:
    params = QBlockParameters(non_probing_wait=30.0, non_partial_timeout=40.0)
    assert params.probing_wait(2.5) == 30.0 and params.partial_timeout == 40.0


def test_time_to_wait_doubles_with_each_re_request() -> None:
    assert [QBlockParameters().time_to_wait(n) for n in (1, 2, 3, 4)] == [4.0, 8.0, 16.0, 32.0]


def test_a_receive_timeout_not_one_second_past_non_timeout_random_is_refused() -> None:
    with pytest.raises(ValueError, match=r"NON_RECEIVE_TIMEOUT 3.5 s must be at least .* = 4 s \(RFC 9177 §7.2\)"):
        QBlockParameters(non_receive_timeout=3.5)
    assert QBlockParameters(non_timeout=4.0).receive_timeout == 8.0  # 4 x 1.5 + 1 = 7 <= 8


@pytest.mark.parametrize(
    "bad",
    [{"max_payloads": 0}, {"non_max_retransmit": -1}, {"non_timeout": 0.0}, {"non_partial_timeout": 0.0}],
)
def test_impossible_parameters_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        QBlockParameters(**bad)


def test_limits_must_be_consistent() -> None:
    with pytest.raises(ValueError):
        QBlockLimits(per_peer=5, total=4)
