"""Changes made by another node on the shared database (several servers on one PostgreSQL), fed into this core.

The core stays sans-I/O: the shell learns that mitigation KEY changed elsewhere (PostgreSQL NOTIFY, or the change
log it reads before a decision), reads the row the database now holds, and hands it here. The core then holds what
the database holds and says what follows, as for a change of its own: observers of the client are notified, and the
node driving the mitigators applies, updates or withdraws. An echo of this node's own write changes nothing.

Observers hear of a change exactly when they would had it been made on this node (`mitigation_requests`): a new or
ended mitigation, or a new status (RFC 9132 §4.4.2.1: "whenever the status of the attack mitigation changes"). A
refresh or an efficacy update (§4.4.3) that keeps the status is not notified on the node it is made on, so not here
either: what it changes (the lifetime, the 'attack-status') is read with a GET.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from opendots.signal.server.core.events import Event
from opendots.signal.server.core.messages import Status
from opendots.signal.server.core.mitigation_events import (
    activated_event,
    changed_event,
    updated_event,
    withdrawn_event,
)
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.transitions import Trigger, allowed, kind_of, next_status
from opendots.store.records import MitigationRecord

if TYPE_CHECKING:
    from opendots.signal.server.core.mitigation_table import Key, MitigationTable


def changed_elsewhere(
    table: MitigationTable,
    key: Key,
    record: MitigationRecord | None,
    now: float,
    held_from: Callable[[MitigationRecord], Mitigation],
) -> list[Event]:
    """Hold RECORD (what the database holds for KEY now; None: nothing any more) and return the events that follow.
    HELD_FROM parses a stored record into a held mitigation (the start-up path)."""
    old = table.get(key)
    if record is None:
        if old is None:
            return []
        table.release(key)
        events: list[Event] = []
        if old.enforcing:
            events.append(withdrawn_event(old, "client" if old.terminating else "server"))
        return [*events, changed_event(old, now, _final_status(old, now))]
    if old is not None and old.record == record:
        return []  # this node's own write coming back, or a change already read
    if old is not None and old.record.request == record.request:
        # A refresh or a status change: the parsed request and its targets stay (as `with_record` keeps them).
        new = Mitigation(record, old.request, old.targets, old.counters, old.conflict, old.payload)
    else:
        new = held_from(record)
        if old is not None:
            new.counters, new.conflict = old.counters, old.conflict
    table.hold(new)
    events = []
    was_enforcing = old is not None and old.enforcing
    if new.enforcing and not was_enforcing:
        events.append(activated_event(new))
    elif was_enforcing and not new.enforcing:
        assert old is not None
        events.append(withdrawn_event(old, "client" if new.terminating else "server"))
    elif was_enforcing and old is not None and old.targets != new.targets:
        events.append(updated_event(new))
    if old is None or old.status != new.status:
        events.append(changed_event(new, now))
    return events


def _final_status(old: Mitigation, now: float) -> Status:
    """What observers are told of a mitigation another node ended. The row does not say why; every way a held
    mitigation is deleted ends it as 6, attack-mitigation-terminated (Table 3: its lifetime or active-but-terminating
    period over, a higher 'mid' superseding it, the operator ending it, a DELETE of a request not enforced: an
    enforced one is kept active-but-terminating, a status change), but for the server's withdrawal (7) of an
    immediate request when the client's session is lost (§4.4.1.3), told as 6 here."""
    deadline = old.deadline()
    trigger = Trigger.LIFETIME_ENDED if deadline is not None and deadline <= now else Trigger.SUPERSEDED
    kind = kind_of(old.request.trigger_mitigation)
    return next_status(kind, old.status, trigger) if allowed(kind, old.status, trigger) else old.status
