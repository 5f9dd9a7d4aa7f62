"""Two clients asking at once, through two nodes on one PostgreSQL database, for mitigations of overlapping
targets (RFC 9132 §4.4.1.3): each time exactly one conflict decision — one request accepted, the other refused 4.09
with 'conflict-information' naming the targets the two share — however the race goes, and both nodes then show the
one mitigation held. The core decides on its in-memory index, brought up to date from the change log under the
scope's locks (opendots.store.postgres_scopes); the race is run many times to give a lost lock a chance to show."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from opendots.signal.server.core import Request
from tests.helpers.cluster_nodes import put_request
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.timeout(180)

ROUNDS = 12


async def _active(url: str, prefix_like: str) -> list[tuple[str, int]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT cuid, mid FROM signal_mitigations WHERE status <> 6 AND request::text LIKE $1 ORDER BY 1, 2",
            f"%{prefix_like}%",
        )
        return [(row["cuid"], row["mid"]) for row in rows]
    finally:
        await connection.close()


async def test_overlapping_requests_of_two_clients_through_two_nodes_get_exactly_one_conflict_decision_each_time(
    nodes, postgres_url
):
    a, b, cuids = nodes
    client, other = cuids["client"], cuids["other"]
    for round_ in range(ROUNDS):
        network = f"198.51.100.{16 * round_}"
        # A /28 and a /29 inside it, each client through its own node, which node alternating between rounds.
        first = put_request(client, 100 + round_, f"{network}/28")
        second = put_request(other, 100 + round_, f"{network}/29")
        via = (a, b) if round_ % 2 else (b, a)
        answers = await asyncio.gather(via[0].service.answer(first), via[1].service.answer(second))
        assert sorted(answer.code for answer in answers) == ["2.01", "4.09"], (round_, answers)
        won, lost = (0, 1) if answers[0].code == "2.01" else (1, 0)
        winner: Request = (first, second)[won]
        conflict = answers[lost].body[SCOPE]["scope"][0]["conflict-information"]
        assert conflict["conflict-status"] == "request-inactive-other-active"
        assert conflict["conflict-cause"] == "overlapping-targets"
        assert conflict["conflict-scope"]["target-prefix"] == [f"{network}/29"]  # what the two have in common
        assert await _active(postgres_url, f'"{network}/') == [(winner.peer, 100 + round_)]
        for node in (a, b):  # both nodes hold the winner's, and only it
            for request, held in ((winner, True), ((first, second)[lost], False)):
                got = await node.service.answer(Request("GET", request.path, peer=request.peer))
                assert got.code == ("2.05" if held else "4.04"), (round_, node, got)
