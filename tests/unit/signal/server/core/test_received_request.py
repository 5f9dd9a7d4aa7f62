"""The shell's lean path builds its Requests with `received_request`: equal to what the dataclass builds, field for
field, defaults included, and as frozen."""

from __future__ import annotations

import dataclasses

import pytest

from opendots.signal.server.core.messages import Request, received_request


def test_a_received_request_equals_the_one_the_dataclass_builds():
    args = ("PUT", ("mitigate", "cuid=a", "mid=1"), "a", b"\xa1\x01\x02", ("c=n",), True)
    built = received_request(*args)
    assert built == Request("PUT", args[1], peer="a", payload=args[3], query=args[4], if_match_empty=True)
    assert dataclasses.asdict(built) == dataclasses.asdict(
        Request("PUT", args[1], "a", None, *args[4:5], None, True, args[3])
    )
    assert (built.body, built.observe) == (None, None)
    assert hash(built) == hash(Request("PUT", args[1], peer="a", payload=args[3], query=args[4], if_match_empty=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.method = "GET"  # type: ignore[misc]
