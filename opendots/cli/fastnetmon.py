"""`opendots fastnetmon-hook`: FastNetMon's notify script (see opendots.integrations.fastnetmon for its config)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opendots.integrations.fastnetmon import EXIT_USAGE, configure_logging, run_hook


@click.command("fastnetmon-hook", context_settings={"ignore_unknown_options": True})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("client.toml"),
    show_default=True,
    envvar="OPENDOTS_CLIENT_CONFIG",
    help="Client configuration (its directory also holds the IP → mid state file).",
)
@click.option("--lifetime", type=int, default=3600, show_default=True, help="Mitigation lifetime, seconds (-1: ∞).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Give up after this many seconds.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Append log lines here.")
@click.argument("notification", nargs=-1, type=click.UNPROCESSED)
def fastnetmon_hook(
    config_path: Path, lifetime: int, timeout: float, log_file: Path | None, notification: tuple[str, ...]
) -> None:
    """Called by FastNetMon as `... IP DIRECTION PPS ban|unban|attack_details` (details on stdin)."""
    try:
        configure_logging(log_file)
    except OSError as problem:
        click.echo(f"cannot open the log file: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    sys.exit(run_hook(list(notification), config_path, lifetime=lifetime, timeout=timeout, stdin=stdin))


if __name__ == "__main__":  # `python -m opendots.cli.fastnetmon`, until the command is registered in main.py
    fastnetmon_hook()
