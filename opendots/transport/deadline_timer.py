"""One asyncio timer kept at the earliest deadline of a sans-I/O engine: the shells of the Q-Block engine (client and
server) ask it to be at `due` after every input, and it re-arms only when that deadline moved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[], None]) -> None:
        self.loop = loop
        self._fire = fire
        self._timer: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def at(self, due: float | None) -> None:
        """Fire at DUE (a loop time), or never when DUE is None; the previous deadline is forgotten."""
        if due == self._at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._at = due
        self._timer = None if due is None else self.loop.call_at(due, self._expired)

    def _expired(self) -> None:
        self._timer = self._at = None
        self._fire()

    def cancel(self) -> None:
        self.at(None)
