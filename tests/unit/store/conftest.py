"""The store the backend-independent store tests run on here: SQLite (tests/integration/store: PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opendots.store.signal import SignalStore, SqliteSignalStore


@pytest.fixture
def open_signal_store(tmp_path: Path) -> Iterator[Callable[[], SignalStore]]:
    """Opens the test's signal store, the same database every time (a reopening is a restart)."""
    opened: list[SignalStore] = []

    def open_store() -> SignalStore:
        opened.append(SqliteSignalStore.open(tmp_path / "signal-store.db"))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()
