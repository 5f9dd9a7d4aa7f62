"""What the core decided: the answer, the writes that must be durable first, and what to do once they are.

The core never writes. `SignalServer.handle(request, now)` (and every other entry point) returns a `Decision`;
the shell makes `changes` durable, then calls `SignalServer.apply(decision)`, which changes the core's memory, and
only then sends `response` and acts on `events`. If the write fails, the shell calls
`SignalServer.write_failed(decision, now)` instead: memory is untouched, the client gets 5.03 and may retry.
Until one of the two is called the core refuses to decide anything else (its memory would be stale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opendots.signal.server.core.events import Event
from opendots.signal.server.core.filtering import AclActivation
from opendots.signal.server.core.messages import Response
from opendots.store.records import SignalChanges


@dataclass
class Decision:
    response: Response | None = None
    """The answer to send once `changes` are durable (None: a timer or a mitigator's report, nobody to answer)."""
    changes: SignalChanges = field(default_factory=SignalChanges)
    """Everything the decision stores, written in one transaction."""
    acl_activations: list[AclActivation] = field(default_factory=list)
    """RFC 9133 activation changes of data-channel ACLs: stored (in order, before `changes`: they live in the data
    channel's store) by the shell; one that fails is answered 5.03 by `SignalServer.acl_write_failed`."""
    events: list[Event] = field(default_factory=list)
    """To act on, in order, once the decision is applied (mitigator calls, notifications)."""
    observed: list[Event] = field(default_factory=list)
    """Events that hold whatever the store does (a silent peer heard from again): acted on in either case."""
    effects: list[Callable[[], None]] = field(default_factory=list)
    """The in-memory changes, made by `SignalServer.apply` in order."""

    @property
    def pending(self) -> bool:
        """Whether the core must hear `apply` or `write_failed` before it decides anything else."""
        return bool(self.changes) or bool(self.effects) or bool(self.acl_activations)

    def then(self, effect: Callable[[], None]) -> None:
        self.effects.append(effect)
