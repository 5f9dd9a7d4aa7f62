"""Two `opendots server` processes on one PostgreSQL database (issue #18): what a client sets through one node besides
mitigations — its session configuration (RFC 9132 §4.5) and telemetry setup (RFC 9244 §7) — is found through the
other, whose decisions it governs: the heartbeats it sends (§4.7) follow the interval set through the first."""

from __future__ import annotations

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
from tests.helpers.cluster import DotsClient, start_node
from tests.helpers.polling import until

pytestmark = pytest.mark.timeout(180)


async def test_a_session_configuration_and_telemetry_setup_set_through_one_node_hold_on_the_other(
    pki_dir, postgres_url, tmp_path
):
    pki = pki_with_fast_heartbeats(pki_dir, tmp_path / "pki")
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki / "server.toml").clients}["client"]
    a = await start_node(pki, "a", postgres_url)
    b = await start_node(pki, "b", postgres_url)
    through_a = await DotsClient.open(pki, "client", cuid)
    through_b = await DotsClient.open(pki, "client", cuid)
    heartbeats = count_heartbeats(through_b)
    try:
        assert (await call(through_a, a, aiocoap.PUT, "config/sid=1", fast_config(1))).code == aiocoap.CREATED
        path, setup = telemetry_config(cuid)
        assert (await call(through_a, a, aiocoap.PUT, path, setup)).code == aiocoap.CREATED

        # The client's session moves to B (its DTLS peer lands there): B answers with what it set through A.
        async def b_has_the_configuration() -> bool:
            return await heartbeat_interval(through_b, b) == FAST

        await until(b_has_the_configuration, "GET /config through B shows the configuration set through A")
        assert await measurement_interval(through_b, b, path) == "5-minutes"
        assert (await b.status())["cluster"]["clients-followed"] >= 1

        # B heartbeats the client every FAST seconds as configured through A, not every 30 s (the default).
        async def b_heartbeats_fast() -> bool:
            return heartbeats.count >= 2

        await until(b_heartbeats_fast, "B sends heartbeats at the interval set through A")

        # Withdrawn through A: B answers with its defaults again.
        assert (await call(through_a, a, aiocoap.DELETE, "config")).code == aiocoap.DELETED

        async def b_back_to_defaults() -> bool:
            return await heartbeat_interval(through_b, b) == 30

        await until(b_back_to_defaults, "B answers the defaults once the configuration is deleted through A")
    finally:
        await through_a.close()
        await through_b.close()
        for node in (a, b):
            await node.stop()
