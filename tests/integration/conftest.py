"""A throwaway PostgreSQL cluster for the tests that need one (tests/helpers/postgres.py): started once per session
on first use, each test on a database of its own; skipped, saying why, where PostgreSQL cannot be started."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.postgres import Cluster, throwaway_cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    yield from throwaway_cluster()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> str:
    """The URL of an empty database of this test's own."""
    return postgres_cluster.fresh_database()
