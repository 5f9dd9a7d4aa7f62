"""Durable first, then memory, then the answer: how the shell carries out a decision of the signal core.

The core (`opendots.signal.server.core.SignalServer`) never writes. Each of its decisions carries the changes to store;
`settle` stores them, lets the core apply the decision only once they are durable, and returns what to answer and
what to act on. A store that fails (StoreError) leaves the core as it was, and the request is answered 5.03.

This is the synchronous form, for a store that writes in place (SQLite: a commit is ~0.1 ms). A store that must be
awaited over a network needs the same steps with the write awaited and the core locked meanwhile, since the core
refuses to decide anything new while a decision is pending.
"""

from __future__ import annotations

import logging

from opendots.signal.server.core import Decision, Event, Response, SignalServer
from opendots.store.records import SignalStore, StoreError

log = logging.getLogger(__name__)


def settle(
    core: SignalServer, store: SignalStore, decision: Decision, now: float
) -> tuple[Response | None, list[Event]]:
    """Store DECISION's changes, then apply it to CORE: the response to send (None for a timer's or a mitigator's
    decision) and the events to act on, in order."""
    if decision.changes:
        try:
            store.apply(decision.changes)
        except StoreError as problem:
            log.error("signal store: %s", problem)
            return core.write_failed(decision, now), decision.observed
    if decision.pending:
        core.apply(decision)
    return decision.response, decision.observed + decision.events
