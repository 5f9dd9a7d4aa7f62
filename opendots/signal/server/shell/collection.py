"""The oldest garbage-collector generation is collected on a timer, and what survives it is frozen.

CPython collects its oldest generation whenever the objects promoted into it since the last full collection reach a
quarter of it, and a full collection walks every tracked object. A signal server's heap is mostly what it holds for
long: mitigations (~21 tracked objects each), DTLS sessions (~15 each) and the received messages kept for
deduplication (EXCHANGE_LIFETIME). A full walk is a pause in which no request is answered: ~70 ms at 5,000
mitigations, 0.86 s at 20,000 heartbeating sessions. While an attack brings many new mitigations in, the quarter is
reached again and again (6-12 % of the server's CPU with 30,000 mitigations).

So while a server runs, the two young generations are collected as CPython does (they find nearly all cyclic
garbage: a request's short-lived cycles die young), and every `interval` seconds (10 by default) a tick collects the
oldest generation and freezes what survived it (`gc.freeze`). A frozen object is out of every later collection's
walk, so a tick walks only what arrived since the previous one, not the sessions and mitigations held for hours:
8,000-16,000 objects, 1-16 ms, with 10,000 heartbeating sessions (a 60 s interval made 45 ms pauses at 5,000).
Frozen objects are still freed by reference counting, which is how a closed session's objects go
(tests/integration/signal/server/shell/test_collection_frozen.py counts them).

What reference counting cannot free is a cycle that became garbage after it was frozen (a request's objects caught
in flight by a tick: 745-1,840 objects after 90 s of handshakes and heartbeats with 5,000 sessions, 3,250 with
10,000, against 220,000-360,000 frozen). The first tick an hour (WHOLE_WALK_EVERY) after the previous whole walk
walks the whole heap: unfreeze, collect, freeze again. That is a pause as long as the old full collections (2.0 s
for the 360,000 frozen objects of 10,000 heartbeating sessions on a loaded machine), once an hour instead of once a
minute, and what such cycles hold stays below an hour's worth, or below GROWTH times what the last whole walk left
(an overloaded run, at a load average of 7, ended with 2,475,000 frozen objects; a calmer one 845,000, after a
whole walk). Growth is a loose trigger: a server
taking on sessions and filling its deduplication window with their heartbeats grows its frozen objects several-fold
within minutes of starting (20,000 sessions: from 317,000 to 845,000), and a trigger at twice the frozen objects
put a 2 s pause there.

The policy is process-wide: the first server started applies it, the last one stopped gives CPython its own
thresholds back (tests run many servers in one process).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
WHOLE_WALK_EVERY = 3600.0
"""Seconds from one tick that walks the frozen objects too to the next, unless they grow GROWTH-fold before."""
GROWTH = 4.0
_NEVER = 2**30
"""A generation-2 threshold no count of generation-1 collections reaches."""


@dataclass
class FullCollections:
    """What the timer did, for metrics and tests."""

    interval: float
    count: int = 0
    """Ticks: collections of the oldest generation's unfrozen part, each followed by a freeze."""
    last_seconds: float = 0.0
    total_seconds: float = 0.0
    whole_walk_every: float = WHOLE_WALK_EVERY
    whole_walks: int = 0
    """Ticks that also walked the frozen objects."""
    last_whole_walk: float = field(default_factory=time.monotonic)
    """When the last whole walk ended (at first: when the server froze its start-up state)."""
    walked_frozen: int = field(default_factory=gc.get_freeze_count)
    """The frozen objects the last whole walk left (at first: the server's start-up state)."""
    frozen: int = -1
    """The frozen objects as counted by the last whole walk (or at start), plus those each tick froze since: an upper
    bound, as frozen objects freed by reference counting are not subtracted. Counting them exactly
    (`gc.get_freeze_count`) follows the whole frozen list: 13 ms for 600,000 objects laid out in order, more in a
    server's scattered heap; ticks that counted twice each took ~65 ms at 20,000 sessions for that alone."""

    def __post_init__(self) -> None:
        if self.frozen < 0:
            self.frozen = self.walked_frozen

    def collect(self) -> None:
        started = time.perf_counter()
        whole = time.monotonic() - self.last_whole_walk >= self.whole_walk_every or self._grown()
        if whole:
            gc.unfreeze()
            self.whole_walks += 1
        gc.collect(2)  # unless whole: only what is not frozen, what arrived since the previous tick
        survivors = len(gc.get_objects())  # what is not frozen: this tick's survivors (all of them when whole)
        gc.freeze()
        took = time.perf_counter() - started
        if whole:
            self.last_whole_walk = time.monotonic()
            self.walked_frozen = self.frozen = survivors
        else:
            self.frozen += survivors
        self.count += 1
        self.last_seconds = took
        self.total_seconds += took
        log.debug(
            "garbage collection tick%s: %.1f ms, %d objects frozen now, at most %d frozen",
            " with a whole-heap walk" if whole else "",
            took * 1e3,
            survivors,
            self.frozen,
        )

    def _grown(self) -> bool:
        """Have the frozen objects grown GROWTH-fold since the last whole walk? Counted exactly (one walk of the
        frozen list) only once the upper bound says so; the count then replaces the bound."""
        if self.frozen < GROWTH * max(self.walked_frozen, 1):
            return False
        self.frozen = gc.get_freeze_count()
        return self.frozen >= GROWTH * max(self.walked_frozen, 1)

    async def run(self) -> None:
        """Until cancelled, one tick every `interval` seconds."""
        while True:
            await asyncio.sleep(self.interval)
            self.collect()


_active = 0
_saved_threshold: tuple[int, int, int] | None = None


def take_over(interval: float) -> FullCollections | None:
    """Collect the oldest generation only on the timer from now on (None when INTERVAL is 0: CPython's own policy
    stays). Call `hand_back` once the returned collections' task is stopped."""
    global _active, _saved_threshold
    if interval <= 0:
        return None
    if _active == 0:
        _saved_threshold = gc.get_threshold()
        young, middle, _ = _saved_threshold
        gc.set_threshold(young, middle, _NEVER)
    _active += 1
    return FullCollections(interval)


def hand_back(collections: FullCollections | None) -> None:
    global _active, _saved_threshold
    if collections is None:
        return
    _active -= 1
    if _active == 0 and _saved_threshold is not None:
        gc.set_threshold(*_saved_threshold)
        _saved_threshold = None
