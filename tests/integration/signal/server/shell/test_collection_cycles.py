"""A heartbeat exchange leaves nothing for the garbage collector (opendots.signal.server.shell.collection): what a
tick walks is what survived the young collections since the previous tick, so every object a heartbeat leaves in a
reference cycle, and every tracked deduplication entry it leaves for EXCHANGE_LIFETIME, is walked once per
heartbeat. Counted over real DTLS sessions, never timed."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiocoap.numbers.codes import Code

from opendots.config import ServerConfig
from opendots.signal.server.core import HeartbeatDue
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.transport.aiocoap_hooks import TimerlessDedupMessageManager
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.heartbeat_sessions import HeartbeatSession, open_heartbeat_sessions

SESSIONS = 4
ROUNDS = 25  # heartbeats per session


async def started(pki_dir: Path, tmp_path: Path) -> RunningSignalServer:
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.full_collection_interval = 3600  # no tick while counting
    return await start_signal_server(config, bind=[("127.0.0.1", free_port())], tls=False)


def message_manager(running: RunningSignalServer) -> TimerlessDedupMessageManager:
    dtls = running.endpoint.dtls
    assert dtls is not None and isinstance(dtls.message_manager, TimerlessDedupMessageManager)
    return dtls.message_manager


@contextmanager
def no_collection() -> Iterator[None]:
    """Nothing is collected inside: what the block leaves in cycles is what the next gc.collect() finds."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_heartbeat_answered_by_the_server_leaves_no_reference_cycle(pki_dir: Path, tmp_path: Path):
    running = await started(pki_dir, tmp_path)
    try:
        sessions = await open_heartbeat_sessions(files(pki_dir, "client"), running.endpoint.dtls_addresses[0][1], 4)
        for session in sessions:  # first-use caches filled
            assert await session.round_trip() == Code.CHANGED
        with no_collection():
            for _ in range(ROUNDS):
                codes = await asyncio.gather(*(session.round_trip() for session in sessions))
                assert codes == [Code.CHANGED] * SESSIONS
            await asyncio.sleep(0.05)  # the last answers' callbacks are done
            in_cycles = gc.collect()
        # aiocoap's own TokenManager left ~17 objects per request in a cycle through its Pipe (1,700 here).
        assert in_cycles < SESSIONS * ROUNDS / 4, f"{in_cycles} objects in cycles after {SESSIONS * ROUNDS} heartbeats"
        for session in sessions:
            session.close()
    finally:
        await running.stop()


async def heartbeat_from_the_server(running: RunningSignalServer, session: HeartbeatSession, client: str) -> None:
    received = session.server_heartbeats
    running.service.on_event(HeartbeatDue(client, peer_hb_status=True))
    for _ in range(200):
        if session.server_heartbeats > received and client not in running.heartbeats_out:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the server's heartbeat was not answered")


async def test_a_heartbeat_sent_by_the_server_leaves_no_reference_cycle_and_nothing_outstanding(
    pki_dir: Path, tmp_path: Path
):
    running = await started(pki_dir, tmp_path)
    try:
        (session,) = await open_heartbeat_sessions(files(pki_dir, "client"), running.endpoint.dtls_addresses[0][1], 1)
        (client,) = running.resource.remotes
        await heartbeat_from_the_server(running, session, client)  # first-use caches filled
        with no_collection():
            for _ in range(ROUNDS):
                await heartbeat_from_the_server(running, session, client)
            await asyncio.sleep(0.05)
            in_cycles = gc.collect()
        # aiocoap's Context.request left ~40 objects per request in cycles (tasks, generator, futures, Pipe).
        assert in_cycles < ROUNDS / 2, f"{in_cycles} objects in cycles after {ROUNDS} heartbeats of the server's"
        assert running.heartbeats_out == {}
        token_manager = message_manager(running).token_manager
        assert token_manager.outgoing_requests == {}
        session.close()
    finally:
        await running.stop()


async def test_an_unanswered_server_heartbeat_is_given_up_by_the_next_one(pki_dir: Path, tmp_path: Path):
    """RFC 9132 §4.7: heartbeats are Non-confirmable, an unanswered one is a missed heartbeat; the server keeps at
    most one outstanding per client, so silent clients cannot make its table of requests grow."""
    running = await started(pki_dir, tmp_path)
    try:
        (session,) = await open_heartbeat_sessions(files(pki_dir, "client"), running.endpoint.dtls_addresses[0][1], 1)
        (client,) = running.resource.remotes
        session.application_data = lambda data: None  # the client stops answering
        token_manager = message_manager(running).token_manager
        for _ in range(5):
            running.service.on_event(HeartbeatDue(client, peer_hb_status=True))
            await asyncio.sleep(0.02)
        assert list(running.heartbeats_out) == [client]
        assert len(token_manager.outgoing_requests) == 1
        session.close()
    finally:
        await running.stop()
    assert running.heartbeats_out == {}  # the shutdown failed the last one, which let go of it


async def test_deduplication_entries_are_not_tracked_by_the_garbage_collector(pki_dir: Path, tmp_path: Path):
    """RFC 7252 §4.5: every message received is remembered for EXCHANGE_LIFETIME; the entries of messages without
    a stored response (a NON heartbeat's) are plain data, which no collection walks."""
    running = await started(pki_dir, tmp_path)
    try:
        sessions = await open_heartbeat_sessions(files(pki_dir, "client"), running.endpoint.dtls_addresses[0][1], 4)
        for _ in range(5):
            await asyncio.gather(*(session.round_trip() for session in sessions))
        recent = message_manager(running).recent
        assert len(recent) >= 6 * SESSIONS
        gc.collect(0)  # a young collection untracks tuples of untracked items, as CPython does on its own
        tracked = sum(gc.is_tracked(key) for key in recent.responses) + sum(
            gc.is_tracked(entry) for entry in recent._deadlines
        )
        assert tracked == 0, f"{tracked} tracked objects among {len(recent)} deduplication entries"
        for session in sessions:
            session.close()
    finally:
        await running.stop()
