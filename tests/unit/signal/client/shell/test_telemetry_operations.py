"""The control API's RFC 9244 operations check their arguments before anything is sent or a tsid/tmid is spent."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.signal.client.core.telemetry_bodies import config_entry, report_entry
from opendots.signal.client.shell.operations import OperationError
from tests.helpers.client_core import offline_operations


async def test_telemetry_operations_refuse_bad_arguments_before_sending(tmp_path: Path) -> None:
    operations = offline_operations(tmp_path)
    cases = [
        ("telemetry-setup-set", {}, "'entry' must be an object"),
        ("telemetry-setup-set", {"entry": {"current-config": {}, "baseline": []}}, "one of current-config"),
        ("telemetry-setup-delete", {"kind": "everything"}, "setup kind must be one of"),
        ("telemetry-setup-delete", {"kind": "baseline"}, "installed no baseline"),
        ("telemetry-setup-get", {"tsid": "1"}, "must be an integer"),
        ("telemetry-setup-get", {"content": "x"}, "content filter"),
        ("telemetry-report", {"entries": "many"}, "must be a list"),
        ("telemetry-report", {"entries": []}, "at least one entry"),
        ("telemetry-get", {"tmid": -1}, "outside 0-"),
        ("telemetry-delete", {"tmid": True}, "must be an integer"),
    ]
    for operation, args, message in cases:
        with pytest.raises(OperationError, match=message) as raised:
            await operations.dispatch(operation, args)
        assert raised.value.code == "4.00"
    # Nothing was spent on the refused requests.
    assert operations.core.telemetry.setup_set(config_entry(low_percentile=1)).tsid == 0
    assert operations.core.telemetry.report([report_entry(["192.0.2.1"])]).tmid == 0
