"""Unit tests open no socket and start no process (README): every unit test runs with both refused.

A test that needs a real socket (UDP, TCP, DTLS, TLS, HTTPS, a Unix socket) or a child process belongs in
tests/integration/ (in-process, loopback), tests/interop/ (libcoap, curl, openssl) or tests/e2e/ (the `opendots`
processes, lab namespaces). The guard refuses the calls that reach the network or the process table; an event
loop's own socketpair (no bind, no connect) stays allowed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.pki.certs import TestPki
from opendots.transport.dtls import DtlsListener
from tests.helpers import tls_files

MOVE = "unit tests open no socket and start no process: move this test to tests/integration, interop or e2e"


class UnitTestBoundaryError(AssertionError):
    """Raised by the guard so that nothing in the code under test can mistake it for a network error."""


def _refuse(what: str):
    def refused(*_args: object, **_kwargs: object) -> None:
        raise UnitTestBoundaryError(f"{what}: {MOVE}")

    return refused


def refuse_sockets_and_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make binding, connecting, listening, sending to an address, and starting a process raise, until MONKEYPATCH
    is undone (asyncio's own subprocess and endpoint functions go through the same calls)."""
    for method in ("bind", "connect", "connect_ex", "listen", "sendto"):
        monkeypatch.setattr(socket.socket, method, _refuse(f"socket.{method}"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("subprocess.Popen"))
    monkeypatch.setattr(os, "fork", _refuse("os.fork"))
    monkeypatch.setattr(os, "posix_spawn", _refuse("os.posix_spawn"))


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


@pytest.fixture(scope="module")
def listener(pki_dir: Path) -> DtlsListener:
    return DtlsListener(tls_files(pki_dir, "server"), now=time.monotonic())
