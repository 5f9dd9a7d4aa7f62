"""Two `opendots server` processes on one PostgreSQL database (issue #18): a lease holder whose event loop stalls
past its fence (here: SIGSTOP, its lease session staying alive, so nobody else takes the lease) skips the events of
that gap. When its next lease check succeeds it reconciles: its actuators then hold exactly what the database holds
active, so a mitigation withdrawn through the other node meanwhile is no longer enforced
(opendots.signal.server.shell.lease_fence, RFC 9132 §4.4.4: a withdrawn mitigation stops)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiocoap
import asyncpg
import pytest

from opendots.config import ServerConfig
from opendots.signal.client.shell.control import ControlClient
from opendots.signal.server.shell.lease_fence import CHECK_TIMEOUT, VALID
from opendots.store.postgres_cluster import lease_holder_pid
from tests.helpers.cluster import DotsClient, Node, start_node
from tests.helpers.polling import until

pytestmark = pytest.mark.timeout(180)


async def _held(node: Node) -> int:
    """Mitigations NODE's actuators hold (the logging mitigator's own table)."""
    held = (await node.status())["actuator-held"]
    assert held is not None
    return held


def _terminate(node: Node, cuid: str, mid: int) -> dict[str, Any]:
    with ControlClient(node.admin, timeout=10) as control:
        return control.call("terminate", cuid=cuid, mid=mid)


async def test_a_holder_woken_after_its_fence_ran_out_withdraws_what_was_withdrawn_meanwhile(pki_dir, postgres_url):
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients}["client"]
    a = await start_node(pki_dir, "a", postgres_url)
    b = await start_node(pki_dir, "b", postgres_url)
    client = await DotsClient.open(pki_dir, "client", cuid)
    try:
        assert (await a.status())["drives-mitigators"]
        for mid, prefix in ((1, "203.0.113.0/28"), (2, "203.0.113.64/28")):
            assert (await client.put(a, mid, prefix)).code == aiocoap.CREATED

        async def a_holds_both() -> bool:
            return await _held(a) == 2

        await until(a_holds_both, "A's actuator holds both mitigations")
        connection = await asyncpg.connect(postgres_url)
        try:
            lease_backend = await lease_holder_pid(connection)
        finally:
            await connection.close()
        assert lease_backend is not None
        a.process.send_signal(signal.SIGSTOP)
        try:
            # Ended through B (the operator's `terminate`, §4.4.2 status 6: no active-but-terminating period).
            ended = await asyncio.to_thread(_terminate, b, cuid, 1)
            assert ended["status"] == "attack-mitigation-terminated", ended
            await asyncio.sleep(VALID + 1)  # A's fence has run out whatever its last check was
            # A wakes with its lease session's backend held for a moment (shorter than a check's timeout): A reads
            # B's change and skips its withdrawal before its first check after the gap comes back.
            os.kill(lease_backend, signal.SIGSTOP)
        finally:
            a.process.send_signal(signal.SIGCONT)
        try:
            held_until = time.monotonic() + CHECK_TIMEOUT / 2  # shorter than a check's timeout: A keeps its lease
            while True:
                woken, other = await a.status(), await b.status()
                if woken["cluster"]["seen"] == other["cluster"]["seen"] or time.monotonic() > held_until:
                    break
                await asyncio.sleep(0.02)
        finally:
            os.kill(lease_backend, signal.SIGCONT)
        assert woken["cluster"]["seen"] == other["cluster"]["seen"], "A read B's change"
        assert not woken["drives-mitigators"] and woken["actuator-held"] == 2  # ... and skipped it

        async def a_reconciled() -> bool:
            status = await a.status()
            return status["drives-mitigators"] and status["actuator-held"] == 1

        await until(a_reconciled, "A, woken, keeps the lease and withdraws mid 1 from its actuator")
        assert (await b.status())["actuator-held"] == 0  # B never drove
        assert [entry["mid"] for entry in await client.entries(b)] == [2]
    finally:
        await client.close()
        for node in (a, b):
            await node.stop()
