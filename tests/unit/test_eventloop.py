"""opendots.eventloop: the loop the server processes run on."""

from __future__ import annotations

import pytest

from opendots import eventloop


async def _loop_name() -> str:
    return eventloop.running_loop_name()


@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_each_choice_runs_on_its_loop(choice: eventloop.EventLoopChoice, expected: str):
    assert eventloop.run(_loop_name(), choice) == expected


def test_asking_for_a_loop_that_is_not_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with pytest.raises(eventloop.EventLoopUnavailable, match="uvloop package is not installed"):
        eventloop.run(_loop_name(), "uvloop")
    assert eventloop.run(_loop_name(), "auto") == "asyncio"  # auto falls back


@pytest.mark.parametrize(
    "command", [["server", "--config", "{dir}/server.toml"], ["client", "run", "--config", "{dir}/client.toml"]]
)
def test_the_server_and_the_agent_refuse_a_missing_uvloop_in_one_line(
    command: list[str], tmp_path, monkeypatch: pytest.MonkeyPatch
):
    import sys

    from click.testing import CliRunner

    from opendots.cli.certs import init_pki
    from opendots.cli.main import cli

    init_pki(tmp_path)
    monkeypatch.setitem(sys.modules, "uvloop", None)
    arguments = [part.replace("{dir}", str(tmp_path)) for part in command] + ["--event-loop", "uvloop"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 69 and "uvloop package is not installed" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
