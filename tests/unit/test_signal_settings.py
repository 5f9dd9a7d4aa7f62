"""The [signal] table of server.toml: every key parsed, bad values refused with the key named."""

from __future__ import annotations

import pytest

from opendots.config import ConfigError
from opendots.signal.server.settings import settings_from_table


def test_signal_table_keys_reach_the_settings(server_config):
    settings = settings_from_table(
        server_config.clients,
        {
            "max_lifetime": 7200,
            "allow_indefinite": False,
            "cross_client_conflicts": "accept",
            "counters_interval": 2.5,
            "active_but_terminating": 30,
        },
    )
    assert settings.max_lifetime == 7200 and settings.allow_indefinite is False
    assert settings.cross_client_conflicts == "accept"
    assert settings.counters_interval == 2.5 and settings.active_but_terminating == 30
    assert settings_from_table(server_config.clients, {}).counters_interval == 10.0
    gateway = server_config.clients[0].name
    assert settings_from_table(server_config.clients, {"gateways": [gateway]}).trusted_gateways == {gateway}
    assert settings_from_table(server_config.clients, {}).trusted_gateways == frozenset()
    limited = settings_from_table(server_config.clients, {"heartbeat_interval_limits": [1, 600]}).limits
    assert limited.heartbeat_interval == (1, 600) and limited.missing_hb_allowed == (3, 20)  # others: RFC defaults


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"colour": "blue"}, "unknown keys"),
        ({"counters_interval": 0}, "counters_interval"),
        ({"counters_interval": "soon"}, "could not convert"),
        ({"cross_client_conflicts": "maybe"}, "cross_client_conflicts"),
        ({"max_lifetime": "long"}, "invalid literal"),
        ({"gateways": ["nobody-configured"]}, "not configured"),
        ({"gateways": "client"}, "list of client names"),
        ({"heartbeat_interval_limits": [20, 10]}, "0 < min <= max"),
        ({"heartbeat_interval_limits": 15}, "0 < min <= max"),
        ({"missing_hb_allowed_limits": [16, 20]}, "leaves out the default"),
    ],
)
def test_bad_signal_table_values_are_refused(server_config, table, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_table(server_config.clients, table)
