"""The DTLS server's idle sweep (RFC 9132 §7: a server may close idle sessions) visits only the sessions that may be
due, so 20,000 sessions do not cost a walk of the whole table every 5 s on the event loop; an idle session still goes
at its deadline and an active one never. Sessions are real DTLS connections driven in memory: no socket."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from opendots.transport.dtls import DtlsConnection, client_context
from opendots.transport.dtls_remote import DtlsRemote
from opendots.transport.dtls_server import DtlsServerInterface
from tests.helpers import tls_files as files
from tests.helpers.dtls_memory import PEER, Pair

LOCAL = ("192.0.2.1", 4646)


class CountingConnection(DtlsConnection):
    """A client-side connection left mid-handshake that counts how often a sweep reads its start time."""

    reads = 0

    @property
    def created_at(self) -> float:
        type(self).reads += 1
        return self._created_at

    @created_at.setter
    def created_at(self, value: float) -> None:
        self._created_at = value


def _server(pki_dir: Path, *, idle_timeout: float, handshake_timeout: float) -> DtlsServerInterface:
    return DtlsServerInterface(
        None,  # no CoAP layer: these sessions carry no messages
        asyncio.get_running_loop(),
        files(pki_dir, "server"),
        max_sessions=10_000,
        idle_timeout=idle_timeout,
        handshake_timeout=handshake_timeout,
    )


def _add(server: DtlsServerInterface, connection: DtlsConnection, port: int, now: float) -> DtlsRemote:
    remote = DtlsRemote(server, connection, ("192.0.2.10", port), LOCAL)
    server.add_session((0, ("192.0.2.10", port)), remote, "192.0.2.10", now)
    return remote


async def test_a_sweep_with_nothing_due_visits_no_session_of_five_thousand(pki_dir):
    server = _server(pki_dir, idle_timeout=600, handshake_timeout=600)
    context = client_context(files(pki_dir, "client"), "localhost")
    start = time.monotonic()
    for port in range(5_000):
        _add(server, CountingConnection.connect(context, now=start), 10_000 + port, start)
    CountingConnection.reads = 0
    for sweep in range(1, 120):  # ten minutes of sweeps every 5 s, all before any deadline
        assert server.expire(start + 5 * sweep) == 0
    assert (CountingConnection.reads, server.sweep_visits, len(server.sessions)) == (0, 0, 5_000)

    # at the deadline every one of them goes, a slice of at most 1,000 per call
    visits = []
    while server.sweep_due(start + 600):
        before = server.sweep_visits
        server.expire(start + 600, limit=1_000)
        visits.append(server.sweep_visits - before)
    assert visits == [1_000] * 5 and not server.sessions and server.stats().expired_total == 5_000


async def test_an_active_session_is_never_closed_and_an_idle_one_goes_at_its_deadline(pki_dir):
    server = _server(pki_dir, idle_timeout=60, handshake_timeout=10)
    pair = Pair(server.listener, DtlsConnection.connect(client_context(files(pki_dir, "client"), "localhost"), now=0))
    pair.pump()
    connection = pair.server
    assert connection is not None and connection.established
    start = connection.last_activity
    remote = _add(server, connection, PEER[1], start)

    pair.client.send(b"\x40\x01\x12\x34")  # activity at start + 50 (a CoAP message)
    for datagram in pair.client.datagrams_to_send():
        connection.receive_datagram(datagram, start + 50)
    assert server.expire(start + 60) == 0 and server.sessions  # due by its first deadline, but it was active
    assert server.sweep_visits == 1
    for sweep in range(1, 10):
        assert server.expire(start + 60 + 5 * sweep) == 0
    assert server.sweep_visits == 1  # not visited again before its new deadline
    assert server.expire(start + 110) == 1 and not server.sessions and connection.closed
    assert server.sweep_visits == 2 and remote.table_key not in server.sessions


async def test_a_session_that_completes_its_handshake_then_falls_silent_goes_after_the_idle_timeout(pki_dir):
    """idle_timeout (0.3 s) shorter than the handshake timeout (10 s): the session is swept at its idle deadline."""
    server = _server(pki_dir, idle_timeout=0.3, handshake_timeout=10)
    pair = Pair(server.listener, DtlsConnection.connect(client_context(files(pki_dir, "client"), "localhost"), now=0))
    pair.pump(rounds=2)
    connection = pair.server
    assert connection is not None and not connection.established
    _add(server, connection, PEER[1], connection.created_at)
    pair.pump()
    assert connection.established
    assert server.expire(connection.last_activity + 0.29) == 0
    assert server.expire(connection.last_activity + 0.3) == 1 and not server.sessions


async def test_a_stalled_handshake_goes_at_the_handshake_timeout_and_a_replaced_session_leaves_no_entry(pki_dir):
    server = _server(pki_dir, idle_timeout=600, handshake_timeout=10)
    context = client_context(files(pki_dir, "client"), "localhost")
    start = time.monotonic()
    first = _add(server, DtlsConnection.connect(context, now=start), 20_000, start)
    second = _add(server, DtlsConnection.connect(context, now=start + 1), 20_000, start + 1)  # same address
    assert server.sessions[first.table_key] is second
    assert server.expire(start + 10) == 0  # the first entry is the replaced session's: dropped, nothing closed
    assert server.expire(start + 11) == 1 and second.connection.closed and not server.sessions
    assert not server.sweep_due(start + 10_000)
