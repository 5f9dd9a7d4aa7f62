"""PROBING_RATE for bodies sent to a peer that does not answer (RFC 9177 §7.2, RFC 7252 §4.7).

A whole body counts, not its payloads: after a body of N bytes goes to a silent peer, the next body (and each NON
4.08 response, each NON GET/FETCH with Q-Block2) waits N / PROBING_RATE seconds, never more than NON_PROBING_WAIT.
Anything heard from the peer lifts the wait. The shell keeps one pacer per peer and asks `ready_at()` before sending.
"""

from __future__ import annotations

import random

from opendots.transport.qblock.params import QBlockParameters


class ProbingPacer:
    def __init__(self, params: QBlockParameters, rng: random.Random | None = None) -> None:
        self.params = params
        self._rng = rng or random.Random()
        self._ready_at = float("-inf")

    def ready_at(self) -> float:
        """The earliest time the next body (or 4.08, or request with Q-Block2) may go to this peer."""
        return self._ready_at

    def sent(self, size: int, now: float) -> None:
        """A body (or message) of SIZE bytes went to the peer, which has not answered since the last one."""
        cap = self.params.probing_wait(self.params.timeout_random(self._rng))
        self._ready_at = max(now, self._ready_at) + min(size / self.params.probing_rate, cap)

    def heard(self, now: float) -> None:
        """The peer answered: it is not silent, so PROBING_RATE no longer holds the next body back."""
        self._ready_at = min(self._ready_at, now)
