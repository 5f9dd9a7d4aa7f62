"""The events a mitigation request's handling emits (opendots.signal.server.core.events): to the client's observers
(MitigationChanged) and to the actuators (activated, updated, withdrawn)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opendots.domain import MitigationScope
from opendots.signal.server.core.events import (
    MitigationActivated,
    MitigationChanged,
    MitigationUpdated,
    MitigationWithdrawn,
)
from opendots.signal.server.core.messages import Status
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.talkers import with_talkers
from opendots.signal.server.core.telemetry_config import SCOPE_ATTACK_DETAIL


def changed_event(mitigation: Mitigation, now: float, status: Status | None = None) -> MitigationChanged:
    record = mitigation.record
    shown = (status or mitigation.status).label
    return MitigationChanged(record.client, record.cuid, record.mid, mitigation.snapshot_later(now, status), shown)


def activated_event(mitigation: Mitigation, reported: Iterable[dict[str, Any]] = ()) -> MitigationActivated:
    """Enforce MITIGATION; the top talkers of its request's attack details (§9.1) and of REPORTED (the client's
    telemetry, §8.2) go with its scope."""
    record = mitigation.record
    return MitigationActivated(record.client, record.cuid, record.mid, _scope(mitigation, reported), mitigation.names())


def _scope(mitigation: Mitigation, reported: Iterable[dict[str, Any]]) -> MitigationScope:
    """MITIGATION's scope with the top talkers of its request (§9.1) and of REPORTED (the client's telemetry)."""
    details = [*mitigation.record.request.get(SCOPE_ATTACK_DETAIL, ()), *reported]
    return with_talkers(mitigation.mitigation_scope(), details) if details else mitigation.mitigation_scope()


def updated_event(mitigation: Mitigation, reported: Iterable[dict[str, Any]] = ()) -> MitigationUpdated:
    record = mitigation.record
    return MitigationUpdated(record.client, record.cuid, record.mid, _scope(mitigation, reported), mitigation.names())


def withdrawn_event(mitigation: Mitigation, reason: str) -> MitigationWithdrawn:
    record = mitigation.record
    return MitigationWithdrawn(record.client, record.cuid, record.mid, mitigation.mitigator_key, reason)
