"""What the signal channel stores, as plain values, and the change set one decision writes.

No database here: the sans-I/O server core builds these values, and a store (SQLite, `SignalStore`; PostgreSQL,
whose writes are awaited: `AsyncSignalStore` in opendots.signal.server.shell.durable) makes them durable. Times
are absolute (seconds since the epoch), so a restarted server computes each mitigation's remaining lifetime from
the same row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class StoreError(Exception):
    """A store could not make a change durable (disk full, database gone, ...): nothing of the change was kept.

    Stores raise this, never their driver's own errors, so the layers above need no database module."""


class StoreUnavailable(StoreError):
    """The store did not answer in time or could not be reached: try again later (RESTCONF 503), not a refusal."""


@dataclass(frozen=True)
class MitigationRecord:
    """One mitigation request accepted from a client."""

    client: str
    """Name of the ClientAuthorization that owns it (isolation boundary)."""
    cuid: str
    mid: int
    request: dict[str, Any]
    """The scope entry's configuration members as the client sent them (YANG-JSON)."""
    lifetime: int
    """Granted lifetime in seconds, -1 for indefinite."""
    status: int
    started_at: float
    """'mitigation-start' (epoch seconds)."""
    expires_at: float | None
    """Absolute end of the lifetime; None when indefinite."""
    terminating_until: float | None = None
    """End of the active-but-terminating period after a DELETE (§4.4.4)."""
    attack_status: int | None = None
    cdid: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.cuid, self.mid)


@dataclass(frozen=True)
class SessionConfigRecord:
    client: str
    config: dict[str, Any]
    """SessionConfig.to_json() of the signal core (sid included)."""


@dataclass(frozen=True)
class CuidRecord:
    """A CUID some client has used; no other client may use it (§4.4.1.1, CUID collision)."""

    cuid: str
    client: str
    first_seen: float


@dataclass(frozen=True)
class TelemetrySetupRecord:
    """One RFC 9244 §7 telemetry setup a client installed: a configuration, a pipe or baselines, under a 'tsid'."""

    client: str
    """Name of the ClientAuthorization that owns it (isolation boundary)."""
    cuid: str
    tsid: int
    setup: dict[str, Any]
    """The 'telemetry' entry as accepted (YANG-JSON, without 'tsid'): 'current-config', 'total-pipe-capacity' or
    'baseline'."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.cuid, self.tsid)


@dataclass(frozen=True)
class TelemetryReportRecord:
    """RFC 9244 §8.2 pre-or-ongoing-mitigation telemetry a client sent under a 'tmid'."""

    client: str
    """Name of the ClientAuthorization that owns it (isolation boundary)."""
    cuid: str
    tmid: int
    entries: list[dict[str, Any]]
    """The 'pre-or-ongoing-mitigation' entries as accepted (YANG-JSON, without 'tmid')."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.cuid, self.tmid)


@dataclass
class SignalChanges:
    """Everything one decision changes; applied atomically."""

    put_mitigations: list[MitigationRecord] = field(default_factory=list)
    renewed_mitigations: list[MitigationRecord] = field(default_factory=list)
    """Stored mitigations whose 'request' is unchanged (a refresh): only the other columns need writing."""
    delete_mitigations: list[tuple[str, int]] = field(default_factory=list)
    put_session_configs: list[SessionConfigRecord] = field(default_factory=list)
    delete_session_configs: list[str] = field(default_factory=list)
    put_cuids: list[CuidRecord] = field(default_factory=list)
    put_telemetry_setups: list[TelemetrySetupRecord] = field(default_factory=list)
    delete_telemetry_setups: list[tuple[str, int]] = field(default_factory=list)
    """(cuid, tsid) of telemetry setups overridden, deleted or reset (RFC 9244 §7)."""
    put_telemetry_reports: list[TelemetryReportRecord] = field(default_factory=list)
    delete_telemetry_reports: list[tuple[str, int]] = field(default_factory=list)
    """(cuid, tmid) of pre-or-ongoing-mitigation telemetry overridden or deleted (RFC 9244 §8.2)."""

    def __bool__(self) -> bool:
        # Asked a few times per request (most store nothing): an `or` chain, no tuple built for any().
        return bool(
            self.put_mitigations
            or self.renewed_mitigations
            or self.delete_mitigations
            or self.put_session_configs
            or self.delete_session_configs
            or self.put_cuids
            or self.put_telemetry_setups
            or self.delete_telemetry_setups
            or self.put_telemetry_reports
            or self.delete_telemetry_reports
        )


@dataclass
class SignalState:
    mitigations: list[MitigationRecord]
    session_configs: list[SessionConfigRecord]
    cuids: list[CuidRecord]
    telemetry_setups: list[TelemetrySetupRecord] = field(default_factory=list)
    telemetry_reports: list[TelemetryReportRecord] = field(default_factory=list)


class SignalStore(Protocol):
    def load(self) -> SignalState: ...

    def apply(self, changes: SignalChanges) -> None:
        """Persist CHANGES atomically; raises StoreError on failure (nothing is then changed)."""
        ...

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every stored row, sorted: lets tests prove a refused request changed nothing."""
        ...

    def close(self) -> None: ...
