"""opendots.eventloop: the loop the server processes run on."""

from __future__ import annotations

import pytest

from opendots import eventloop


async def _loop_name() -> str:
    return eventloop.running_loop_name()


@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_each_choice_runs_on_its_loop(choice: eventloop.EventLoopChoice, expected: str):
    assert eventloop.run(_loop_name(), choice) == expected
