"""The oldest garbage-collector generation is collected on a timer, and what survives it is frozen.

CPython collects its oldest generation whenever the objects promoted into it since the last full collection reach a
quarter of it, and a full collection walks every tracked object. A signal server's heap is mostly what it holds for
long: mitigations (~21 tracked objects each) and DTLS sessions (~15 each). A full walk is a pause in which no request
is answered: ~70 ms at 5,000 mitigations, 0.86 s at 20,000 heartbeating sessions. While an attack brings many new
mitigations in, the quarter is reached again and again (6-12 % of the server's CPU with 30,000 mitigations).

So while a server runs, the two young generations are collected as CPython does, and every `interval` seconds (10
by default) a tick collects the oldest generation and freezes what survived it (`gc.freeze`). A frozen object is out
of every later collection's walk, so a tick walks only what survived the young collections since the previous tick:
what was alive when one ran (a request in flight) and what holds it. A heartbeat leaves nothing there: its exchange
forms no reference cycle, so reference counting frees it whole as soon as it ends (opendots.transport.aiocoap_hooks:
AcyclicTokenManager for the client's, SingleResponse for the server's own), and its deduplication entry is plain
integers, which the collector does not track (tests/integration/signal/server/shell/test_collection_cycles.py counts
both). With 20,000 heartbeating sessions a tick walks 10-300 objects in ~1 ms (bench/scale_sessions.py: 6 ticks,
0.01 s in all); before, aiocoap's per-exchange cycles (Pipe, Request, tasks) and 13,000 tracked deduplication tuples
made 15,000-70,000 objects, 4-40 ms. A tick does not count the frozen objects with gc.get_freeze_count(), which
follows the whole frozen list (23-56 ms for 590,000 objects in that server's heap): it keeps its own upper bound
(`frozen`). Frozen objects are still freed by reference counting, which is how a closed session's objects go
(tests/integration/signal/server/shell/test_collection_frozen.py counts them).

What reference counting cannot free is a cycle that became garbage after it was frozen: a request on aiocoap's
generic path (Observe registrations, block-wise transfers, anything `answer_now` declines) or a handshake caught in
flight by a tick (before heartbeats stopped making cycles: 745-1,840 objects after 90 s of handshakes and
heartbeats with 5,000 sessions, against 220,000-360,000 frozen). The first tick an hour (WHOLE_WALK_EVERY) after the
previous whole walk walks the whole heap: unfreeze, collect, freeze again. That is a pause as long as the old full
collections (0.19 s for the 590,000 frozen objects of 20,000 heartbeating sessions on a quiet machine, 2.0 s for
360,000 at 10,000 on a loaded one), once an hour instead of once a minute, and what such cycles hold stays below an
hour's worth, or below GROWTH times what the last whole walk left (`frozen`, counted exactly when it says so).
Growth is a loose trigger: a server taking on sessions doubles its frozen objects within minutes of starting
(20,000 sessions with 20,000 [[clients]] configured: from 317,000 to 617,000; to 845,000 while heartbeats still left
tracked objects), and a trigger at twice the frozen objects put a 2 s pause there.

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
