"""The [data] table of server.toml: every key reaches the data channel, bad values are refused with the key named."""

from __future__ import annotations

import pytest

from opendots.config import ConfigError
from opendots.data.core.settings import MINIMUM_LIFETIME
from opendots.data.shell.server import CORE_KEY, create_data_app
from opendots.data.shell.settings import data_settings_from_table
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase


def test_data_table_keys_reach_the_settings(server_config):
    gateway = server_config.clients[0]
    settings = data_settings_from_table(
        server_config.clients,
        {
            "gateways": [gateway.name],
            "lifetime": 2 * MINIMUM_LIFETIME,
            "server_id": "dots-edge-7",
            "max_entries": 50,
            "domain_conflicts": "allow",
        },
    )
    assert settings.gateways == {gateway.cuid}  # names in the file, CUIDs where the data channel checks them
    assert settings.lifetime == 2 * MINIMUM_LIFETIME and settings.server_id == "dots-edge-7"
    assert settings.max_entries == 50 and settings.domain_conflicts == "allow"
    defaults = data_settings_from_table(server_config.clients, {})
    assert defaults.gateways == frozenset() and defaults.lifetime == MINIMUM_LIFETIME


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"colour": "blue"}, "unknown keys"),
        ({"gateways": ["nobody"]}, "not configured"),
        ({"gateways": "client"}, "list of client names"),
        ({"lifetime": 3600}, "one week"),
        ({"server_id": ""}, "non-empty"),
        ({"max_entries": 0}, "positive integer"),
        ({"domain_conflicts": "maybe"}, "domain_conflicts"),
    ],
)
def test_bad_data_table_values_are_refused(server_config, table, message):
    with pytest.raises(ConfigError, match=message):
        data_settings_from_table(server_config.clients, table)


def test_the_served_data_channel_uses_the_table(server_config, tmp_path):
    server_config.data = {"gateways": [server_config.clients[0].name], "max_entries": 3}
    app = create_data_app(server_config, SqliteDataChannelStore(SqliteDatabase(tmp_path / "d.db")))
    assert app[CORE_KEY].settings.gateways == {server_config.clients[0].cuid}
    assert app[CORE_KEY].settings.max_entries == 3
