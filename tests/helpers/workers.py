"""`opendots server --workers N` as a real process tree (the parent and its workers) for the integration tests."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

from tests.conftest import free_port
from tests.helpers.cluster import DotsClient, Node, drain, spawn_server


async def start_workers(pki: Path, count: int, *, metrics: int | None = None, db: str | None = None) -> Node:
    """COUNT workers on DB (default: an SQLite file of PKI), DTLS and TLS on 127.0.0.1; returns once the parent
    says they all serve. The Node's process is the parent, its admin the node's operator socket."""
    admin = Path("/tmp") / f"od-w-{uuid.uuid4().hex[:8]}.sock"  # short: sun_path is 108 bytes
    config = pki / f"server-workers-{uuid.uuid4().hex[:6]}.toml"
    text = (pki / "server.toml").read_text()
    config.write_text(text.replace('admin_socket = "opendots-server.sock"', f'admin_socket = "{admin}"'))
    port = free_port()
    flags = ["--listen", "127.0.0.1", "--signal-port", str(port), "--workers", str(count)]
    flags += ["--data-port", str(free_port(socket.SOCK_STREAM)), "--db", db or str(pki / f"{config.stem}.db")]
    if metrics is not None:
        flags += ["--metrics", f"127.0.0.1:{metrics}"]
    process = await spawn_server(config, flags, f"{count} workers", 60)
    assert process.stderr is not None
    node = Node("workers", process, port, admin)
    asyncio.get_running_loop().create_task(drain(process.stderr, node.log))  # a full pipe would block the processes
    return node


async def clients_in_each_worker(pki: Path, node: Node, cuid: str, count: int = 2) -> list[tuple[DotsClient, int]]:
    """Client contexts (each its own source port, so SO_REUSEPORT hashes each to one worker) until each of COUNT
    workers holds one's session: every context opened, with the worker holding its session."""
    opened: list[tuple[DotsClient, int]] = []
    for _ in range(32):
        before = {w["worker"]: w["sessions"]["dtls"] for w in (await node.status())["workers"]}
        client = await DotsClient.open(pki, "client", cuid)
        assert await client.entries(node) == []
        after = {w["worker"]: w["sessions"]["dtls"] for w in (await node.status())["workers"]}
        grown = [index for index in after if after[index] > before[index]]
        assert len(grown) == 1, (before, after)  # one session, in one worker
        opened.append((client, grown[0]))
        if len({worker for _, worker in opened}) == count:
            return opened
    for client, _ in opened:
        await client.close()
    raise AssertionError("32 source ports all hashed to one worker")
