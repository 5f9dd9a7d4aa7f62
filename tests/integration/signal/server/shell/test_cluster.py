"""Two signal servers in one process on one PostgreSQL database (opendots.signal.server.shell.cluster): mitigation
writes are decided under their scope's locks on the rows the other node wrote, so 'mid' rules and conflicts hold
across nodes even with no NOTIFY heard at all, and however requests race; the mitigator lease is held by one node."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from opendots.domain import Counters
from opendots.signal.server.core import Request
from tests.helpers.cluster_nodes import put_request
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.timeout(120)


async def test_mid_rules_and_conflicts_hold_across_nodes_without_any_notification(nodes):
    """RFC 9132 §4.4.1: a lower 'mid' overlapping a stored one is refused, as is another client's overlapping
    request while the first is active, whichever node stored the first."""
    a, b, cuids = nodes
    client, other = cuids["client"], cuids["other"]
    assert (await a.service.answer(put_request(client, 20, "203.0.113.0/28"))).code == "2.01"
    assert (await b.service.answer(put_request(client, 19, "203.0.113.0/29"))).code == "4.09"
    refused = await b.service.answer(put_request(other, 7, "203.0.113.0/26"))
    assert refused.code == "4.09"
    assert refused.body[SCOPE]["scope"][0]["conflict-information"]["conflict-status"] == "request-inactive-other-active"


async def test_racing_overlapping_requests_on_two_nodes_leave_one_mitigation(nodes, postgres_url):
    """Twenty overlapping requests of one client sent at once through both nodes: each is decided on what the one
    before it stored (a higher 'mid' replaces the lower, a lower one is refused, §4.4.1), so exactly one remains.
    Decided on each node's memory alone, every node would keep one of its own."""
    a, b, cuids = nodes
    client = cuids["client"]
    answers = await asyncio.gather(
        *((a if mid % 2 else b).service.answer(put_request(client, mid, "198.51.100.0/28")) for mid in range(1, 21))
    )
    assert {answer.code for answer in answers} <= {"2.01", "4.09"}
    connection = await asyncpg.connect(postgres_url)
    try:
        stored = await connection.fetch("SELECT mid FROM signal_mitigations WHERE status <> 6")
    finally:
        await connection.close()
    accepted = [mid for mid, answer in enumerate(answers, 1) if answer.code == "2.01"]
    assert [row["mid"] for row in stored] == [max(accepted)]


async def test_only_the_lease_holder_drives_the_mitigators_and_its_successor_reapplies_everything(nodes):
    a, b, cuids = nodes
    assert a.cluster.lease and a.service.drives_mitigator
    assert not b.cluster.lease and not b.service.drives_mitigator
    client = cuids["client"]
    assert (await b.service.answer(put_request(client, 1, "203.0.113.0/28"))).code == "2.01"  # through the standby
    assert (await a.service.answer(put_request(client, 2, "203.0.113.64/28"))).code == "2.01"
    key1, key2 = f"{client}/1", f"{client}/2"
    for _ in range(100):  # A hears of B's write (it is deaf to NOTIFY here: its next read does it)
        await a.service.answer(Request("GET", ("mitigate", f"cuid={client}"), peer=client))
        await a.service.idle()
        if key1 in a.service.mitigator.active:
            break
    assert set(a.service.mitigator.active) == {key1, key2}
    await b.service.idle()
    assert b.service.mitigator.active == {}  # the standby leaves the mitigators alone

    await a.cluster.stop()  # its lease session closes: the lock is released, as when the process dies
    for _ in range(100):
        if b.cluster.lease:
            break
        await asyncio.sleep(0.1)
    assert b.cluster.lease and b.service.drives_mitigator and b.cluster.leases_taken == 1
    await b.service.idle()
    assert set(b.service.mitigator.active) == {key1, key2}  # what the database holds, re-applied


async def test_counters_the_lease_holder_measures_reach_the_other_node(nodes):
    """RFC 9132 §4.4.2: observers on any node get the counters the mitigators really measured."""
    a, b, cuids = nodes
    client = cuids["client"]
    assert (await a.service.answer(put_request(client, 3, "203.0.113.0/28"))).code == "2.01"
    await b.service.answer(Request("GET", ("mitigate", f"cuid={client}"), peer=client))  # B reads the row
    measured = Counters(bytes_dropped=4000, pkts_dropped=40)
    await a.cluster.publish_counters({f"{client}/3": measured})
    for _ in range(100):
        await b.service.idle()
        if b.service.core.table.get((client, 3)).counters == measured:
            break
        await asyncio.sleep(0.05)
    assert b.service.core.table.get((client, 3)).counters == measured


async def test_a_mitigation_request_the_database_cannot_take_is_refused_and_changes_nothing(nodes):
    """Nothing is decided on a table that could not be brought up to date: 5.03 (RFC 9132 §4.4.1 lets the client
    retry), memory as it was, the node still serving."""
    a, _, cuids = nodes
    client = cuids["client"]
    a.store.pool.terminate()  # every connection of the node's pool gone, as when the database is unreachable
    refused = await a.service.answer(put_request(client, 8, "203.0.113.0/28"))
    assert refused.code == "5.03"
    assert a.service.core.mitigations() == []
    listed = await a.service.answer(Request("GET", ("mitigate", f"cuid={client}"), peer=client))
    assert listed.code == "5.03"
