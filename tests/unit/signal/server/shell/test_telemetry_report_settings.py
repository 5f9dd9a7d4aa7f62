"""The RFC 9244 §8.2 caps of server.toml's [signal] table: reports per client and top talkers per report."""

from __future__ import annotations

import pytest

from opendots.config import ConfigError
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.signal.server.shell.settings import settings_from_table


def test_the_report_caps_reach_the_policy(server_config):
    table = {"max_telemetry_reports_per_client": 5, "max_telemetry_top_talkers": 1000}
    settings = settings_from_table(server_config.clients, table)
    assert settings.telemetry == TelemetryPolicy(max_reports_per_client=5, max_top_talkers=1000)


@pytest.mark.parametrize(
    "table",
    [
        {"max_telemetry_reports_per_client": 0},
        {"max_telemetry_top_talkers": -1},
        {"max_telemetry_top_talkers": True},
        {"max_telemetry_top_talkers": "many"},
    ],
)
def test_bad_report_caps_are_refused_with_the_key_named(server_config, table):
    with pytest.raises(ConfigError, match=next(iter(table))):
        settings_from_table(server_config.clients, table)
