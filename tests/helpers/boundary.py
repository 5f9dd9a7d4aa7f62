"""The guard of the socket-free suites (tests/unit, tests/fuzz): binding, connecting, listening, sending to an address
and starting a process raise UnitTestBoundaryError."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

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
