"""Durable first, then memory, then the answer: how the shell carries out a decision of the signal core.

The core (`opendots.signal.server.core.SignalServer`) never writes. Each of its decisions carries the changes to store;
`settle` stores them, lets the core apply the decision only once they are durable, and returns what to answer and
what to act on. A store that fails (StoreError) leaves the core as it was, and the request is answered 5.03.

Two stores may be written, in this order: the data channel's (RFC 9133 ACL activation changes, `ACLS`), then the
signal channel's (`decision.changes`, one transaction). They are separate databases, so no transaction spans both:
the ACL changes go first because RFC 9133 §3.2.1 lets a client told 5.03 resend its request without 'acl-list',
and setting an activation type again is harmless.

Both are written under the caller's decision lock (`settle_async`: one decision at a time), also the ACL change,
which is a network round trip on PostgreSQL (one statement: opendots.store.postgres_data.set_acl_activation). It
cannot move out: the core holds one decision pending and refuses to decide on until it is settled, so the change is
written between deciding and applying or the decision is taken twice. Written before the lock, on a first decision,
it would change the client's ACL for a request that the second decision then refuses (another client's overlapping
mitigation stored in between: 4.09), and two requests naming one ACL could land their writes in the opposite order
of their decisions. Written after it, once the mitigation is stored and the scope's locks released (several nodes),
another node could decide and write the same ACL in between, and the client would be told 5.03 about a mitigation
already in force.

`settle` is the synchronous form, for a store that writes in place (SQLite: a commit is ~0.1 ms). `settle_async`
awaits a store whose `apply` is a coroutine (AsyncSignalStore: a network database); the core refuses to decide
anything new until the decision is settled, so the caller holds a lock around decide-and-settle meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Protocol

from opendots.signal.server.core import Decision, Event, Response, SignalServer
from opendots.signal.server.core.filtering import AclActivationStore
from opendots.store.records import SignalChanges, SignalStore, StoreError

log = logging.getLogger(__name__)

Settled = tuple[Response | None, list[Event]]


class AsyncSignalStore(Protocol):
    """A signal store whose writes are awaited (the PostgreSQL seam). Raises StoreError when it cannot store."""

    def apply(self, changes: SignalChanges) -> Awaitable[None]: ...


def settle(
    core: SignalServer, store: SignalStore, decision: Decision, now: float, acls: AclActivationStore | None = None
) -> Settled:
    """Store DECISION's changes, then apply it to CORE: the response to send (None for a timer's or a mitigator's
    decision) and the events to act on, in order. ACLS stores its RFC 9133 ACL activation changes."""
    # Every request of a one-process server comes through here: the calls nearly every one would make for nothing
    # (no ACL change, nothing to write) are skipped, `_applied` written out.
    if decision.acl_activations:
        refused = _store_acls(core, decision, now, acls)
        if refused is not None:
            return refused
    stores = decision.stores
    if stores:
        try:
            store.apply(decision.changes)
        except Exception as problem:  # any failure, not only StoreError: see _write_failed
            return _write_failed(core, decision, now, problem)
    if stores or decision.effects or decision.acl_activations:  # decision.pending
        core.apply(decision)
    return decision.response, decision.observed + decision.events


async def settle_async(
    core: SignalServer,
    store: AsyncSignalStore,
    decision: Decision,
    now: float,
    acls: AclActivationStore | None = None,
) -> Settled:
    """`settle` with the signal store's write awaited: nothing is answered or applied before it is durable. An ACL
    store with `set_activation_async` (a remote data channel store) is awaited too."""
    refused = await _store_acls_async(core, decision, now, acls)
    if refused is not None:
        return refused
    if decision.stores:
        try:
            await store.apply(decision.changes)
        except Exception as problem:  # see _write_failed
            return _write_failed(core, decision, now, problem)
    return _applied(core, decision)


def _store_acls(core: SignalServer, decision: Decision, now: float, acls: AclActivationStore | None) -> Settled | None:
    """Store the decision's ACL activation changes in order; on the first that fails, the 5.03 to answer."""
    for activation in decision.acl_activations:
        try:
            if acls is None:
                raise StoreError("no data channel store for RFC 9133 ACL changes")
            acls.set_activation(activation, now)
        except Exception as problem:  # the data channel's store is outside the signal store: any failure is "could not"
            return core.acl_write_failed(decision, activation, str(problem), now), decision.observed
    return None


async def _store_acls_async(
    core: SignalServer, decision: Decision, now: float, acls: AclActivationStore | None
) -> Settled | None:
    """`_store_acls`, each write awaited where the store offers it (off the loop)."""
    write = getattr(acls, "set_activation_async", None)
    if write is None:
        return _store_acls(core, decision, now, acls)
    for activation in decision.acl_activations:
        try:
            await write(activation, now)
        except Exception as problem:  # as in _store_acls
            return core.acl_write_failed(decision, activation, str(problem), now), decision.observed
    return None


def _write_failed(core: SignalServer, decision: Decision, now: float, problem: Exception) -> Settled:
    # Whatever went wrong, the decision is refused: a decision left pending would make the core refuse every
    # later request (it will not decide on stale state), one fault wedging the whole server. A StoreError is an
    # expected failure (database gone, disk full); anything else is a bug, logged with its traceback.
    if isinstance(problem, StoreError):
        log.error("signal store: %s", problem)
    else:
        log.error("signal store: unexpected failure, the decision is refused", exc_info=problem)
    return core.write_failed(decision, now), decision.observed


def _applied(core: SignalServer, decision: Decision) -> Settled:
    if decision.pending:
        core.apply(decision)
    return decision.response, decision.observed + decision.events
