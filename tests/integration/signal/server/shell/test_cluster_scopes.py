"""Two signal servers on one PostgreSQL database deciding mitigation writes under per-scope locks
(opendots.store.postgres_scopes): overlapping requests of two clients racing through both nodes still leave exactly
one mitigation (RFC 9132 §4.4.1.3 conflicts, §4.4.1 'mid' rules), and a write of one client proceeds while another
client's overlapping decision is in progress elsewhere (shown by what is answered and what waits, not by time)."""

from __future__ import annotations

import asyncio
import ipaddress

import asyncpg
import pytest

from opendots.signal.server.shell.write_scopes import write_scope
from opendots.store.postgres_scopes import WriteScope, scoped
from tests.helpers.cluster_nodes import put_request
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.timeout(120)


async def _stored(url: str) -> list[tuple[str, int]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT cuid, mid FROM signal_mitigations WHERE status <> 6 ORDER BY 1, 2")
        return [(row["cuid"], row["mid"]) for row in rows]
    finally:
        await connection.close()


async def test_overlapping_requests_of_two_clients_racing_through_two_nodes_leave_one_mitigation(nodes, postgres_url):
    """Twenty requests at once, the two clients' alternating, on nested prefixes of different lengths (a /24, a /28
    and a /30 inside it, a /32 inside those: different levels of the lock tree): each is decided on what the one
    before it stored, so the first client to store keeps it, its later 'mid's replace it, the other client is
    refused with a conflict. Without the prefixes' locks, two mitigations remain (checked by removing them)."""
    a, b, cuids = nodes
    client, other = cuids["client"], cuids["other"]
    prefixes = ["198.51.100.0/24", "198.51.100.0/28", "198.51.100.7/32", "198.51.100.4/30"]
    # Node A takes the first client's requests and B the other's, the last four the other way round: the first
    # decisions of the two nodes are of different clients, which only the prefixes' locks keep apart.
    requests = [
        ((a if (mid % 2) == (mid <= 16) else b), put_request(client if mid % 2 else other, mid, prefixes[mid % 4]))
        for mid in range(1, 21)
    ]
    answers = await asyncio.gather(*(node.service.answer(request) for node, request in requests))
    assert {answer.code for answer in answers} <= {"2.01", "4.09"}
    stored = await _stored(postgres_url)
    assert len(stored) == 1, stored
    winner, mid = stored[0]
    accepted = [
        mid for mid, answer in enumerate(answers, 1) if answer.code == "2.01" and requests[mid - 1][1].peer == winner
    ]
    assert mid == max(accepted)  # the winner's later requests replaced its earlier ones
    for (_, request), answer in zip(requests, answers, strict=True):
        if request.peer != winner and answer.code == "4.09":
            info = answer.body[SCOPE]["scope"][0]["conflict-information"]
            assert info["conflict-status"] == "request-inactive-other-active"


async def test_a_client_is_served_while_another_clients_overlapping_decision_is_in_progress_elsewhere(
    nodes, postgres_url
):
    """A third client's decision on 192.0.2.0/24 is in progress (its scope held, as another node deciding would):
    a request of 'client' on 203.0.113.0/24 through node B is answered meanwhile, while one of 'other' on a prefix
    inside the held one, through node A, waits for it (§4.4.1.3); once the decision is done it is decided too.
    With one cluster-wide lock, B's request would wait as well."""
    a, b, cuids = nodes
    client, other = cuids["client"], cuids["other"]
    assert write_scope(put_request(client, 1, "192.0.2.0/24")) == WriteScope(
        (f"peer {client}", f"cuid {client}"), (ipaddress.ip_network("192.0.2.0/24"),)
    )
    held = WriteScope(("peer third", "cuid third"), (ipaddress.ip_network("192.0.2.0/24"),))
    store = a.cluster.store
    release = asyncio.Event()
    entered = asyncio.Event()

    async def in_progress() -> None:
        async with scoped(store, store.seen, held):
            entered.set()
            await release.wait()

    holder = asyncio.create_task(in_progress())
    await asyncio.wait_for(entered.wait(), 10)
    waiting = asyncio.create_task(a.service.answer(put_request(other, 1, "192.0.2.128/25")))
    try:
        answered = await asyncio.wait_for(b.service.answer(put_request(client, 2, "203.0.113.0/24")), 10)
        assert answered.code == "2.01"
        assert not waiting.done()  # the overlapping one is still waiting for the decision in progress
        assert await _stored(postgres_url) == [(client, 2)]
    finally:
        release.set()
        await holder
    assert (await asyncio.wait_for(waiting, 10)).code == "2.01"
    assert sorted(await _stored(postgres_url)) == sorted([(client, 2), (other, 1)])
