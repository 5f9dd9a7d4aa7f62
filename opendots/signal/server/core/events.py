"""What the core asks its surroundings to do: small immutable values, returned in order of occurrence.

Mitigation events carry an opendots.domain.MitigationScope ready for a Mitigator; names
(target-fqdn, target-uri hosts) are listed apart because resolving them is I/O the core does not do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from opendots.domain import MitigationScope


@dataclass(frozen=True)
class _ScopeEvent:
    client: str
    """ClientAuthorization.name of the owner."""
    cuid: str
    mid: int
    scope: MitigationScope
    """Prefixes (aliases expanded), ports and protocols; scope.key is "<cuid>/<mid>"."""
    names: tuple[str, ...] = ()
    """FQDNs and URI hosts still to resolve and add to the scope."""


@dataclass(frozen=True)
class MitigationActivated(_ScopeEvent):
    """Start enforcing a mitigation: call Mitigator.apply(scope)."""


@dataclass(frozen=True)
class MitigationUpdated(_ScopeEvent):
    """An enforced mitigation changed (refresh after re-activation): call Mitigator.update(scope)."""


@dataclass(frozen=True)
class MitigationWithdrawn:
    """Stop enforcing: call Mitigator.withdraw(key)."""

    client: str
    cuid: str
    mid: int
    key: str
    reason: str
    """"client" (DELETE, after active-but-terminating), "superseded" (higher 'mid' overlap),
    "server" (deactivated by the server: overlap with preconfigured requests, §4.4.1.3), "operator" (terminated
    by the server's operator, status 6)."""


@dataclass(frozen=True)
class MitigationExpired:
    """The lifetime ran out without a refresh: call Mitigator.withdraw(key) if it was enforced."""

    client: str
    cuid: str
    mid: int
    key: str
    was_enforced: bool


@dataclass(frozen=True)
class MitigationChanged:
    """Notify the observers of this client's mitigation (Observe on mitigate/cuid=..[/mid=..], §4.4.2.1).

    Only observers authenticated as `client` may receive it: that is the isolation boundary.
    """

    client: str
    cuid: str
    mid: int
    render: Callable[[], dict[str, Any]] = field(repr=False)
    """Builds the notification body from the state captured when the event was made (see `snapshot`)."""
    status: str | None = None
    """The status label the notification reports (for the audit log, which must not render every body); None:
    unchanged by this event (an ACL activation)."""

    @cached_property
    def snapshot(self) -> dict[str, Any]:
        """The notification body for observers of this one 'mid' (a final one for removed mitigations);
        observers of all the client's mitigations re-render with a GET through the core. Rendered on first use:
        most changes have no observer, and rendering is a sizeable share of a request's cost."""
        return self.render()


@dataclass(frozen=True)
class SessionConfigChanged:
    """The session configuration of `client` changed: notify its /config observers, re-arm timers."""

    client: str


@dataclass(frozen=True)
class TelemetryChanged:
    """`client`'s pre-or-ongoing-mitigation telemetry under `cuid` changed (RFC 9244 §8.2): notify its /tm
    observers of that cuid, and them only."""

    client: str
    cuid: str


@dataclass(frozen=True)
class TelemetrySetupChanged:
    """`client`'s telemetry setups under `cuid` were installed, replaced or deleted (RFC 9244 §7): nothing is
    notified (/tm-setup is not observable), the operator's audit log records it."""

    client: str
    cuid: str


@dataclass(frozen=True)
class HeartbeatDue:
    """Send a Non-confirmable PUT /hb to `client` (§4.7) with this peer-hb-status."""

    client: str
    peer_hb_status: bool


@dataclass(frozen=True)
class PeerLost:
    """No traffic from `client` for missing-hb-allowed heartbeat intervals: its session is lost (§4.7)."""

    client: str


@dataclass(frozen=True)
class PeerBack:
    """Traffic from a client whose session had been declared lost. Mitigations triggered by the loss stay."""

    client: str


@dataclass(frozen=True)
class RedirectionChanged:
    """The operator set or cleared the alternate server: notify every observer with 5.03 (§4.6)."""

    body: dict[str, Any] | None
    max_age: int | None


Event = (
    MitigationActivated
    | MitigationUpdated
    | MitigationWithdrawn
    | MitigationExpired
    | MitigationChanged
    | SessionConfigChanged
    | TelemetryChanged
    | TelemetrySetupChanged
    | HeartbeatDue
    | PeerLost
    | PeerBack
    | RedirectionChanged
)


def describe(event: Event) -> str:
    """An event as a log line names it, in DOTS terms: its kind, the client, cuid and mid it concerns."""
    words = [type(event).__name__]
    for name in ("client", "cuid", "mid"):
        value = getattr(event, name, None)
        if value is not None:
            words.append(f"{name} {value}")
    return " ".join(words)
