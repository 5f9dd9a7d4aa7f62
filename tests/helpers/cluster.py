"""Several `opendots server` processes on one PostgreSQL database (tests/helpers/postgres): each node a real
process with its own ports and operator socket, and a DTLS client that speaks to any of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap

from opendots.model import decode_signal, encode_signal
from opendots.signal.client.shell.control import ControlClient
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import REPOSITORY, tls_files

SCOPE = "ietf-dots-signal-channel:mitigation-scope"


@dataclass
class Node:
    name: str
    process: asyncio.subprocess.Process
    port: int
    admin: Path
    log: deque[str] = field(default_factory=lambda: deque(maxlen=80))
    """The last lines the node wrote to stderr (its log), for a failing test's message."""

    async def status(self) -> dict[str, Any]:
        """The operator socket's status (blocking socket I/O, off the loop)."""

        def call() -> dict[str, Any]:
            with ControlClient(self.admin, timeout=10) as control:
                return control.call("status")

        return await asyncio.to_thread(call)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 20)
        self.admin.unlink(missing_ok=True)  # left behind by a node killed with SIGKILL


async def start_node(pki: Path, name: str, url: str) -> Node:
    """`opendots server` on URL with its own signal/data ports and operator socket; returns once it listens."""
    admin = Path("/tmp") / f"od-{name}-{uuid.uuid4().hex[:8]}.sock"  # short: sun_path is 108 bytes
    config = pki / f"server-{name}.toml"
    text = (pki / "server.toml").read_text()
    config.write_text(text.replace('admin_socket = "opendots-server.sock"', f'admin_socket = "{admin}"'))
    port = free_port()
    process = await start_server_process(config, port, url)
    assert process.stderr is not None
    node = Node(name, process, port, admin)
    asyncio.get_running_loop().create_task(drain(process.stderr, node.log))  # a full pipe would block the server
    return node


async def spawn_server(config: Path, flags: list[str], ready: str, timeout: float) -> asyncio.subprocess.Process:
    """`opendots server -c CONFIG FLAGS` as a child process; returns once a stderr line contains READY (each line
    within TIMEOUT seconds; AssertionError with what it said if it exits first)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opendots",
        "server",
        "-c",
        str(config),
        *flags,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    while not lines or ready not in lines[-1]:
        lines.append((await asyncio.wait_for(process.stderr.readline(), timeout)).decode())
        assert lines[-1], "".join(lines)  # EOF: the server exited
    return process


async def start_server_process(config: Path, port: int, db: str) -> asyncio.subprocess.Process:
    """`opendots server -c CONFIG` on 127.0.0.1:PORT (DTLS only) with `--db DB`, the data channel on a free port;
    returns once it says the data channel listens (a restart first logs what it restores)."""
    flags = ["--no-tls", "--listen", "127.0.0.1", "--signal-port", str(port), "--db", db]
    flags += ["--data-port", str(free_port(socket.SOCK_STREAM))]
    return await spawn_server(config, flags, "data channel listening", 30)


async def drain(stream: asyncio.StreamReader, kept: deque[str] | None = None) -> None:
    """Read STREAM to its end: a child's full stderr pipe would block it. The lines go to KEPT if given."""
    while line := await stream.readline():
        if kept is not None:
            kept.append(line.decode(errors="replace").rstrip())


@contextlib.contextmanager
def logs_on_failure(*nodes: Node) -> Iterator[None]:
    """An AssertionError raised inside gets the NODES' last log lines added: a failure seen once in CI (a lease
    taken by the wrong node, a session not noticed) can then be read from what each node said."""
    try:
        yield
    except AssertionError as failure:
        tails = "\n".join(f"--- node {node.name}:\n" + "\n".join(node.log) for node in nodes)
        raise AssertionError(f"{failure}\n{tails}") from failure


class DotsClient:
    """One client's DTLS sessions to any node: `await DotsClient.open(pki, "client")`."""

    def __init__(self, context: Any, cuid: str) -> None:
        self.context, self.cuid = context, cuid

    @classmethod
    async def open(cls, pki: Path, name: str, cuid: str) -> DotsClient:
        return cls(await create_client_context(tls_files(pki, name), server_name="localhost"), cuid)

    def uri(self, node: Node, mid: int | None = None) -> str:
        base = f"coaps://127.0.0.1:{node.port}/.well-known/dots/mitigate/cuid={self.cuid}"
        return base if mid is None else f"{base}/mid={mid}"

    async def request(
        self, node: Node, code: aiocoap.Code, mid: int | None = None, body: Any = None
    ) -> aiocoap.Message:
        message = aiocoap.Message(code=code, uri=self.uri(node, mid))
        if body is not None:
            message.payload, message.opt.content_format = encode_signal(body), 271
        return await asyncio.wait_for(self.context.request(message).response, 15)

    async def put(self, node: Node, mid: int, prefix: str, lifetime: int = 3600) -> aiocoap.Message:
        body = {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": lifetime}]}}
        return await self.request(node, aiocoap.PUT, mid, body)

    async def entries(self, node: Node, mid: int | None = None) -> list[dict[str, Any]]:
        response = await self.request(node, aiocoap.GET, mid)
        if response.code == aiocoap.NOT_FOUND:
            return []
        assert response.code == aiocoap.CONTENT, response
        return decode_signal(response.payload)[SCOPE]["scope"]

    def observe(self, node: Node, mid: int) -> Any:
        """An Observe GET of MID on NODE (RFC 9132 §4.4.2.1): the request, whose `observation` yields the
        notifications."""
        return self.context.request(aiocoap.Message(code=aiocoap.GET, uri=self.uri(node, mid), observe=0))

    async def close(self) -> None:
        await self.context.shutdown()
