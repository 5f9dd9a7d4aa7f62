"""Session parameters, NON retransmission schedule (RFC 7252 §4.8) and reconnect back-off, with fake randomness."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from opendots.signal.client.core.timing import (
    ConfigValueError,
    ReconnectBackoff,
    SessionParameters,
    SignalConfig,
    config_put_body,
    retransmission_schedule,
)


def test_default_schedule_doubles_from_a_randomised_first_timeout() -> None:
    for seed in range(20):
        offsets = retransmission_schedule(SessionParameters(), random.Random(seed))
        first = offsets[1]
        assert 2.0 <= first <= 3.0  # ACK_TIMEOUT * [1, ACK_RANDOM_FACTOR]
        assert offsets == pytest.approx([0, first, 3 * first, 7 * first, 15 * first])


def test_schedule_follows_the_negotiated_parameters() -> None:
    parameters = SessionParameters(max_retransmit=5, ack_timeout=Decimal("1.00"), ack_random_factor=Decimal("1.00"))
    assert retransmission_schedule(parameters) == [0, 1, 3, 7, 15, 31, 63]
    no_retries = SessionParameters(max_retransmit=0, ack_timeout=Decimal("4.00"), ack_random_factor=Decimal("1.00"))
    assert retransmission_schedule(no_retries) == [0, 4]


def test_schedule_respects_the_no_rtt_floor() -> None:
    parameters = SessionParameters(max_retransmit=3, ack_timeout=Decimal("1.00"), ack_random_factor=Decimal("1.00"))
    assert retransmission_schedule(parameters, min_interval=3.0) == [0, 3, 6, 10, 18]


def test_reconnect_backoff() -> None:
    backoff = ReconnectBackoff(min_delay=60, max_delay=300, rng=random.Random(1))
    assert backoff.next_delay() == 0  # the first attempt after a loss is immediate
    delays = [backoff.failed() for _ in range(6)]
    for delay, base in zip(delays, [60, 120, 240, 300, 300, 300], strict=True):
        assert base <= delay <= base * 1.1
    backoff.succeeded()
    assert backoff.next_delay() == 0
    with pytest.raises(ValueError):
        ReconnectBackoff(min_delay=10, max_delay=5)


RFC_FIGURE_20_IDLE = {
    "heartbeat-interval": {"max-value": 240, "min-value": 15, "current-value": 91},
    "missing-hb-allowed": {"max-value": 20, "min-value": 3, "current-value": 4},
    "ack-timeout": {"max-value-decimal": "30.00", "min-value-decimal": "1.00", "current-value-decimal": "2.50"},
}


def test_signal_config_from_a_get_response() -> None:
    body = {"ietf-dots-signal-channel:signal-config": {"idle-config": RFC_FIGURE_20_IDLE}}
    config = SignalConfig.from_body(body)
    assert config.idle == SessionParameters(heartbeat_interval=91, missing_hb_allowed=4, ack_timeout=Decimal("2.5"))
    assert config.mitigating == SessionParameters()
    assert config.active(True) is config.mitigating and config.active(False) is config.idle
    with pytest.raises(ConfigValueError):
        SignalConfig.from_body({"other": {}})


def test_config_put_body_matches_rfc_figure_23_shape() -> None:
    body = config_put_body(
        mitigating={"heartbeat_interval": 30, "ack_timeout": 2, "ack_random_factor": "1.5"},
        idle={"heartbeat_interval": 0},
    )
    assert body == {
        "ietf-dots-signal-channel:signal-config": {
            "mitigating-config": {
                "heartbeat-interval": {"current-value": 30},
                "ack-timeout": {"current-value-decimal": "2.00"},
                "ack-random-factor": {"current-value-decimal": "1.50"},
            },
            "idle-config": {"heartbeat-interval": {"current-value": 0}},
        }
    }
    with pytest.raises(ConfigValueError, match="unknown"):
        config_put_body(idle={"heartbeat": 3})
    with pytest.raises(ConfigValueError, match="at least one"):
        config_put_body()
