"""Full garbage collections on a timer, not each time the heap has grown by a quarter.

CPython collects its oldest generation whenever the objects promoted into it since the last full collection reach a
quarter of it, and a full collection walks every tracked object. A signal server's heap is mostly the mitigations it
holds (~21 tracked objects each, ~0.5 µs each to walk: ~70 ms at 5,000 mitigations, ~0.3 s at 30,000). While an
attack brings many new mitigations in, the quarter is reached again and again: in paired runs where 100 clients
created 30,000 mitigations, these collections took 6-12 % of the server's CPU, each one stalling every request.

So while a server runs, the two young generations are collected as CPython does (they find nearly all cyclic
garbage: a request's short-lived cycles die young), and the oldest one every `interval` seconds. What the young
collections miss waits at most that long. The policy is process-wide: the first server started applies it, the last
one stopped gives CPython its own thresholds back (tests run many servers in one process).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
_NEVER = 2**30
"""A generation-2 threshold no count of generation-1 collections reaches."""


@dataclass
class FullCollections:
    """What the timer did, for metrics and tests."""

    interval: float
    count: int = 0
    last_seconds: float = 0.0
    total_seconds: float = 0.0

    def collect(self) -> None:
        started = time.perf_counter()
        gc.collect(2)
        took = time.perf_counter() - started
        self.count += 1
        self.last_seconds = took
        self.total_seconds += took
        log.debug("full garbage collection: %.1f ms", took * 1e3)

    async def run(self) -> None:
        """Until cancelled, one full collection every `interval` seconds."""
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
