"""`opendots server --workers 2` on one SQLite file: RFC 9132 §4.5.2 'sid' ordering holds whichever worker a
client's /config PUTs reach (a TLS reconnect, or a DTLS peer re-handshaking from a new port, lands on another
worker): a PUT whose 'sid' is lower than the one in force is refused (4.00), and of two PUTs racing through the two
workers the higher 'sid' is the one left in force, in both workers and in the database."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal
from tests.helpers.client_state import CONFIG, call, pki_with_fast_heartbeats
from tests.helpers.cluster import DotsClient, Node
from tests.helpers.workers import clients_in_each_worker, start_workers

pytestmark = pytest.mark.timeout(240)

ROUNDS = 30


def config(sid: int) -> dict:
    """A session configuration telling its sid apart by its heartbeat interval (RFC 9132 §4.5.2)."""
    parameters = {"heartbeat-interval": {"current-value": 10 + sid}, "missing-hb-allowed": {"current-value": 3}}
    return {CONFIG: {"mitigating-config": parameters, "idle-config": parameters}}


async def interval_in_force(client: DotsClient, node: Node) -> int:
    response = await call(client, node, aiocoap.GET, "config")
    assert response.code == aiocoap.CONTENT, response
    return decode_signal(response.payload)[CONFIG]["idle-config"]["heartbeat-interval"]["current-value"]


def stored_sid(db: Path) -> int:
    connection = sqlite3.connect(db)
    try:
        (text,) = connection.execute("SELECT config FROM signal_session_configs WHERE client = 'client'").fetchone()
    finally:
        connection.close()
    return json.loads(text)["sid"]


async def test_a_lower_sid_never_replaces_a_higher_one_through_another_worker(pki_dir, tmp_path):
    pki = pki_with_fast_heartbeats(pki_dir, tmp_path / "pki")
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki / "server.toml").clients}["client"]
    db = tmp_path / "node.db"
    node = await start_workers(pki, 2, db=str(db))
    opened = []
    try:
        opened = await clients_in_each_worker(pki, node, cuid)
        first, worker = opened[0]
        second = next(client for client, held_by in opened if held_by != worker)

        # One after the other: the second worker reads what the first installed before deciding.
        assert (await call(first, node, aiocoap.PUT, "config/sid=2", config(2))).code == aiocoap.CREATED
        refused = await call(second, node, aiocoap.PUT, "config/sid=1", config(1))
        assert refused.code == aiocoap.BAD_REQUEST, refused
        assert await interval_in_force(second, node) == 12

        # At once, through both workers, the higher sid alternately through each: whatever order they are
        # decided in, the higher one is in force afterwards (the lower one was decided first, or refused).
        for round_ in range(ROUNDS):
            low, high = 3 + 2 * round_, 4 + 2 * round_
            low_via, high_via = (first, second) if round_ % 2 else (second, first)
            answers = await asyncio.gather(
                call(low_via, node, aiocoap.PUT, f"config/sid={low}", config(low)),
                call(high_via, node, aiocoap.PUT, f"config/sid={high}", config(high)),
            )
            assert answers[1].code in (aiocoap.CREATED, aiocoap.CHANGED), answers[1]
            assert answers[0].code in (aiocoap.CREATED, aiocoap.CHANGED, aiocoap.BAD_REQUEST), answers[0]
            assert stored_sid(db) == high, f"round {round_}: sid {low} replaced sid {high}"
            assert await interval_in_force(first, node) == await interval_in_force(second, node) == 10 + high
    finally:
        for client, _ in opened:
            await client.close()
        node.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(node.process.wait(), 30) == 0
