"""What every `opendots` command shares: one place that turns the package's errors into one line and an exit
status, and the one `-c/--config` convention.

Exit statuses (sysexits.h): 1 other failures, 2 a command-line usage error (click), 64 an unusable argument,
65 the peer answered but refused, 69 no peer reachable or no answer, 78 a configuration problem.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opendots.errors import OpenDotsError

if TYPE_CHECKING:  # asyncio is for the verbs that run one: not for `opendots --help` (issue 20)
    from opendots import eventloop


class OperatorError(click.ClickException):
    """An OpenDotsError on its way to the terminal: `Error: <message>` on stderr, its kind's exit status."""

    def __init__(self, error: OpenDotsError) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.exit_code = error.exit_code


def _invoke(invoke: Callable[[click.Context], Any], context: click.Context) -> Any:
    try:
        return invoke(context)
    except OpenDotsError as error:
        raise OperatorError(error) from None


class OpenDotsCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        return _invoke(super().invoke, ctx)


class OpenDotsGroup(click.Group):
    """A group whose commands (and sub-groups) report OpenDotsError as one line, whichever group is the entry
    point (the console script, or a test invoking one group)."""

    command_class = OpenDotsCommand
    group_class = type  # sub-groups are OpenDotsGroups too

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke(super().invoke, ctx)


def config_option(default: str, *, name: str = "config") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-c/--config FILE` after the verb (`opendots client status -c pki/client.toml`); the group may take it
    too, before the verb (`opendots client -c pki/client.toml status`): one convention, both places accepted."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        def remember(context: click.Context, _parameter: click.Parameter, value: Path | None) -> Path:
            if value is not None:
                return value
            parent = context.find_object(dict) or {}
            return parent.get("config") or Path(default)

        return click.option(
            "-c",
            "--config",
            name,
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            callback=remember,
            help=f"Configuration file (default: {default}, or the one given before the verb).",
        )(function)

    return decorate


def acl_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """`--acl NAME[=TYPE]` of the mitigation verbs (RFC 9133 'acl-list'), one text each: the verb reads them with
    opendots.signal.client.core.scope.parse_acl, where the names and activation types are checked."""
    return click.option(
        "--acl",
        "acls",
        multiple=True,
        metavar="NAME[=TYPE]",
        help="RFC 9133: a data-channel ACL of this DOTS client at the server and the activation type to give it"
        " (activate-when-mitigating, immediate, deactivate; without =TYPE the ACL keeps its own). Repeatable.",
    )(function)


def group_config_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The group's `-c/--config`, remembered for its verbs (see config_option)."""

    def remember(context: click.Context, _parameter: click.Parameter, value: Path | None) -> Path | None:
        if value is not None:
            context.ensure_object(dict)["config"] = value
        return value

    return click.option(
        "-c",
        "--config",
        "group_config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        expose_value=False,
        callback=remember,
        help=f"Configuration file for every verb (default: {default}).",
    )


class ConfiguredCommand(OpenDotsCommand):
    """A verb whose group keeps the configuration in `ctx.obj["config"]` (opendots data): `-c` is accepted after
    the verb as well, overriding the group's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

        def remember(context: click.Context, _parameter: click.Parameter, value: Path | None) -> None:
            if value is not None:
                context.ensure_object(dict)["config"] = value

        self.params.append(
            click.Option(
                ["-c", "--config", "verb_config"],
                type=click.Path(dir_okay=False, path_type=Path),
                expose_value=False,
                callback=remember,
                help="Configuration file (overrides the one given before the verb).",
            )
        )


def run_service(main: Coroutine[Any, Any, None], event_loop: eventloop.EventLoopChoice) -> None:
    """Run a long-running process's MAIN on EVENT_LOOP until it returns (a signal sets it stopping)."""
    from opendots import eventloop

    try:
        eventloop.run(main, event_loop)
    except OpenDotsError:
        raise  # reported by the group's error handler with its own exit status
    except (OSError, ValueError) as error:  # an address in use or not one: one line, as for any start failure
        raise click.ClickException(str(error)) from None
