"""What the core decided: the answer, the writes that must be durable first, and what to do once they are.

The core never writes. `SignalServer.handle(request, now)` (and every other entry point) returns a `Decision`;
the shell makes `changes` durable, then calls `SignalServer.apply(decision)`, which changes the core's memory, and
only then sends `response` and acts on `events`. If the write fails, the shell calls
`SignalServer.write_failed(decision, now)` instead: memory is untouched, the client gets 5.03 and may retry.
Until one of the two is called the core refuses to decide anything else (its memory would be stale).
"""

from __future__ import annotations

from collections.abc import Callable

from opendots.signal.server.core.events import Event
from opendots.signal.server.core.filtering import AclActivation
from opendots.signal.server.core.messages import Response
from opendots.store.records import SignalChanges


class Decision:
    """One per request or timer step: built and read on every message, so a plain class with slots, and its
    `changes` made on first use (most decisions store nothing)."""

    __slots__ = ("_changes", "acl_activations", "effects", "events", "observed", "response")

    def __init__(
        self,
        response: Response | None = None,
        changes: SignalChanges | None = None,
        acl_activations: list[AclActivation] | None = None,
        events: list[Event] | None = None,
        observed: list[Event] | None = None,
        effects: list[Callable[[], None]] | None = None,
    ) -> None:
        self.response = response
        """The answer to send once `changes` are durable (None: a timer or a mitigator's report, nobody to answer)."""
        self._changes = changes
        self.acl_activations: list[AclActivation] = acl_activations if acl_activations is not None else []
        """RFC 9133 activation changes of data-channel ACLs: stored (in order, before `changes`: they live in the
        data channel's store) by the shell; one that fails is answered 5.03 by `SignalServer.acl_write_failed`."""
        self.events: list[Event] = events if events is not None else []
        """To act on, in order, once the decision is applied (mitigator calls, notifications)."""
        self.observed: list[Event] = observed if observed is not None else []
        """Events that hold whatever the store does (a silent peer heard from again): acted on in either case."""
        self.effects: list[Callable[[], None]] = effects if effects is not None else []
        """The in-memory changes, made by `SignalServer.apply` in order."""

    @property
    def changes(self) -> SignalChanges:
        """Everything the decision stores, written in one transaction."""
        if self._changes is None:
            self._changes = SignalChanges()
        return self._changes

    @changes.setter
    def changes(self, changes: SignalChanges) -> None:
        self._changes = changes

    @property
    def stores(self) -> bool:
        """Whether `changes` holds anything to write (without making an empty one)."""
        changes = self._changes
        return changes is not None and bool(changes)

    @property
    def pending(self) -> bool:
        """Whether the core must hear `apply` or `write_failed` before it decides anything else."""
        # Read on every message: `stores` written out (one property call, not two).
        changes = self._changes
        return bool(self.effects or self.acl_activations) or (changes is not None and bool(changes))

    def then(self, effect: Callable[[], None]) -> None:
        self.effects.append(effect)

    def __repr__(self) -> str:
        return (
            f"Decision(response={self.response!r}, changes={self._changes!r}, acl_activations={self.acl_activations!r},"
            f" events={self.events!r}, observed={self.observed!r}, effects={self.effects!r})"
        )
