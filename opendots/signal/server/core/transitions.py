"""Every status change a mitigation can go through (RFC 9132 §4.4.2 Table 3), in one table.

A held mitigation's stored status moves only through `next_status()`: the handlers say *what happened* (a
`Trigger`), the table says *where that leads*. A pair missing from the table is a transition the RFC does not
allow; `next_status` refuses it with `IllegalTransition`, and `allowed` lets a handler ignore such a report (a
mitigator's late status for a mitigation that has since ended, for example).

Statuses 6 (terminated) and 7 (withdrawn) are never stored: a mitigation reaching them is deleted, and its
observers are told the final status. Status 8 (signal loss) is the resting state of a preconfigured request
(`trigger-mitigation` false) until the session is lost (§4.4.1.3).
"""

from __future__ import annotations

import enum
from typing import Literal

from opendots.signal.server.core.messages import Status

Kind = Literal["immediate", "preconfigured"]
"""'trigger-mitigation' true (immediate) or false (preconfigured: waits for the signal to be lost)."""


class Trigger(enum.Enum):
    """What happened to a mitigation."""

    CREATED = "created"
    """The client's PUT for a new 'mid' was accepted (§4.4.1)."""
    REFRESHED = "refreshed"
    """The client repeated its request for the same 'mid' (a refresh, §4.4.1), also during active-but-terminating."""
    REPORTED_IN_PROGRESS = "reported 1"
    REPORTED_MITIGATED = "reported 2"
    REPORTED_STOPPED = "reported 3"
    REPORTED_EXCEEDED = "reported 4"
    """A mitigator or the operator reports progress (statuses 1-4 of Table 3)."""
    WITHDRAWN_BY_CLIENT = "withdrawn by the client"
    """DELETE (§4.4.4): an enforced mitigation stays active-but-terminating; another one simply ends."""
    LIFETIME_ENDED = "lifetime ended"
    """The lifetime, or the active-but-terminating period, ran out."""
    SUPERSEDED = "superseded"
    """A request of the same client with a higher 'mid' overlaps it (§4.4.1)."""
    DEACTIVATED = "deactivated"
    """An immediate request overlaps this triggered preconfigured one: it goes back to waiting (§4.4.1.3)."""
    TERMINATED_BY_OPERATOR = "terminated by the server's operator"
    """RFC 9132 §4.4.2 status 6: the server ends a mitigation on its own (an operator's decision), whatever it was."""
    SIGNAL_LOST = "signal lost"
    """The client's session was lost (§4.7): a preconfigured request becomes active, an overlapping immediate one
    is withdrawn by the server (§4.4.1.3)."""


IN_PROGRESS = Status.ATTACK_MITIGATION_IN_PROGRESS
MITIGATED = Status.ATTACK_SUCCESSFULLY_MITIGATED
STOPPED = Status.ATTACK_STOPPED
EXCEEDED = Status.ATTACK_EXCEEDED_CAPABILITY
CLIENT_WITHDRAWN = Status.DOTS_CLIENT_WITHDRAWN_MITIGATION
TERMINATED = Status.ATTACK_MITIGATION_TERMINATED
WITHDRAWN = Status.ATTACK_MITIGATION_WITHDRAWN
SIGNAL_LOSS = Status.ATTACK_MITIGATION_SIGNAL_LOSS

ACTIVE = (IN_PROGRESS, MITIGATED, STOPPED, EXCEEDED)
"""Enforced, and not being withdrawn."""
REPORTS = {
    Trigger.REPORTED_IN_PROGRESS: IN_PROGRESS,
    Trigger.REPORTED_MITIGATED: MITIGATED,
    Trigger.REPORTED_STOPPED: STOPPED,
    Trigger.REPORTED_EXCEEDED: EXCEEDED,
}
REPORT_TRIGGERS = {status: trigger for trigger, status in REPORTS.items()}

Key = tuple[Kind, Status | None, Trigger]


def _table() -> dict[Key, Status]:
    table: dict[Key, Status] = {
        ("immediate", None, Trigger.CREATED): IN_PROGRESS,
        ("preconfigured", None, Trigger.CREATED): SIGNAL_LOSS,
        # The session is lost: the waiting request is carried out.
        ("preconfigured", SIGNAL_LOSS, Trigger.SIGNAL_LOST): IN_PROGRESS,
        # A refresh keeps the status; one during active-but-terminating makes the mitigation active again.
        ("immediate", CLIENT_WITHDRAWN, Trigger.REFRESHED): IN_PROGRESS,
        ("preconfigured", CLIENT_WITHDRAWN, Trigger.REFRESHED): IN_PROGRESS,
        ("preconfigured", SIGNAL_LOSS, Trigger.REFRESHED): SIGNAL_LOSS,
        # A withdrawal of what is not enforced, an expiry, a higher 'mid': the mitigation ends.
        ("preconfigured", SIGNAL_LOSS, Trigger.WITHDRAWN_BY_CLIENT): TERMINATED,
    }
    held: dict[Kind, tuple[Status, ...]] = {
        "immediate": (*ACTIVE, CLIENT_WITHDRAWN),  # never waiting (8): it is carried out at once
        "preconfigured": (*ACTIVE, CLIENT_WITHDRAWN, SIGNAL_LOSS),
    }
    for kind in ("immediate", "preconfigured"):
        for status in held[kind]:
            table[(kind, status, Trigger.LIFETIME_ENDED)] = TERMINATED
            table[(kind, status, Trigger.SUPERSEDED)] = TERMINATED
            table[(kind, status, Trigger.TERMINATED_BY_OPERATOR)] = TERMINATED
        for status in ACTIVE:
            table[(kind, status, Trigger.REFRESHED)] = status
            table[(kind, status, Trigger.WITHDRAWN_BY_CLIENT)] = CLIENT_WITHDRAWN
            for trigger, reported in REPORTS.items():
                table[(kind, status, trigger)] = reported
    for status in ACTIVE:
        # Preconfigured and triggered: an overlapping immediate request takes over (announced as 7, then 8).
        table[("preconfigured", status, Trigger.DEACTIVATED)] = SIGNAL_LOSS
        # Immediate, overlapping a preconfigured request the lost session activates: withdrawn by the server.
        table[("immediate", status, Trigger.SIGNAL_LOST)] = WITHDRAWN
    # Table 3: a preconfigured request whose attack stopped goes back to waiting for a signal loss.
    for status in ACTIVE:
        table[("preconfigured", status, Trigger.REPORTED_STOPPED)] = SIGNAL_LOSS
    return table


TRANSITIONS: dict[Key, Status] = _table()
ENDED = frozenset({TERMINATED, WITHDRAWN})
"""Where a mitigation is deleted: never stored, only announced."""


class IllegalTransition(Exception):
    """A handler asked for a status change Table 3 does not allow (a bug in the core, never a client's fault)."""


def kind_of(trigger_mitigation: bool) -> Kind:
    return "immediate" if trigger_mitigation else "preconfigured"


def allowed(kind: Kind, status: Status | None, trigger: Trigger) -> bool:
    return (kind, status, trigger) in TRANSITIONS


def next_status(kind: Kind, status: Status | None, trigger: Trigger) -> Status:
    """The status a mitigation of KIND in STATUS (None: not held yet) goes to when TRIGGER happens."""
    try:
        return TRANSITIONS[(kind, status, trigger)]
    except KeyError:
        shown = status.label if status is not None else "(new)"
        raise IllegalTransition(
            f"{kind} mitigation in {shown}: {trigger.value} is not a transition of Table 3"
        ) from None
