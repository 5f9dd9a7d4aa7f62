"""Several server nodes on one PostgreSQL database: what a node reads to follow the others, the lock its mitigation
writes take, and the mitigator lease.

- Every write to `signal_mitigations` appends the row's key to `signal_mitigation_changes` and NOTIFYs the key on
  channel `opendots_mitigations` (a trigger, migration 3 of opendots.store.postgres), whichever node writes it.
- A node that decides a mitigation write first takes the locks of its scope (opendots.store.postgres_scopes:
  WRITE_LOCK exclusive for what it cannot scope, shared for the rest, so a node of the version before, which took
  WRITE_LOCK alone, still excludes every scoped write), reads the rows changed since the last change it saw (in the
  same round trip), feeds them to its core, decides and stores: every decision is taken on the database's current
  rows, and 'mid' rules and conflicts between clients hold across nodes by construction. The change log's entries
  commit in `seq` order.
- The mitigator lease is LEASE_LOCK, a session advisory lock held on a connection of its own: PostgreSQL drops it
  when that session ends (process killed: at once; host gone: after the TCP keepalives set here, ~5 s).
- Counters measured by the lease holder's mitigators are not stored: they are NOTIFYed on `opendots_counters`.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from opendots.domain import Counters
from opendots.domain.counters import COUNTER_FIELDS
from opendots.store.postgres import TIMEOUT, PostgresSignalStore, application_name
from opendots.store.records import MitigationRecord, StoreError
from opendots.store.signal import mitigation_record

WRITE_LOCK = 0x0D0751  # any numbers, the same on every node (the migration lock is 0x0D075)
LEASE_LOCK = 0x0D0752
MITIGATIONS_CHANNEL = "opendots_mitigations"
COUNTERS_CHANNEL = "opendots_counters"
PEERS_CHANNEL = "opendots_peers"
# Where the lease's session runs: a holder whose host vanished (no FIN) is dropped after ~idle + interval * count.
LEASE_KEEPALIVES = {"tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3"}
LOG_KEPT = "10 minutes"  # change-log entries older than this are pruned; a node further behind reads everything

Key = tuple[str, int]
Changed = list[tuple[Key, MitigationRecord | None]]

_CHANGED_ROWS = """
    WITH changed AS (
        SELECT max(seq) AS seq, cuid, mid FROM signal_mitigation_changes WHERE seq > $1 GROUP BY cuid, mid
    )
    SELECT changed.seq AS changed_seq, changed.cuid AS changed_cuid, changed.mid AS changed_mid, m.*
    FROM changed LEFT JOIN signal_mitigations m ON m.cuid = changed.cuid AND m.mid = changed.mid
    ORDER BY changed.seq
"""
_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM signal_mitigation_changes"


def _changed(rows: list[asyncpg.Record]) -> Changed:
    return [
        ((row["changed_cuid"], row["changed_mid"]), mitigation_record(row) if row["cuid"] is not None else None)
        for row in rows
    ]


async def changes_since(connection: asyncpg.Connection, seen: int) -> tuple[int, Changed]:
    """The mitigations changed after change SEEN, each once with the row the database holds now (None: deleted),
    in the order of their last change; and the last change read."""
    rows = await connection.fetch(_CHANGED_ROWS, seen)
    return (max(seen, rows[-1]["changed_seq"]) if rows else seen), _changed(rows)


async def everything(connection: asyncpg.Connection) -> tuple[int, list[MitigationRecord]]:
    """Every mitigation row and the last change they include (a node that lost track reads this instead)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        rows = await connection.fetch("SELECT * FROM signal_mitigations ORDER BY cuid, mid")
        return await connection.fetchval(_LAST_SEQ), [mitigation_record(row) for row in rows]


async def read_changes(store: PostgresSignalStore, seen: int) -> tuple[int, Changed]:
    """`changes_since` without the lock (before a read, or after a NOTIFY)."""
    try:
        async with store.pool.acquire(timeout=store.timeout) as connection:
            return await changes_since(connection, seen)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
        raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem


async def read_everything(store: PostgresSignalStore) -> tuple[int, list[MitigationRecord]]:
    try:
        async with store.pool.acquire(timeout=store.timeout) as connection:
            return await everything(connection)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
        raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem


async def prune(store: PostgresSignalStore) -> int:
    """Drop change-log entries older than LOG_KEPT; how many."""
    async with store.pool.acquire(timeout=store.timeout) as connection:
        status = await connection.execute(
            f"DELETE FROM signal_mitigation_changes WHERE at < now() - interval '{LOG_KEPT}'"
        )
    return int(status.rpartition(" ")[2])


async def notify(store: PostgresSignalStore, channel: str, payload: str) -> None:
    async with store.pool.acquire(timeout=store.timeout) as connection:
        await connection.execute("SELECT pg_notify($1, $2)", channel, payload)


def counters_payload(key: str, counters: Counters) -> str:
    return json.dumps({"key": key, **{name: getattr(counters, name) for name in _COUNTER_NAMES}})


def counters_from(payload: str) -> tuple[str, Counters] | None:
    """(mitigation key, counters) of an `opendots_counters` payload; None for anything else."""
    try:
        data: Any = json.loads(payload)
        values = {name: data.get(name) for name in _COUNTER_NAMES}
        if not isinstance(data.get("key"), str) or not all(v is None or type(v) is int for v in values.values()):
            return None
        return data["key"], Counters(**values)
    except (ValueError, AttributeError):
        return None


_COUNTER_NAMES = COUNTER_FIELDS


async def connect_session(url: str, *, keepalives: bool = False) -> asyncpg.Connection:
    """A connection of its own (LISTEN, or the lease's session), outside the pool."""
    try:
        settings = {"application_name": application_name(), **(LEASE_KEEPALIVES if keepalives else {})}
        return await asyncpg.connect(url, timeout=TIMEOUT, command_timeout=TIMEOUT, server_settings=settings)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
        raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem


async def try_lease(connection: asyncpg.Connection) -> bool:
    """Take the mitigator lease on CONNECTION's session if no other session holds it."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEASE_LOCK))


async def last_change(connection: asyncpg.Connection) -> int:
    """The change log's last entry: where a node that has read everything stands (its status' `seen`)."""
    return await connection.fetchval(_LAST_SEQ)


async def lease_holder_pid(connection: asyncpg.Connection) -> int | None:
    """The backend pid of the session holding the lease of CONNECTION's database (None: nobody): for operators and
    tests. Advisory locks belong to a database, but pg_locks lists every database of the server: without the filter
    the holder of another cluster's lease on the same server could be named (and an operator kill the wrong one)."""
    return await connection.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint << 32 | objid::bigint = $1",
        LEASE_LOCK,
    )
