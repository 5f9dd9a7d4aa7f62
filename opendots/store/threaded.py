"""A synchronous store behind the awaited protocol (AsyncSignalStore): its writes run in a worker thread.

For a store whose commits may take long (SQLite on a slow or network disk); a network database has its own awaited
store (PostgreSQL: opendots.store.postgres).
The shell settles one decision at a time, so the store never sees two writes at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opendots.store.records import SignalChanges, SignalState, SignalStore


class ThreadedSignalStore:
    def __init__(self, store: SignalStore) -> None:
        self.store = store

    def load(self) -> SignalState:
        return self.store.load()  # once, at start-up, before anything is served

    async def apply(self, changes: SignalChanges) -> None:
        """Persist CHANGES atomically in a worker thread; raises StoreError on failure (nothing is then changed)."""
        await asyncio.to_thread(self.store.apply, changes)

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        return self.store.dump()

    def close(self) -> None:
        self.store.close()
