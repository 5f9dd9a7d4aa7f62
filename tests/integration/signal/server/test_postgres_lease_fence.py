"""Two `opendots server` processes on one PostgreSQL database (issue #18): the mitigator lease holder whose lease
session is killed (pg_terminate_backend, as a database restart or an administrator would) stops driving the
mitigators at once and says so (`opendots admin status`: standby); the other node takes the lease and drives after
its grace, so there is never a moment with two drivers (opendots.signal.server.shell.lease_fence)."""

from __future__ import annotations

import asyncio
import signal
import urllib.parse

import aiocoap
import asyncpg
import pytest

from opendots.config import ServerConfig
from opendots.store.postgres_cluster import last_change, lease_holder_pid
from tests.helpers.cli import invoke
from tests.helpers.cluster import DotsClient, Node, logs_on_failure, start_node
from tests.helpers.polling import until
from tests.helpers.tcp_relay import HeldCloseRelay

pytestmark = pytest.mark.timeout(180)


async def _calls(node: Node) -> int:
    """Mitigator calls NODE made (apply, update, withdraw; ok or failed)."""
    return (await node.status())["cluster"]["actuator-calls"]


async def test_a_holder_whose_lease_session_is_killed_stops_driving_before_the_other_node_drives(pki_dir, postgres_url):
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients}["client"]
    a = await start_node(pki_dir, "a", postgres_url)
    b = await start_node(pki_dir, "b", postgres_url)
    client = await DotsClient.open(pki_dir, "client", cuid)
    try:
        with logs_on_failure(a, b):
            assert (await a.status())["drives-mitigators"]
            assert (await client.put(a, 1, "203.0.113.0/28")).code == aiocoap.CREATED

            async def a_applied() -> bool:
                return await _calls(a) == 1

            await until(a_applied, "A applies the mitigation")
            connection = await asyncpg.connect(postgres_url)
            try:
                holder = await lease_holder_pid(connection)
                assert await connection.fetchval("SELECT pg_terminate_backend($1)", holder)
            finally:
                await connection.close()

            async def a_standby() -> bool:
                status = await a.status()
                return not status["cluster"]["lease"] and not status["drives-mitigators"]

            await until(a_standby, "A notices its lease session is gone and stops driving")
            shown = await asyncio.to_thread(invoke, "admin", "-c", str(pki_dir / "server-a.toml"), "status")
            assert "standby" in shown.output, shown.output
            calls = await _calls(a)

            states: list[str] = []

            async def b_drives() -> bool:
                status = await b.status()
                states.append(status["cluster"]["lease-state"])
                return status["cluster"]["lease"] and status["drives-mitigators"]

            await until(b_drives, "B takes the lease and drives after its grace")
            # B held the lock without driving for its grace (3 s, polled every 0.1 s) before it drove.
            assert "grace" in states and states[-1] == "holds", states
            # B restored what the database holds; A, though it still serves, makes no mitigator call from now on.
            before = await _calls(b)
            assert (await client.put(a, 2, "203.0.113.64/28")).code == aiocoap.CREATED

            async def b_acted() -> bool:
                return await _calls(b) == before + 1  # mid 2 applied

            await until(b_acted, "B applies what is asked through A")
            assert await _calls(a) == calls
            assert (await a.status())["cluster"]["lease-state"] == "standby"
    finally:
        await client.close()
        for node in (a, b):
            await node.stop()


async def test_a_holder_that_could_not_notice_its_lease_was_lost_makes_no_mitigator_call_when_it_wakes(
    pki_dir, postgres_url
):
    """The worst case for a lease: the holder hears nothing of its session's end (here: stopped with SIGSTOP, as a
    stalled host) while the other node takes the lease and applies a new mitigation. Woken, the old holder reads
    that change too, but its fence ran out while it slept: it makes no mitigator call."""
    cuid = {c.name: c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients}["client"]
    a = await start_node(pki_dir, "a", postgres_url)
    b = await start_node(pki_dir, "b", postgres_url)
    client = await DotsClient.open(pki_dir, "client", cuid)
    try:
        with logs_on_failure(a, b):
            assert (await a.status())["drives-mitigators"]
            calls = await _calls(a)
            a.process.send_signal(signal.SIGSTOP)
            try:
                connection = await asyncpg.connect(postgres_url)
                try:
                    assert await connection.fetchval(
                        "SELECT pg_terminate_backend($1)", await lease_holder_pid(connection)
                    )
                finally:
                    await connection.close()

                async def b_drives() -> bool:
                    return (await b.status())["drives-mitigators"]

                await until(b_drives, "B takes the lease and drives after its grace")
                assert (await client.put(b, 1, "203.0.113.0/28")).code == aiocoap.CREATED

                async def b_applied() -> bool:
                    return await _calls(b) == 1

                await until(b_applied, "B applies the new mitigation")
            finally:
                a.process.send_signal(signal.SIGCONT)

            async def a_read_it() -> bool:
                # The change log's end, not B's `seen`: a scoped write does not move its writer's place past its own
                # entry (other scopes may have written meanwhile), so B's stays behind until B next reads the log.
                connection = await asyncpg.connect(postgres_url)
                try:
                    last = await last_change(connection)
                finally:
                    await connection.close()
                status = await a.status()
                return last > 0 and status["cluster"]["seen"] == last and not status["cluster"]["lease"]

            await until(a_read_it, "A, woken, reads B's change and finds its lease gone")
            assert await _calls(a) == calls  # not applied a second time by a node that no longer holds the lease
            assert await _calls(b) == 1
    finally:
        await client.close()
        for node in (a, b):
            await node.stop()


async def test_a_holder_that_reads_its_killed_sessions_error_but_not_its_close_gives_the_lease_up(
    pki_dir, postgres_url
):
    """The killed backend's FATAL reaches the holder while its lease session is idle, the session's close does not
    (held back by a relay): asyncpg then fails the next lease check with an internal error and aborts the
    connection without calling its termination listener. That check's failure is the only news the lease is gone:
    the holder must give the lease up on it, not lose its lease checks and go on saying it holds the lease."""
    split = urllib.parse.urlsplit(postgres_url)
    relay = await HeldCloseRelay(split.hostname or "127.0.0.1", split.port or 5432).start()
    relayed = urllib.parse.urlunsplit(split._replace(netloc=f"{split.username}@127.0.0.1:{relay.port}"))
    a = await start_node(pki_dir, "a", relayed)
    try:
        with logs_on_failure(a):
            assert (await a.status())["drives-mitigators"]
            connection = await asyncpg.connect(postgres_url)
            try:
                assert await connection.fetchval("SELECT pg_terminate_backend($1)", await lease_holder_pid(connection))
            finally:
                await connection.close()

            async def a_gave_it_up() -> bool:
                status = await a.status()
                return not status["cluster"]["lease"] and not status["drives-mitigators"]

            await until(a_gave_it_up, "A gives the lease up on the check that failed")
    finally:
        await a.stop()
        await relay.close()
