"""The shared operations of the agent's control API (opendots.signal.client.shell.operations) check their arguments
before anything is sent or allocated."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.signal.client.shell.operations import OperationError
from tests.helpers.client_core import offline_operations


async def test_operations_refuse_bad_arguments_before_sending(tmp_path: Path) -> None:
    operations = offline_operations(tmp_path)
    cases = [
        ("mitigate", {}, "missing argument 'scope'"),
        ("mitigate", {"scope": {"lifetime": 60}}, "at least one target"),
        ("mitigate", {"scope": {"target-prefix": ["192.0.2.0/24"]}, "mid": "7"}, "must be an integer"),
        ("mitigate", {"scope": {"target-prefix": ["192.0.2.0/24"], "target-port-range": [{}]}}, "bad scope"),
        ("withdraw", {}, "missing argument 'mid'"),
        ("efficacy", {"mid": 1, "attack-status": "under-attack"}, "not one of this client's"),
        ("status", {"content": "z"}, "content filter"),
        ("config-set", {"idle": {"nonsense": 1}}, "unknown session parameter"),
        ("config-set", {"idle": 5}, "must be an object"),
        ("launch", {}, "unknown operation"),
    ]
    for operation, args, message in cases:
        with pytest.raises(OperationError, match=message):
            await operations.dispatch(operation, args)
    assert operations.core.store.peek_next_mid() == 0  # nothing was allocated by refused requests
