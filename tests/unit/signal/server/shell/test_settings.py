"""The [signal] table of server.toml: every key parsed, bad values refused with the key named."""

from __future__ import annotations

import pytest

from opendots.config import ConfigError
from opendots.signal.server.shell.settings import settings_from_table


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


def test_a_client_declared_a_gateway_round_trips_and_a_bad_flag_is_refused(pki_dir, server_config, tmp_path):
    """`gateway = true` in [[clients]] declares a server-domain DOTS gateway for both channels at once."""
    from dataclasses import replace

    from opendots.config import ServerConfig

    server_config.clients = [replace(server_config.clients[0], gateway=True), *server_config.clients[1:]]
    server_config.save(tmp_path / "server.toml")
    text = (tmp_path / "server.toml").read_text()
    assert text.count("gateway = true") == 1
    loaded = ServerConfig.load(tmp_path / "server.toml")
    assert [c.gateway for c in loaded.clients] == [True] + [False] * (len(loaded.clients) - 1)
    (tmp_path / "bad.toml").write_text(text.replace("gateway = true", 'gateway = "yes"'))
    with pytest.raises(ConfigError, match="gateway must be true or false"):
        ServerConfig.load(tmp_path / "bad.toml")
