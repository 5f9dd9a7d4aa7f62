"""`opendots server --workers 2` (issue #18): `max_sessions` is the node's cap, not each worker's. Each worker holds
at most max_sessions // 2 sessions, so the node never holds more than the operator configured, however the kernel
spreads the clients' source ports over the workers (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal

import pytest

from opendots.config import ServerConfig
from tests.helpers.cluster import DotsClient
from tests.helpers.workers import start_workers

pytestmark = pytest.mark.timeout(180)
CAP = 2
CLIENTS = 8  # all eight hashed to one worker: 1 chance in 128; the cap holds then too


async def _try(client: DotsClient, node) -> bool:
    """Whether CLIENT's session was admitted (a refused DTLS hello gets no answer at all)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.entries(node), 8)
        return True
    return False


async def test_max_sessions_caps_the_whole_node_not_each_worker(pki_dir, tmp_path):
    pki = shutil.copytree(pki_dir, tmp_path / "pki")
    config = pki / "server.toml"
    config.write_text(config.read_text().replace("max_sessions = 10000", f"max_sessions = {CAP}"))
    cuid = {c.name: c.cuid for c in ServerConfig.load(config).clients}["client"]
    node = await start_workers(pki, 2)
    clients = [await DotsClient.open(pki, "client", cuid) for _ in range(CLIENTS)]
    try:
        admitted = await asyncio.gather(*(_try(client, node) for client in clients))
        status = await node.status()
        per_worker = [w["sessions"]["dtls"] for w in status["workers"]]
        assert 1 <= sum(admitted) <= CAP, (admitted, per_worker)
        assert status["sessions"]["dtls"] == sum(per_worker) == sum(admitted)
        assert max(per_worker) <= CAP // 2
    finally:
        for client in clients:
            await client.close()
        node.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(node.process.wait(), 30) == 0
