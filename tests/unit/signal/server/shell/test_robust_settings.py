"""[signal] limits of the RFC 9362 robust-transmission attributes in server.toml: parsed, checked, in force."""

from __future__ import annotations

from decimal import Decimal

import pytest

from opendots.config import ConfigError
from opendots.signal.server.core.sessionconfig import render_config
from opendots.signal.server.shell.settings import settings_from_table


def test_robust_limits_reach_the_settings_and_the_get_body(server_config):
    table = {
        "max_payloads_limits": [5, 20],
        "non_max_retransmit_limits": [2, 6],
        "non_timeout_limits": [1, 10.5],
        "non_receive_timeout_limits": [2.25, 60],
        "non_probing_wait_limits": [30, 300],
        "non_partial_timeout_limits": [60.0, 240],
    }
    settings = settings_from_table(server_config.clients, table)
    limits = settings.limits
    assert limits.max_payloads == (5, 20) and limits.non_max_retransmit == (2, 6)
    assert limits.non_timeout == (Decimal("1.00"), Decimal("10.50"))
    assert limits.non_receive_timeout == (Decimal("2.25"), Decimal("60.00"))
    assert limits.non_partial_timeout == (Decimal("60.00"), Decimal("240.00"))
    assert limits.heartbeat_interval == (15, 240)  # the others keep their defaults
    idle = render_config(settings.session_defaults, limits)["ietf-dots-signal-channel:signal-config"]["idle-config"]
    assert idle["ietf-dots-robust-trans:non-timeout"]["max-value-decimal"] == "10.50"
    assert idle["ietf-dots-robust-trans:non-partial-timeout"] == {
        "max-value-decimal": "240.00",
        "min-value-decimal": "60.00",
        "current-value-decimal": "223.00",
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_payload_limits": [1, 10]}, "unknown keys"),
        ({"max_payloads_limits": [11, 20]}, "leaves out the default max_payloads 10"),
        ({"max_payloads_limits": [0, 20]}, "0 < min <= max"),
        ({"max_payloads_limits": [1.5, 20]}, "0 < min <= max"),
        ({"non_max_retransmit_limits": [4, 8]}, "leaves out the default non_max_retransmit 3"),
        ({"non_timeout_limits": [2.001, 5]}, "0 < min <= max"),
        ({"non_timeout_limits": ["1", "5"]}, "0 < min <= max"),
        ({"non_timeout_limits": [5, 1]}, "0 < min <= max"),
        ({"non_receive_timeout_limits": [4.01, 10]}, "leaves out the default non_receive_timeout 4.00"),
        ({"non_partial_timeout_limits": [10, 200]}, "leaves out the default non_partial_timeout 223.00"),
        ({"non_probing_wait_limits": [10, True]}, "0 < min <= max"),
        ({"non_probing_wait_limits": [10, float("inf")]}, "0 < min <= max"),
    ],
)
def test_bad_robust_limits_are_refused_naming_the_key(server_config, table, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_table(server_config.clients, table)
