"""A click group whose verbs are imported only when one is used.

Every `opendots` call used to import every verb's module (aiohttp, aiocoap, pyOpenSSL, the YANG model...), so
`opendots --help` and each FastNetMon `ban` (one process per call) paid ~0.4-0.6 s before doing anything. Here the
top level registers each verb's name and one-line help statically; the verb's module is imported when the verb is
invoked (or its own --help asked for). tests/unit/cli/test_lazy_commands.py keeps the static lines true.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import click

from opendots.cli.common import OpenDotsGroup

# A verb's loader: "module:attribute", or a callable returning the command (when loading needs more than an import).
Loader = str | Callable[[], click.Command]


def load(loader: Loader) -> click.Command:
    if callable(loader):
        return loader()
    module, _, attribute = loader.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{loader} is not a click command")
    return command


def static_line(line: str, limit: int) -> str:
    """LINE as click shortens a command's help to LIMIT characters in its group's --help."""
    return click.Command(None, help=line).get_short_help_str(limit)


class LazyGroup(OpenDotsGroup):
    """An OpenDotsGroup whose LAZY verbs (name → (loader, short help)) are imported on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, tuple[Loader, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[Loader, str]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load(self.lazy[cmd_name][0]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def verb_line(self, ctx: click.Context, name: str, limit: int) -> str | None:
        """The verb's line in the group's --help, without importing it (None: a hidden or unknown verb)."""
        if name in self.commands or name not in self.lazy:
            command = self.get_command(ctx, name)
            return None if command is None or command.hidden else command.get_short_help_str(limit)
        return static_line(self.lazy[name][1], limit)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own layout (Group.format_commands), with the static lines for the verbs not imported yet.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, line) for name in names if (line := self.verb_line(ctx, name, limit)) is not None]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
