"""The agent's control API protocol over a real Unix socket (the operations' argument checks:
tests/unit/signal/client/shell/test_operations.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from opendots.signal.client.shell.control import ControlClient, ControlError, ControlServer, agent_answers


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    # Unix socket paths are limited to ~107 bytes: keep it short and unique.
    path = Path("/tmp") / f"odc-{uuid.uuid4().hex[:12]}.sock"
    yield path
    if path.exists():
        path.unlink()


async def echo_handler(operation: str, args: dict[str, Any]) -> dict[str, Any]:
    if operation == "ping":
        return {"pong": True}
    if operation == "echo":
        return {"args": args}
    if operation == "slow":
        await asyncio.sleep(0.05)
        return {"slow": True}
    if operation == "boom":
        raise RuntimeError("handler bug")
    raise ControlError(f"unknown operation {operation!r}", "4.00")


async def roundtrip(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"".join(lines))
    await writer.drain()
    answers = [json.loads(await reader.readline()) for line in lines if line.strip()]
    writer.close()
    return answers


async def test_requests_and_errors_on_one_connection(socket_path: Path) -> None:
    server = ControlServer(socket_path, echo_handler)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
        answers = await roundtrip(
            socket_path,
            [
                b'{"id": 1, "op": "slow"}\n',
                b'{"id": "two", "op": "echo", "mid": 7}\n',
                b"not json\n",
                b"\n",
                b'{"id": 4, "op": "boom"}\n',
                b'{"id": 5}\n',
                b"[1, 2]\n",
                b'{"id": 6, "op": "nope"}\n',
                b'{"id": 7, "op": "ping"}\n',
            ],
        )
        assert answers[0] == {"id": 1, "ok": True, "slow": True}  # answers come back in request order
        assert answers[1] == {"id": "two", "ok": True, "args": {"mid": 7}}
        assert answers[2]["ok"] is False and answers[2]["code"] == "4.00" and "not JSON" in answers[2]["error"]
        assert answers[3] == {
            "id": 4,
            "ok": False,
            "error": "internal error: RuntimeError('handler bug')",
            "code": "5.00",
        }
        assert answers[4]["error"] == "missing 'op'"
        assert answers[5]["error"] == "a request must be a JSON object"
        assert answers[6] == {"id": 6, "ok": False, "error": "unknown operation 'nope'", "code": "4.00"}
        assert answers[7] == {"id": 7, "ok": True, "pong": True}  # still serving after all of that
    finally:
        await server.close()
    assert not socket_path.exists()


async def test_blocking_client_api(socket_path: Path) -> None:
    server = ControlServer(socket_path, echo_handler)
    await server.start()
    try:

        def use_client() -> tuple[Any, ...]:
            with ControlClient(socket_path, timeout=5) as client:
                pong = client.ping()
                echoed = client.call("echo", x=[1, 2])
                try:
                    client.call("nope")
                except ControlError as error:
                    failure = (str(error), error.code)
                return pong, echoed, failure, agent_answers(socket_path)

        pong, echoed, failure, answers = await asyncio.to_thread(use_client)
        assert pong is True and echoed == {"args": {"x": [1, 2]}}
        assert failure == ("unknown operation 'nope'", "4.00") and answers
    finally:
        await server.close()
    assert not agent_answers(socket_path)
    with pytest.raises(ConnectionError):
        ControlClient(socket_path).ping()


async def test_stale_socket_is_replaced_but_a_live_one_is_not(socket_path: Path, tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()  # bound, never listening: what a killed agent leaves behind
    first = ControlServer(socket_path, echo_handler)
    await first.start()
    try:
        with pytest.raises(ControlError, match="already listening"):
            await ControlServer(socket_path, echo_handler).start()
    finally:
        await first.close()
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(ControlError, match="not a socket"):
        await ControlServer(regular, echo_handler).start()
