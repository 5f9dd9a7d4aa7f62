"""The top-level `opendots --help` shows each verb's line from opendots.cli.main.VERBS without importing it
(issue 20): those lines must stay the verbs' own, and every verb must still load and be reachable."""

from __future__ import annotations

import click
from click.testing import CliRunner

from opendots.cli.lazy import LazyGroup, load, static_line
from opendots.cli.main import VERBS, cli


def test_every_static_help_line_is_the_first_sentence_of_the_verbs_own_help() -> None:
    for name, (loader, line) in VERBS.items():
        command = load(loader)
        assert command.name == name
        for limit in (30, 45, 80, 10_000):
            assert static_line(line, limit) == command.get_short_help_str(limit), name


def test_the_top_level_help_is_the_same_before_and_after_every_verb_is_loaded() -> None:
    lazy = LazyGroup(name="opendots", lazy=VERBS)
    before = CliRunner().invoke(lazy, ["--help"], prog_name="opendots").output
    eager = click.Group(name="opendots", commands=[load(loader) for loader, _ in VERBS.values()])
    assert before == CliRunner().invoke(eager, ["--help"], prog_name="opendots").output
    assert all(f"\n  {name} " in before for name in VERBS)


def test_a_verb_is_loaded_when_invoked_and_the_client_group_keeps_its_telemetry_verbs() -> None:
    result = CliRunner().invoke(cli, ["client", "telemetry", "--help"], prog_name="opendots")
    assert result.exit_code == 0, result.output
    assert "Usage: opendots client telemetry" in result.output and "RFC 9244" in result.output


def test_an_unknown_verb_is_still_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["nosuchverb"], prog_name="opendots")
    assert result.exit_code == 2 and "No such command 'nosuchverb'" in result.output
