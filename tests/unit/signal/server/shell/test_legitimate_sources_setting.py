"""[signal] legitimate_sources of a Call Home DOTS server's configuration (RFC 9066 §5.3.1, conflict cause 4)."""

from __future__ import annotations

import ipaddress

import pytest

from opendots.config import ConfigError
from opendots.signal.server.shell.settings import settings_from_table


def test_legitimate_sources_are_read_as_prefixes() -> None:
    settings = settings_from_table([], {"legitimate_sources": ["192.0.2.53/32", "2001:db8::/64"]})
    assert settings.legitimate_sources == (ipaddress.ip_network("192.0.2.53/32"), ipaddress.ip_network("2001:db8::/64"))


@pytest.mark.parametrize("value", ["192.0.2.53/32", ["192.0.2.53/16"], [53]])
def test_legitimate_sources_that_are_not_a_list_of_prefixes_stop_the_start(value: object) -> None:
    with pytest.raises(ConfigError, match="legitimate_sources"):
        settings_from_table([], {"legitimate_sources": value})
