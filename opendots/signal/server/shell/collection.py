"""The oldest garbage-collector generation is collected on a timer, and what survives it is frozen.

CPython collects its oldest generation whenever the objects promoted into it since the last full collection reach a
quarter of it, and a full collection walks every tracked object. A signal server's heap is mostly what it holds for
long: mitigations (~21 tracked objects each) and DTLS sessions (~15 each), ~0.5 µs each to walk: ~70 ms at 5,000
mitigations, 0.3-0.9 s at 20,000 sessions, a pause in which no request is answered. While an attack brings many
new mitigations in, the quarter is reached again and again (6-12 % of the server's CPU with 30,000 mitigations).

So while a server runs, the two young generations are collected as CPython does (they find nearly all cyclic
garbage: a request's short-lived cycles die young), and every `interval` seconds a tick collects the oldest
generation and freezes what survived it (`gc.freeze`). A frozen object is out of every later collection's walk, so
a tick walks only what arrived since the previous one, not the sessions and mitigations held for hours: with 20,000
idle sessions a tick takes milliseconds. Frozen objects are still freed by reference counting, which is how a
closed session's objects go (tests/integration/signal/server/shell/test_collection_frozen.py counts them).

Every 10 s by default: what a tick walks is what survived since the previous one, at 20,000 heartbeating sessions
mostly the received messages kept for deduplication (EXCHANGE_LIFETIME, ~1,300 messages a second), so shorter
ticks make shorter pauses (5,000 sessions: ≤ 7 ms each every 10 s, 45 ms every 60 s). What a tick freezes while
it is in flight and is cyclic garbage later waits for the next whole walk: ~1,000-2,000 objects a minute measured
at 5,000 sessions, against the hundreds of thousands held.

What reference counting cannot free is a cycle that became garbage after it was frozen. Such cycles are bounded by
a whole-heap walk (unfreeze, collect, freeze again) whenever the frozen objects have grown to GROWTH times what the
previous whole walk left: memory kept by such cycles stays below that factor, and the whole walks happen only while
the held state grows (at most log2 of its growth), never while a steady number of sessions heartbeat. The policy
is process-wide: the first server started applies it, the last one stopped gives CPython its own thresholds back
(tests run many servers in one process).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
GROWTH = 2.0
"""A whole-heap walk once the frozen objects are this many times what the previous whole walk left."""
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
    whole_walks: int = 0
    """Ticks that also walked the frozen objects (their growth reached GROWTH)."""
    walked_frozen: int = field(default_factory=gc.get_freeze_count)
    """Frozen objects the last whole walk left (at first: what the server froze once started)."""

    def collect(self) -> None:
        started = time.perf_counter()
        gc.collect(2)  # only what is not frozen: what arrived since the previous tick
        gc.freeze()
        whole = gc.get_freeze_count() >= GROWTH * max(self.walked_frozen, 1)
        if whole:
            gc.unfreeze()
            gc.collect(2)
            gc.freeze()
            self.whole_walks += 1
            self.walked_frozen = gc.get_freeze_count()
        took = time.perf_counter() - started
        self.count += 1
        self.last_seconds = took
        self.total_seconds += took
        log.debug(
            "garbage collection tick%s: %.1f ms, %d objects frozen",
            " with a whole-heap walk" if whole else "",
            took * 1e3,
            gc.get_freeze_count(),
        )

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
