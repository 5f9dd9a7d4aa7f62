"""Two `opendots server` processes on one PostgreSQL database (issue #18): every node answers for every mitigation,
a change made through one reaches the observers on the other, conflicts and 'mid' rules hold across nodes, and
exactly one node holds the mitigator lease, which the other takes when the holder is killed (SIGKILL)."""

from __future__ import annotations

import asyncio
import signal

import aiocoap
import asyncpg
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal
from tests.helpers.cli import invoke
from tests.helpers.cluster import SCOPE, DotsClient, Node, start_node

pytestmark = pytest.mark.timeout(180)


async def _lease_pid(url: str) -> int | None:
    from opendots.store.postgres_cluster import lease_holder_pid

    connection = await asyncpg.connect(url)
    try:
        return await lease_holder_pid(connection)
    finally:
        await connection.close()


async def _until(condition, what: str, attempts: int = 300) -> None:
    """Poll CONDITION (a coroutine function) until true: a bound on attempts, not a timing assertion."""
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def test_two_nodes_serve_one_set_of_mitigations_and_hand_over_the_mitigator_lease(pki_dir, postgres_url):
    clients = {c.name: c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients}
    a = await start_node(pki_dir, "a", postgres_url)
    b = await start_node(pki_dir, "b", postgres_url)
    nodes: list[Node] = [a, b]
    client = await DotsClient.open(pki_dir, "client", clients["client"])
    other = await DotsClient.open(pki_dir, "other", clients["other"])
    try:
        # Created through A, read through B (§4.4.2): B reads what changed before it answers.
        assert (await client.put(a, 1, "203.0.113.0/28")).code == aiocoap.CREATED
        assert [e["mid"] for e in await client.entries(b)] == [1]

        # An observer on B hears the status changes made through A (§4.4.2.1): NOTIFY, then B reloads the row. (A
        # refresh that keeps the status is notified on neither node.) Withdrawn through A (§4.4.4), then asked again
        # through A while active-but-terminating: active again, with the lifetime A granted.
        observe = client.observe(b, 1)
        first = await asyncio.wait_for(observe.response, 15)
        assert decode_signal(first.payload)[SCOPE]["scope"][0]["lifetime"] == 3600
        notifications = observe.observation.__aiter__()
        assert (await client.request(a, aiocoap.DELETE, 1)).code == aiocoap.DELETED
        withdrawn = await asyncio.wait_for(notifications.__anext__(), 15)
        assert decode_signal(withdrawn.payload)[SCOPE]["scope"][0]["status"] == "dots-client-withdrawn-mitigation"
        assert (await client.put(a, 1, "203.0.113.0/28", lifetime=600)).code == aiocoap.CHANGED
        revived = decode_signal((await asyncio.wait_for(notifications.__anext__(), 15)).payload)[SCOPE]["scope"][0]
        assert (revived["status"], revived["lifetime"]) == ("attack-mitigation-in-progress", 600)

        # Refreshed through B, then withdrawn through B; A sees both.
        assert (await client.put(b, 1, "203.0.113.0/28", lifetime=900)).code == aiocoap.CHANGED
        assert (await client.entries(a, 1))[0]["lifetime"] == 900
        assert (await client.request(b, aiocoap.DELETE, 1)).code == aiocoap.DELETED
        withdrawn = await asyncio.wait_for(notifications.__anext__(), 15)
        assert decode_signal(withdrawn.payload)[SCOPE]["scope"][0]["status"] == "dots-client-withdrawn-mitigation"
        assert (await client.entries(a, 1))[0]["status"] == "dots-client-withdrawn-mitigation"
        observe.observation.cancel()

        # A conflict between clients on different nodes (§4.4.1): `other` through B, `client`'s request on A.
        assert (await client.put(a, 5, "198.51.100.0/28")).code == aiocoap.CREATED
        refused = await other.put(b, 9, "198.51.100.0/26")
        assert refused.code == aiocoap.CONFLICT
        conflict = decode_signal(refused.payload)[SCOPE]["scope"][0]["conflict-information"]
        assert conflict["conflict-status"] == "request-inactive-other-active"
        # A lower 'mid' than one stored through the other node is refused too (§4.4.1).
        assert (await client.put(b, 4, "198.51.100.0/29")).code == aiocoap.CONFLICT

        # Exactly one node drives the mitigators: A, started first.
        status_a, status_b = await a.status(), await b.status()
        assert status_a["cluster"]["lease"] and status_a["drives-mitigators"]
        assert not status_b["cluster"]["lease"] and not status_b["drives-mitigators"]
        holder = await _lease_pid(postgres_url)
        assert holder is not None

        a.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(a.process.wait(), 20)

        async def b_holds_the_lease() -> bool:
            return (await b.status())["cluster"]["lease"]

        await _until(b_holds_the_lease, "B takes the lease after A is killed")
        status_b = await b.status()
        assert status_b["drives-mitigators"] and status_b["cluster"]["leases-taken"] == 1
        assert await _lease_pid(postgres_url) not in (None, holder)  # another session holds it now
        shown = await asyncio.to_thread(invoke, "admin", "-c", str(pki_dir / "server-b.toml"), "status")
        assert "holds the mitigator lease" in shown.output, shown.output
        # Nothing acknowledged is lost: B still serves A's mitigation and takes new requests.
        assert [e["mid"] for e in await client.entries(b, 5)] == [5]
        assert (await client.put(b, 6, "203.0.113.64/28")).code == aiocoap.CREATED
    finally:
        await client.close()
        await other.close()
        for node in nodes:
            await node.stop()
