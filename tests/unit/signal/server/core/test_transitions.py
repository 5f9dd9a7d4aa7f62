"""RFC 9132 §4.4.2 Table 3: every status change of a mitigation, checked for every (kind, status, trigger)."""

from __future__ import annotations

import ast
import itertools

import pytest

from opendots.signal.server.core.messages import Status
from opendots.signal.server.core.transitions import (
    TRANSITIONS,
    IllegalTransition,
    Kind,
    Trigger,
    allowed,
    next_status,
)
from tests.helpers import REPOSITORY

KINDS: tuple[Kind, ...] = ("immediate", "preconfigured")
STATUSES = (None, *Status)
ACTIVE = {1, 2, 3, 4}  # in progress, successfully mitigated, stopped, exceeded capability
REPORTED = {
    Trigger.REPORTED_IN_PROGRESS: 1,
    Trigger.REPORTED_MITIGATED: 2,
    Trigger.REPORTED_STOPPED: 3,
    Trigger.REPORTED_EXCEEDED: 4,
}


def expected(kind: Kind, status: Status | None, trigger: Trigger) -> int | None:
    """The RFC's rules written out one by one (not as a table), None where no transition exists."""
    s = None if status is None else int(status)
    preconfigured = kind == "preconfigured"
    if trigger is Trigger.CREATED:
        # §4.4.1.3: a preconfigured request waits (8) until the signal is lost; an immediate one is carried out.
        return (8 if preconfigured else 1) if s is None else None
    if s is None or s in (6, 7):  # nothing happens to what is not held; 6 and 7 are never held
        return None
    if s == 8 and not preconfigured:  # an immediate request is carried out at once: it never waits in 8
        return None
    if trigger in REPORTED:
        if s not in ACTIVE:
            return None  # a report about a withdrawn or waiting mitigation changes nothing
        if trigger is Trigger.REPORTED_STOPPED and preconfigured:
            return 8  # Table 3: a preconfigured request whose attack stopped waits again
        return REPORTED[trigger]
    if trigger is Trigger.REFRESHED:
        return 1 if s == 5 else s  # §4.4.4: a refresh during active-but-terminating makes it active again
    if trigger is Trigger.WITHDRAWN_BY_CLIENT:
        if s in ACTIVE:
            return 5  # §4.4.4 active-but-terminating
        return 6 if s == 8 else None  # not enforced: ends at once; already terminating: nothing more
    if trigger in (Trigger.LIFETIME_ENDED, Trigger.SUPERSEDED, Trigger.TERMINATED_BY_OPERATOR):
        return 6  # §4.4.2: the server may terminate any mitigation it holds
    if trigger is Trigger.DEACTIVATED:
        return 8 if preconfigured and s in ACTIVE else None
    if trigger is Trigger.SIGNAL_LOST:
        if preconfigured:
            return 1 if s == 8 else None
        return 7 if s in ACTIVE else None
    raise AssertionError(trigger)


@pytest.mark.parametrize(("kind", "status", "trigger"), list(itertools.product(KINDS, STATUSES, Trigger)))
def test_every_pair_of_status_and_trigger_follows_table_3(kind: Kind, status: Status | None, trigger: Trigger):
    want = expected(kind, status, trigger)
    assert allowed(kind, status, trigger) == (want is not None)
    if want is None:
        with pytest.raises(IllegalTransition):
            next_status(kind, status, trigger)
    else:
        assert int(next_status(kind, status, trigger)) == want


def test_the_table_holds_nothing_but_the_rules():
    assert {key for key in TRANSITIONS} == {
        (k, s, t) for k, s, t in itertools.product(KINDS, STATUSES, Trigger) if expected(k, s, t) is not None
    }


def test_statuses_6_and_7_are_reached_only_by_ending_a_mitigation():
    for (_, _, trigger), status in TRANSITIONS.items():
        if int(status) in (6, 7):
            assert trigger in (
                Trigger.LIFETIME_ENDED,
                Trigger.SUPERSEDED,
                Trigger.WITHDRAWN_BY_CLIENT,
                Trigger.SIGNAL_LOST,
                Trigger.TERMINATED_BY_OPERATOR,
            )


def test_no_handler_writes_a_status_without_the_table():
    """Every 'status=' a handler writes into a record comes from next_status(), so the table is the only place a
    transition is decided."""
    source = REPOSITORY / "opendots" / "signal" / "server" / "core" / "mitigation_requests.py"
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "status":
            text = ast.unparse(node.value)
            assert "next_status" in text or text in ("int(status)", "int(stored)"), text
