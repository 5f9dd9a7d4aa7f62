"""Table 3 of RFC 9132 (§4.4.2): when a preconfigured request (trigger-mitigation false) stops being enforced
because the attack stopped (status 3) or an overlapping immediate request took over (status 7), that status is
notified ANNOUNCE_TIMES times, ANNOUNCE_INTERVAL apart, and only then does the request go back to 8.

The first notification goes out with the change itself; this schedule holds the repeats."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable

from opendots.domain import defaults


class Announcements:
    """Heap of (due, series, key, status, times left). A newer series for the same key (it fired and stopped
    again) replaces the older one, whose entries are then skipped when they surface."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable, int, int]] = []
        self._current: dict[Hashable, int] = {}
        self._series = itertools.count()
        self.pushes = 0
        """Entries pushed so far (see SignalServer.timer_mark)."""

    def start(self, key: Hashable, status: int, now: float) -> None:
        """The first notification of STATUS for KEY was just sent; schedule the others."""
        series = self._current[key] = next(self._series)
        self.pushes += 1
        heapq.heappush(self._heap, (now + defaults.ANNOUNCE_INTERVAL, series, key, status, defaults.ANNOUNCE_TIMES - 1))

    def __len__(self) -> int:
        """Keys with repeats still to come."""
        return len(self._current)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float, still_parked: Callable[[Hashable], bool]) -> list[tuple[Hashable, int, bool]]:
        """(key, status, last) of every repeat due by NOW, in order; `last` means the request now goes to 8.
        A key for which STILL_PARKED is false (deleted, expired, or enforced again since) is dropped silently:
        its own notifications already said what happened."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            _, series, key, status, left = heapq.heappop(self._heap)
            if self._current.get(key) != series:
                continue  # replaced by a newer series
            if not still_parked(key):
                del self._current[key]
                continue
            if left > 1:
                self.pushes += 1
                heapq.heappush(self._heap, (now + defaults.ANNOUNCE_INTERVAL, series, key, status, left - 1))
            else:
                del self._current[key]
            found.append((key, status, left <= 1))
        return found
