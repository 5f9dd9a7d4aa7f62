"""The fuzz runs and the findings drive the entry points in process (tests/fuzz/targets.py): like unit tests, they
open no socket and start no process, and the same guard holds them to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.boundary import refuse_sockets_and_processes


@pytest.fixture(autouse=True)
def _no_sockets_or_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    refuse_sockets_and_processes(monkeypatch)
    yield
