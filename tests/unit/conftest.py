"""Unit tests open no socket and start no process (README): every unit test runs with both refused.

A test that needs a real socket (UDP, TCP, DTLS, TLS, HTTPS, a Unix socket) or a child process belongs in
tests/integration/ (in-process, loopback), tests/interop/ (libcoap, curl, openssl) or tests/e2e/ (the `opendots`
processes, lab namespaces). The guard (tests/helpers/boundary.py) refuses the calls that reach the network or the
process table; an event loop's own socketpair (no bind, no connect) stays allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.pki.certs import TestPki
from tests.helpers.boundary import refuse_sockets_and_processes


@pytest.fixture(autouse=True)
def _no_sockets_or_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    refuse_sockets_and_processes(monkeypatch)
    yield


@pytest.fixture(scope="module")
def rogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA with a client and a server certificate (names identical to the real ones)."""
    directory = tmp_path_factory.mktemp("rogue")
    pki = TestPki(directory)
    pki.issue_client("client")
    pki.issue_server()
    return directory
