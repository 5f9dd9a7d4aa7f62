"""`opendots server --workers 2` on one SQLite file (issue #18): what a client sets through one worker besides
mitigations — its session configuration (RFC 9132 §4.5) and telemetry setup (RFC 9244 §7) — is found through the
other (a TLS reconnect or a new DTLS port may land there), whose heartbeats (§4.7) follow the interval it set."""

from __future__ import annotations

import asyncio
import signal

import aiocoap
import pytest

from opendots.config import ServerConfig
from tests.helpers.client_state import (
    FAST,
    call,
    count_heartbeats,
    fast_config,
    heartbeat_interval,
    measurement_interval,
    pki_with_fast_heartbeats,
    telemetry_config,
)
from tests.helpers.polling import until
from tests.helpers.workers import clients_in_each_worker, start_workers

pytestmark = pytest.mark.timeout(240)


async def test_a_session_configuration_and_telemetry_setup_set_through_one_worker_hold_in_the_other(pki_dir, tmp_path):
    pki = pki_with_fast_heartbeats(pki_dir, tmp_path / "pki")
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki / "server.toml").clients}["client"]
    node = await start_workers(pki, 2)
    opened = []
    try:
        opened = await clients_in_each_worker(pki, node, cuid)
        first, worker = opened[0]
        other = next(client for client, held_by in opened if held_by != worker)
        # Heartbeats counted on every context whose session is in the other worker: it sends them to the last one.
        counters = [count_heartbeats(client) for client, held_by in opened if held_by != worker]

        assert (await call(first, node, aiocoap.PUT, "config/sid=1", fast_config(1))).code == aiocoap.CREATED
        path, setup = telemetry_config(cuid)
        assert (await call(first, node, aiocoap.PUT, path, setup)).code == aiocoap.CREATED
        # Through the other worker: it read the change log before deciding (RFC 9132 §4.5.3, RFC 9244 §7.1.1).
        assert await heartbeat_interval(other, node) == FAST
        assert await measurement_interval(other, node, path) == "5-minutes"

        async def heartbeats_fast() -> bool:
            return sum(counter.count for counter in counters) >= 2

        await until(heartbeats_fast, "the other worker heartbeats at the interval set through the first")
        status = await node.status()
        assert sum(w["cluster"]["clients-followed"] for w in status["workers"]) >= 1
    finally:
        for client, _ in opened:
            await client.close()
        node.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(node.process.wait(), 30) == 0
