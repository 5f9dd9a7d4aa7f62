"""A mitigation held by the server: its stored record, its parsed request, counters; rendering (Figure 14)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from opendots.domain import Counters, MitigationScope, Targets, mitigation_key
from opendots.domain.targets import SOURCE_MEMBERS, uri_host
from opendots.signal.server.core.messages import ENFORCING, MITIGATION_SCOPE, Status
from opendots.signal.server.core.scope import ACL_LIST, MitigationRequest
from opendots.store.records import MitigationRecord

CONFIG_MEMBERS = frozenset(
    {
        "target-prefix",
        "target-port-range",
        "target-protocol",
        "target-fqdn",
        "target-uri",
        "alias-name",
        "lifetime",
        "trigger-mitigation",
        ACL_LIST,  # RFC 9133: replayed like the other request parameters
        *SOURCE_MEMBERS,  # RFC 9066 §5.3.1: only a Call Home DOTS server accepts (and so stores) them
    }
)

_STATUSES = {int(status): status for status in Status}
_RECORD_FIELDS = frozenset(f.name for f in fields(MitigationRecord))


@dataclass
class Mitigation:
    record: MitigationRecord
    request: MitigationRequest
    targets: Targets
    """The request's targets with aliases expanded: what overlap checks and the mitigator use."""
    counters: Counters = field(default_factory=Counters)
    conflict: dict[str, Any] | None = None
    payload: bytes | None = None
    """The CBOR body `request` was parsed from, when it came over the wire: a PUT repeating it byte for byte needs no
    decoding (None after a restart, or when the request came decoded)."""
    telemetry: dict[str, Any] | None = None
    """RFC 9244 §9.2 attributes computed from the counters (ServerTelemetry), when the client asked for them."""
    authorized_for: Any = None
    """The ClientAuthorization `targets` were last found within (check_authorized): a refresh by that very object
    with the very same targets needs no check again (both are immutable; an operator reload builds new ones)."""
    renewable: Any = None
    """The ServerSettings under which a PUT repeating `payload` by `authorized_for` is a pure renewal (set by a
    refresh that found it so, see opendots.signal.server.core.renewals): only the expiry moves. None: take the general
    path. Every other change (`with_changes`, a new Mitigation) drops it."""
    stored_expiry: float | None = None
    """Set by a refresh written ahead (`ServerSettings.renewal_slack`): the store holds `record` with this expiry,
    later than the exact one. None: the store holds `record` as it is (every other write stores it whole, which is
    why `with_record` does not carry this over)."""

    @property
    def key(self) -> tuple[str, int]:
        return self.record.key

    @property
    def mitigator_key(self) -> str:
        return mitigation_key(self.record.cuid, self.record.mid)

    @property
    def status(self) -> Status:
        status = _STATUSES.get(self.record.status)  # read several times per request: no Enum call each time
        return status if status is not None else Status(self.record.status)

    @property
    def enforcing(self) -> bool:
        return self.record.status in ENFORCING  # an IntEnum member hashes as its integer

    @property
    def terminating(self) -> bool:
        return self.record.terminating_until is not None

    def with_record(self, **changes: Any) -> Mitigation:
        return self.with_changes(changes)

    def with_changes(
        self, changes: dict[str, Any], stored_expiry: float | None = None, renewable: Any = None
    ) -> Mitigation:
        """A copy with its record's CHANGES (MitigationRecord fields) made, STORED_EXPIRY and RENEWABLE (both
        dropped unless given: only a pure renewal keeps them, opendots.signal.server.core.renewals)."""
        # Called on every refresh: both copies built directly (dataclasses.replace on both is ~3x the cost). The
        # record is a frozen dataclass without __post_init__, so a copy of its attributes is the whole of it; the
        # Mitigation is copied by its attributes, not __init__ (a third less).
        if not changes.keys() <= _RECORD_FIELDS:
            raise TypeError(f"MitigationRecord has no field {sorted(changes.keys() - _RECORD_FIELDS)}")
        record = object.__new__(MitigationRecord)
        object.__setattr__(record, "__dict__", {**self.record.__dict__, **changes})
        copy = object.__new__(type(self))
        attributes = self.__dict__.copy()
        attributes["record"], attributes["stored_expiry"], attributes["renewable"] = record, stored_expiry, renewable
        copy.__dict__ = attributes
        return copy

    def expiry_stored(self) -> float | None:
        """The expiry the store holds for this mitigation (None: indefinite)."""
        return self.stored_expiry if self.stored_expiry is not None else self.record.expires_at

    def remaining_lifetime(self, now: float) -> int:
        if self.record.expires_at is None:
            return -1
        # Round away float noise so a fresh 3600 s mitigation reports 3600, not 3599.
        return max(0, math.ceil(round(self.record.expires_at - now, 6)))

    def deadline(self) -> float | None:
        if self.record.terminating_until is not None:
            return self.record.terminating_until
        return self.record.expires_at

    def mitigation_scope(self) -> MitigationScope:
        record = self.record
        return MitigationScope.of(self.targets, record.client, record.cuid, record.mid)

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.targets.target_fqdns, *(uri_host(uri) for uri in self.targets.target_uris))))

    def render(self, now: float, content: str = "a", status: Status | None = None) -> dict[str, Any]:
        """One 'scope' entry of a GET response or notification; CONTENT is the 'c' Uri-Query (c, n or a)."""
        status = status or self.status
        entry: dict[str, Any] = {"mid": self.record.mid}
        if content in ("a", "n") and status is not Status.ATTACK_MITIGATION_SIGNAL_LOSS:
            entry["mitigation-start"] = str(int(self.record.started_at))
        if content in ("a", "c"):
            for name, value in self.record.request.items():
                if name in CONFIG_MEMBERS:
                    entry[name] = value
            gone = status in (Status.ATTACK_MITIGATION_TERMINATED, Status.ATTACK_MITIGATION_WITHDRAWN)
            entry["lifetime"] = 0 if gone else self.remaining_lifetime(now)
        if content in ("a", "n"):
            entry["status"] = status.label
            if self.conflict:
                entry["conflict-information"] = self.conflict
            for name in ("bytes_dropped", "bps_dropped", "pkts_dropped", "pps_dropped"):
                value = getattr(self.counters, name)
                if value is not None:  # never claim a count nobody measured
                    entry[name.replace("_", "-")] = str(value)
            if self.telemetry:
                entry.update(self.telemetry)
        return entry

    def snapshot(self, now: float, status: Status | None = None) -> dict[str, Any]:
        """The full ('c=a') body of a notification about this mitigation; see `content_view` for 'c' or 'n'."""
        return {MITIGATION_SCOPE: {"scope": [self.render(now, status=status)]}}

    def snapshot_later(self, now: float, status: Status | None = None) -> Callable[[], dict[str, Any]]:
        """`snapshot(now, status)` of the mitigation as it is now, rendered when called. Safe to defer: a copy is
        taken, and its parts (record, request, targets, counters, conflict, telemetry) are only ever replaced, not
        changed."""
        frozen = Mitigation(self.record, self.request, self.targets, self.counters, self.conflict, None, self.telemetry)
        return functools.partial(frozen.snapshot, now, status)


def content_view(snapshot: dict[str, Any], content: str) -> dict[str, Any]:
    """SNAPSHOT (a one-entry notification body) reduced to what Uri-Query 'c=CONTENT' asks for (RFC 9132 §4.4.2,
    Table 2): 'c' the configuration members and lifetime, 'n' the rest (status, start, counters, conflict)."""
    if content == "a":
        return snapshot
    configuration = CONFIG_MEMBERS | {"lifetime"}
    entries = [
        {name: value for name, value in entry.items() if name == "mid" or (name in configuration) == (content == "c")}
        for entry in snapshot[MITIGATION_SCOPE]["scope"]
    ]
    return {MITIGATION_SCOPE: {"scope": entries}}
