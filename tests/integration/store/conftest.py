"""The store the backend-independent store tests run on here: PostgreSQL (tests/unit/store: SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from opendots.store.records import SignalStore
from tests.helpers.postgres import BlockingPostgresStore


@pytest.fixture
def open_signal_store(postgres_url: str) -> Iterator[Callable[[], SignalStore]]:
    """Opens the test's signal store on its own PostgreSQL database, the same every time (a reopening is a
    restart). Synchronous calls over the async store, so the synchronous harness drives it unchanged."""
    opened: list[BlockingPostgresStore] = []

    def open_store() -> SignalStore:
        opened.append(BlockingPostgresStore(postgres_url))
        return opened[-1]

    yield open_store
    for store in opened:
        if not store.loop.loop.is_closed():
            store.close()
