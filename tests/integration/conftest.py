"""A throwaway PostgreSQL cluster for the tests that need one (tests/helpers/postgres.py): started once per session
on first use, each test on a database of its own; skipped, saying why, where PostgreSQL cannot be started."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.helpers.postgres import Cluster, unavailable


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    cluster = Cluster(free_port(socket.SOCK_STREAM))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> str:
    """The URL of an empty database of this test's own."""
    return postgres_cluster.fresh_database()
