"""[signal] renewal_slack: how far ahead a refresh's stored expiry is written (refreshes written behind)."""

from __future__ import annotations

import pytest

from opendots.config import ConfigError
from opendots.signal.server.shell.settings import RENEWAL_SLACK, settings_from_table


def test_refreshes_are_written_behind_by_default_and_zero_writes_every_one() -> None:
    assert settings_from_table([], {}).renewal_slack == RENEWAL_SLACK == 30.0
    assert settings_from_table([], {"renewal_slack": 0}).renewal_slack == 0.0
    assert settings_from_table([], {"renewal_slack": 2.5}).renewal_slack == 2.5


@pytest.mark.parametrize("value", [-1, 3601, True, "30"])
def test_a_renewal_slack_that_is_not_seconds_from_0_to_3600_stops_the_start(value: object) -> None:
    with pytest.raises(ConfigError, match="renewal_slack"):
        settings_from_table([], {"renewal_slack": value})
