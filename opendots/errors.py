"""The package's errors an operator can meet, and the exit status of each kind.

Every error that reaches the command line derives from OpenDotsError; `opendots.cli.main` turns it into one line on
stderr and its kind's exit status (sysexits.h values, as FastNetMon's hook already used). Exceptions that only steer
control flow inside a layer (a CoAP or RESTCONF refusal on its way to becoming a response) are not among them.
"""

from __future__ import annotations


class OpenDotsError(Exception):
    """Base of the package's operator-facing errors."""

    exit_code = 1


class UsageError(OpenDotsError):
    """A command-line value or request argument that cannot be used (a malformed scope, a port out of range)."""

    exit_code = 64  # EX_USAGE


class RefusedError(OpenDotsError):
    """The peer (DOTS server, client agent, operator socket) was reached and answered, but not with success."""

    exit_code = 65  # EX_DATAERR


class UnavailableError(OpenDotsError):
    """No peer could be reached, or none answered in time: no server, no agent, a failed handshake."""

    exit_code = 69  # EX_UNAVAILABLE


class ConfigError(OpenDotsError, ValueError):
    """A configuration file (or a credential it names) is missing, malformed, or holds a value that cannot be used."""

    exit_code = 78  # EX_CONFIG
