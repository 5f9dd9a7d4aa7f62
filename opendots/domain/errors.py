"""The one error of the domain layer."""

from __future__ import annotations

from opendots.errors import UsageError


class ScopeError(UsageError, ValueError):
    """A mitigation scope member that the YANG types (or RFC 9132 §4.4.1.1) forbid; the message names the member and
    says why. The signal server answers it with 4.00 and the message as diagnostic; the client refuses locally."""
