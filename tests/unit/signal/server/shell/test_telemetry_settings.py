"""The RFC 9244 telemetry setup keys of server.toml's [signal] table: parsed into the policy the core announces
(§7.1.1), bad values refused with the key named."""

from __future__ import annotations

from decimal import Decimal

import pytest

from opendots.config import ConfigError
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.signal.server.shell.settings import settings_from_table


def test_telemetry_keys_reach_the_policy(server_config):
    settings = settings_from_table(
        server_config.clients,
        {
            "telemetry_interval_limits": ["hour", "week"],
            "telemetry_sample_limits": ["minute", "hour"],
            "telemetry_percentile_limits": [5, 95.5],
            "telemetry_notify_interval_limits": [10, 600],
            "telemetry_unit_classes": ["bit-ps"],
            "telemetry_server_originated": True,
            "max_telemetry_setups_per_client": 8,
        },
    )
    assert settings.telemetry == TelemetryPolicy(
        interval=("hour", "week"),
        sample=("minute", "hour"),
        percentiles=(Decimal("5.00"), Decimal("95.50")),
        notify_interval=(10, 600),
        unit_classes=("bit-ps",),
        server_originated=True,
        max_setups_per_client=8,
    )
    assert settings_from_table(server_config.clients, {}).telemetry == TelemetryPolicy()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"telemetry_interval_limits": ["day", "hour"]}, "telemetry_interval_limits"),
        ({"telemetry_interval_limits": ["fortnight", "day"]}, "telemetry_interval_limits"),
        ({"telemetry_sample_limits": "minute"}, "telemetry_sample_limits"),
        ({"telemetry_percentile_limits": [50, 10]}, "telemetry_percentile_limits"),
        ({"telemetry_percentile_limits": [0, 101]}, "telemetry_percentile_limits"),
        ({"telemetry_percentile_limits": "all"}, "telemetry_percentile_limits"),
        ({"telemetry_notify_interval_limits": [0, 10]}, "telemetry_notify_interval_limits"),
        ({"telemetry_unit_classes": ["furlong-ps"]}, "telemetry_unit_classes"),
        ({"telemetry_unit_classes": []}, "telemetry_unit_classes"),
        ({"telemetry_server_originated": "yes"}, "telemetry_server_originated"),
        ({"max_telemetry_setups_per_client": 0}, "max_telemetry_setups_per_client"),
        ({"telemetry_colour": "blue"}, "unknown keys"),
    ],
)
def test_bad_telemetry_keys_are_refused(server_config, table, key):
    with pytest.raises(ConfigError, match=key):
        settings_from_table(server_config.clients, table)
