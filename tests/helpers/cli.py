"""Running the `opendots` command in-process (click's runner) and checking its one-line errors."""

from __future__ import annotations

from click.testing import CliRunner, Result

from opendots.cli.main import cli

EX_USAGE_CLICK, EX_DATAERR, EX_CONFIG = 2, 65, 78


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output
