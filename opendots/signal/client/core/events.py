"""Events the client core hands to its I/O shell (`DotsClientCore.next_event()`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opendots.signal.client.core.requests import DotsRequest


@dataclass(frozen=True)
class SendRequest:
    """The core wants this request sent on the current session (heartbeat, refresh, re-creation, observation)."""

    request: DotsRequest
    reason: str
    """Why, for logs: "heartbeat", "config-refresh", "recreate", "observe", ..."""


@dataclass(frozen=True)
class SessionLost:
    """missing-hb-allowed heartbeats in a row went unanswered and no mitigation is active: reconnect (§4.7)."""

    missed_heartbeats: int


@dataclass(frozen=True)
class SessionDegraded:
    """The heartbeat threshold was reached while a mitigation is active (§4.7, inbound link probably saturated):
    keep using the current session and, in parallel, try to establish a new one."""

    missed_heartbeats: int


@dataclass(frozen=True)
class MitigationUpdated:
    """New information about one of our mitigations (response, notification or poll)."""

    mid: int
    status: str | None
    """iana-dots-signal-channel status enum name, e.g. "attack-mitigation-in-progress"."""
    entry: dict[str, Any]
    """The latest scope entry the server sent for this mid."""


@dataclass(frozen=True)
class MitigationGone:
    """A mitigation is no longer ours to track: withdrawn, expired, terminated, or refused by the server."""

    mid: int
    reason: str


@dataclass(frozen=True)
class MitigationConflict:
    """The server reported a conflict (§4.4.1.3); do not resend before retry_timer."""

    mid: int
    conflict: dict[str, Any]
    retry_timer: int | None


@dataclass(frozen=True)
class CuidCollision:
    """4.09 with conflict-cause cuid-collision: the client must change its cuid (§4.4.1.1)."""

    mid: int


@dataclass(frozen=True)
class ConfigUpdated:
    """The session configuration changed (GET /config answer or notification)."""

    body: dict[str, Any]


@dataclass(frozen=True)
class ConfigRejected:
    """4.22: a value we PUT is out of the server's acceptable range; its GET /config answer has the ranges."""

    code: str
    diagnostic: str | None


@dataclass(frozen=True)
class Redirected:
    """5.03 with redirected-signal (§4.6): move to the alternate server and resend the failed request."""

    alt_server: str
    alt_server_records: tuple[str, ...]
    ttl: int | None
    """Seconds to keep using the alternate server; None: forever (Max-Age 2^32-1); 0: this request only."""
    failed_request: DotsRequest


@dataclass(frozen=True)
class RedirectIgnored:
    """Redirected to a server contacted within the last 5 minutes: a loop (§4.6); alert and stay."""

    alt_server: str


@dataclass(frozen=True)
class RedirectExpired:
    """The alternate server's TTL ran out: go back to the provisioned servers (§4.6)."""

    alt_server: str


@dataclass(frozen=True)
class TelemetrySetupInstalled:
    """The server accepted a telemetry setup (RFC 9244 §7): 2.01 new, 2.04 re-sent or changed."""

    kind: str
    tsid: int
    code: str


@dataclass(frozen=True)
class TelemetrySetupRemoved:
    """A tm-setup DELETE answered 2.02: one tsid, or (None) every setup of the cuid (§7.4)."""

    tsid: int | None


@dataclass(frozen=True)
class TelemetryReported:
    """The server accepted pre-or-ongoing-mitigation telemetry under this tmid (§8.2)."""

    tmid: int


@dataclass(frozen=True)
class TelemetryRefused:
    """A telemetry request failed (4.xx/5.xx): the setup or report is not at the server."""

    request: DotsRequest
    code: str
    diagnostic: str | None


@dataclass(frozen=True)
class TelemetryReceived:
    """The body of a tm-setup or tm GET."""

    body: dict[str, Any]


Event = (
    SendRequest
    | SessionLost
    | SessionDegraded
    | MitigationUpdated
    | MitigationGone
    | MitigationConflict
    | CuidCollision
    | ConfigUpdated
    | ConfigRejected
    | Redirected
    | RedirectIgnored
    | RedirectExpired
    | TelemetrySetupInstalled
    | TelemetrySetupRemoved
    | TelemetryReported
    | TelemetryRefused
    | TelemetryReceived
)


def describe_conflict(conflict: dict[str, Any]) -> str:
    """RFC 9132 §4.4.1 conflict-information in words: the cause, and the mid and targets it conflicts with."""
    scope = conflict.get("conflict-scope") or {}
    words = [str(conflict.get("conflict-cause", "conflict"))]
    if "mid" in scope:
        words.append(f"with mid {scope['mid']}")
    targets = [*scope.get("target-prefix", []), *scope.get("target-fqdn", []), *scope.get("target-uri", [])]
    if targets:
        words.append(f"on {' '.join(str(target) for target in targets)}")
    if "retry-timer" in conflict:
        words.append(f"(retry in {conflict['retry-timer']} s)")
    return " ".join(words)
