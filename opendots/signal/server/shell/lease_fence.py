"""Fencing the mitigator lease (several nodes on one PostgreSQL database): never two nodes driving the mitigators.

The lease is a session advisory lock: PostgreSQL releases it when the holder's session ends (killed backend,
restarted database, network gone), possibly before the holder notices. Two rules, on each node's monotonic clock,
make an overlap impossible rather than unlikely:

- a holder drives only while its last lease check that succeeded was SENT less than VALID seconds ago. The check
  succeeded, so the session (and its lock) was alive after that moment: the lock was released later, if at all.
- a node that takes the lock waits GRACE seconds before it drives (while it keeps checking its own session).

If the holder's lock is released at t (after the send time s of its last good check), the holder has stopped by
s + VALID < t + VALID; the successor took the lock after t and drives from t + GRACE on. GRACE - VALID (1 s) is left
for a mitigator call started just before the deadline to finish and for the two clocks' rates to differ. The bound
therefore holds whatever the holder learns and when: a killed backend (noticed at once, the connection closes),
a database restarted, or a network that silently drops its packets (the checks time out).

The price is failover time: GRACE more seconds before the successor acts. A holder whose checks stall (its event
loop held over VALID) stops driving until a check succeeds again, then reads the change log and reconciles: the
mitigators get exactly what the database holds active, so what was withdrawn or expired meanwhile is removed too
(opendots.mitigate.router's restore). It kept its lock throughout, so nobody else drove meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

VALID = 2.0
"""Seconds a holder drives after the send time of its last lease check that succeeded."""
GRACE = 3.0
"""Seconds a node waits after taking the lock before it drives."""
CHECK_INTERVAL = 0.5
"""Seconds between two lease checks of the holder (and of a node in its grace period)."""
CHECK_TIMEOUT = 1.0
"""A check that takes longer fails: the session is given up (VALID ends the driving first anyway)."""
LOST_BACKOFF = 3.0
"""A node that lost its lease tries again only after this: another node, healthy, takes it first."""


@dataclass
class LeaseFence:
    """When this node may drive the mitigators, decided on its monotonic clock (`now` in seconds)."""

    held: bool = False
    """The lock is held by this node's session, as far as it knows."""
    taken_at: float | None = None
    confirmed_at: float | None = None
    """Send time of the last check that succeeded."""

    def taken(self, sent_at: float) -> None:
        """The lock was taken by a request sent at SENT_AT."""
        self.held, self.taken_at, self.confirmed_at = True, sent_at, sent_at

    def confirmed(self, sent_at: float) -> None:
        if self.held:
            self.confirmed_at = max(self.confirmed_at or sent_at, sent_at)

    def lost(self) -> None:
        self.held, self.taken_at, self.confirmed_at = False, None, None

    def in_grace(self, now: float) -> bool:
        return self.held and self.taken_at is not None and now < self.taken_at + GRACE

    def valid(self, now: float) -> bool:
        """Whether this node may act on the mitigators at NOW."""
        return (
            self.held and self.confirmed_at is not None and now < self.confirmed_at + VALID and not self.in_grace(now)
        )
