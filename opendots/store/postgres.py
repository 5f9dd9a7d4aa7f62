"""The signal channel's store on PostgreSQL (asyncpg): the same records and change sets as the SQLite store, with
awaited writes (the shell's AsyncSignalStore path), a connection pool and versioned schema migrations.

Chosen by URL: `[server] db = "postgresql://user@host/dbname"` (or `--db`); the data channel's tables go to the
same database (opendots.store.postgres_data). Every `apply` is one transaction; a failure of any kind the database
reports (connection lost, constraint, server shutting down) is a StoreError and nothing of the change is kept.

No overlap search of targets here: the core decides conflicts on its in-memory index of every mitigation, up to date
under the scope's locks (opendots.store.postgres_scopes), so a GiST search was never asked; its schema component is
dropped by migration (opendots.store.postgres_targets says why).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from opendots.store import postgres_targets
from opendots.store.records import (
    CuidRecord,
    SessionConfigRecord,
    SignalChanges,
    SignalState,
    StoreError,
    TelemetryReportRecord,
    TelemetrySetupRecord,
)
from opendots.store.signal import mitigation_record, mitigation_row, renewal_row, single_mitigation

# Any one number, the same on every node: migrations run under this advisory lock, so two servers started at once on
# one database do not both create the tables.
_MIGRATION_LOCK = 0x0D075

_MITIGATION_COLUMNS = (
    "cuid, mid, client, cdid, request, lifetime, status, started_at, expires_at, terminating_until, attack_status"
)

# The signal component's migrations, in order (version N is _MIGRATIONS[N-1]); never edit one that has shipped, add
# the next. Times are double precision epoch seconds like the records; 'request', 'config' and 'setup' are `json`
# (not jsonb), which keeps the text, and so the members' order, as the client sent it.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE signal_mitigations (
        cuid text NOT NULL,
        mid bigint NOT NULL,
        client text NOT NULL,
        cdid text,
        request json NOT NULL,
        lifetime bigint NOT NULL,
        status integer NOT NULL,
        started_at double precision NOT NULL,
        expires_at double precision,
        terminating_until double precision,
        attack_status integer,
        PRIMARY KEY (cuid, mid)
    );
    CREATE TABLE signal_session_configs (client text PRIMARY KEY, config json NOT NULL);
    CREATE TABLE signal_cuids (cuid text PRIMARY KEY, client text NOT NULL, first_seen double precision NOT NULL);
    CREATE TABLE signal_telemetry_setups (
        cuid text NOT NULL,
        tsid bigint NOT NULL,
        client text NOT NULL,
        setup json NOT NULL,
        PRIMARY KEY (cuid, tsid)
    )
    """,
    """
    CREATE TABLE signal_telemetry_reports (
        cuid text NOT NULL,
        tmid bigint NOT NULL,
        client text NOT NULL,
        entries json NOT NULL,
        PRIMARY KEY (cuid, tmid)
    )
    """,
    # 3: several nodes on one database. Every write to a mitigation row, by any node, appends its key to a change
    # log and NOTIFYs "<writer's application_name> <cuid>/<mid>" (delivered at commit): the other nodes read the
    # rows changed since the last change they saw (opendots.store.postgres_cluster), so none decides on a table
    # older than the database.
    """
    CREATE TABLE signal_mitigation_changes (
        seq bigserial PRIMARY KEY,
        cuid text NOT NULL,
        mid bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX signal_mitigation_changes_at ON signal_mitigation_changes (at);
    CREATE FUNCTION signal_mitigation_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        changed signal_mitigations;
    BEGIN
        IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
        INSERT INTO signal_mitigation_changes (cuid, mid) VALUES (changed.cuid, changed.mid);
        PERFORM pg_notify(
            'opendots_mitigations', current_setting('application_name') || ' ' || changed.cuid || '/' || changed.mid
        );
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER signal_mitigations_changed AFTER INSERT OR UPDATE OR DELETE ON signal_mitigations
        FOR EACH ROW EXECUTE FUNCTION signal_mitigation_changed();
    -- A node's locked decision in one round trip: wait for the (session) advisory lock LOCK_KEY, then read, with a
    -- snapshot taken after the wait (a VOLATILE function's statements each take their own), every mitigation
    -- changed after entry AFTER, once, as it is now (NULL columns: deleted), in the order of its last change.
    CREATE FUNCTION signal_lock_and_read_changes(after bigint, lock_key bigint) RETURNS TABLE (
        changed_seq bigint, changed_cuid text, changed_mid bigint, cuid text, mid bigint, client text, cdid text,
        request json, lifetime bigint, status integer, started_at double precision, expires_at double precision,
        terminating_until double precision, attack_status integer
    ) LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        PERFORM pg_advisory_lock(lock_key);
        RETURN QUERY
            WITH changed AS (
                SELECT max(c.seq) AS seq, c.cuid, c.mid FROM signal_mitigation_changes c WHERE c.seq > after
                GROUP BY c.cuid, c.mid
            )
            SELECT changed.seq, changed.cuid, changed.mid, m.cuid, m.mid, m.client, m.cdid, m.request, m.lifetime,
                m.status, m.started_at, m.expires_at, m.terminating_until, m.attack_status
            FROM changed LEFT JOIN signal_mitigations m ON m.cuid = changed.cuid AND m.mid = changed.mid
            ORDER BY changed.seq;
    END
    $$
    """,
]

_PUT_MITIGATION = (
    f"INSERT INTO signal_mitigations ({_MITIGATION_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
    " ON CONFLICT (cuid, mid) DO UPDATE SET client = excluded.client, cdid = excluded.cdid,"
    " request = excluded.request, lifetime = excluded.lifetime, status = excluded.status,"
    " started_at = excluded.started_at, expires_at = excluded.expires_at,"
    " terminating_until = excluded.terminating_until, attack_status = excluded.attack_status"
)
# A refresh leaves the request and the row's identity as stored (as in the SQLite store).
_RENEW_MITIGATION = (
    "UPDATE signal_mitigations SET lifetime = $1, status = $2, expires_at = $3, terminating_until = $4,"
    " attack_status = $5 WHERE cuid = $6 AND mid = $7"
)

# Each table with its key, the order `dump` lists rows in (json has no ordering operator).
TABLES = {
    "signal_mitigations": "cuid, mid",
    "signal_session_configs": "client",
    "signal_cuids": "cuid",
    "signal_telemetry_setups": "cuid, tsid",
    "signal_telemetry_reports": "cuid, tmid",
}
# Left out of `dump`: the change log grows with every write (it is how nodes follow each other, not state).


def redacted(url: str) -> str:
    """URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


# Seconds a connection attempt or one statement may take. Decisions are settled one at a time, so a database that
# stops answering would hold every request behind the one waiting: past this, the write is refused (5.03) instead.
TIMEOUT = 5.0


def application_name() -> str:
    """This process's name on its database sessions: the mitigation trigger puts it in each NOTIFY, so a node
    knows its own writes coming back (several nodes on one database)."""
    return f"opendots {socket.gethostname()}/{os.getpid()}"[:63]


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool: the store leaves no session state behind (no
    LISTEN, no session lock, no SET; transactions always end), and asyncpg's default reset costs a round trip on
    every release."""


async def connect_pool(url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = TIMEOUT) -> asyncpg.Pool:
    """A pool on URL, or StoreError saying why not (the password left out)."""
    try:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            command_timeout=timeout,
            reset=_keep_session,
            server_settings={"application_name": application_name()},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ValueError) as problem:
        raise StoreError(f"PostgreSQL {redacted(url)}: {problem or type(problem).__name__}") from None


async def migrate(pool: asyncpg.Pool, component: str, migrations: Sequence[str]) -> int:
    """Apply, in order and each in its own transaction, the migrations of COMPONENT this database has not seen;
    the version it is at afterwards. Safe against other nodes migrating at the same time (advisory lock)."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component text PRIMARY KEY, version integer NOT NULL)"
        )
        current = await connection.fetchval("SELECT version FROM schema_versions WHERE component = $1", component)
        current = current or 0
        if current > len(migrations):
            raise StoreError(
                f"the database's {component} schema is at version {current}, newer than this OpenDOTS knows "
                f"({len(migrations)}): upgrade OpenDOTS"
            )
        for version, script in enumerate(migrations[current:], start=current + 1):
            async with connection.transaction():  # a savepoint: a failing migration leaves the earlier ones
                await connection.execute(script)
                await connection.execute(
                    "INSERT INTO schema_versions (component, version) VALUES ($1, $2) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    component,
                    version,
                )
        return len(migrations)


def signal_components() -> list[tuple[str, Sequence[str]]]:
    """The signal channel's schema components, in the order they migrate (each builds on the ones before)."""
    from opendots.store import postgres_scopes, postgres_state

    return [
        ("signal", _MIGRATIONS),
        (postgres_targets.COMPONENT, postgres_targets.MIGRATIONS),
        (postgres_scopes.COMPONENT, postgres_scopes.MIGRATIONS),
        (postgres_state.COMPONENT, postgres_state.MIGRATIONS),  # after the tables it watches
    ]


class PostgresSignalStore:
    """AsyncSignalStore on PostgreSQL: `await PostgresSignalStore.open(url)`, then `load()` (what open read),
    `await apply(changes)`, `await dump()`, `await close()`."""

    def __init__(self, pool: asyncpg.Pool, url: str, timeout: float = TIMEOUT) -> None:
        self.pool = pool
        self.url = url
        self.timeout = timeout
        self._state = SignalState([], [], [], [])
        self.seen = 0
        """The last entry of the change log the state read at open includes (several nodes: what to read after)."""

    @classmethod
    async def open(cls, url: str, *, max_size: int = 4, timeout: float = TIMEOUT) -> PostgresSignalStore:
        """Connect, migrate the schema and read the stored state (returned by `load`); StoreError when any fails.
        TIMEOUT: seconds a connection or a statement may take before the write is refused."""
        pool = await connect_pool(url, max_size=max_size, timeout=timeout)
        store = cls(pool, url, timeout)
        try:
            for component, migrations in signal_components():
                await migrate(pool, component, migrations)
            store._state = await store.read()
        except BaseException as problem:
            await pool.close()
            if isinstance(problem, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                raise StoreError(f"PostgreSQL {redacted(url)}: {problem}") from problem
            raise
        return store

    def load(self) -> SignalState:
        """The state read when the store was opened (the server core starts from it before anything is served)."""
        return self._state

    async def read(self) -> SignalState:
        """Every stored record, read now."""
        async with self.pool.acquire() as connection, connection.transaction(isolation="repeatable_read"):
            rows = await connection.fetch(f"SELECT {_MITIGATION_COLUMNS} FROM signal_mitigations ORDER BY cuid, mid")
            configs = await connection.fetch("SELECT client, config FROM signal_session_configs ORDER BY client")
            cuids = await connection.fetch("SELECT cuid, client, first_seen FROM signal_cuids ORDER BY cuid")
            setups = await connection.fetch(
                "SELECT cuid, tsid, client, setup FROM signal_telemetry_setups ORDER BY cuid, tsid"
            )
            reports = await connection.fetch(
                "SELECT cuid, tmid, client, entries FROM signal_telemetry_reports ORDER BY cuid, tmid"
            )
            self.seen = await connection.fetchval("SELECT coalesce(max(seq), 0) FROM signal_mitigation_changes")
        mitigations = [mitigation_record(row) for row in rows]
        return SignalState(
            mitigations,
            [SessionConfigRecord(row["client"], json.loads(row["config"])) for row in configs],
            [CuidRecord(row["cuid"], row["client"], row["first_seen"]) for row in cuids],
            [TelemetrySetupRecord(r["client"], r["cuid"], r["tsid"], json.loads(r["setup"])) for r in setups],
            [TelemetryReportRecord(r["client"], r["cuid"], r["tmid"], json.loads(r["entries"])) for r in reports],
        )

    async def apply(self, changes: SignalChanges) -> None:
        """Persist CHANGES in one transaction; StoreError on failure (nothing is then changed)."""
        if not changes:
            return
        try:
            async with self.pool.acquire(timeout=self.timeout) as connection:
                await write_committed(connection, changes)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as problem:
            raise StoreError(f"PostgreSQL: {problem or type(problem).__name__}") from problem

    async def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every stored row, sorted (as the SQLite store's dump; json columns as their text)."""
        async with self.pool.acquire() as connection:
            return {
                table: [tuple(row) for row in await connection.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
                for table, key in TABLES.items()
            }

    async def close(self) -> None:
        """Close the pool (awaited: the server's stop awaits a store's close when it is a coroutine)."""
        await self.pool.close()


class _Rows:
    """CHANGES' rows as the statements take them, serialised once (a TypeError, a bug, comes before any write)."""

    def __init__(self, changes: SignalChanges) -> None:
        self.puts = [mitigation_row(m) for m in changes.put_mitigations]
        self.configs = [(c.client, json.dumps(c.config)) for c in changes.put_session_configs]
        self.setups = [(t.cuid, t.tsid, t.client, json.dumps(t.setup)) for t in changes.put_telemetry_setups]
        self.reports = [(r.cuid, r.tmid, r.client, json.dumps(r.entries)) for r in changes.put_telemetry_reports]


async def write_committed(connection: asyncpg.Connection, changes: SignalChanges) -> None:
    """CHANGES made durable on CONNECTION (no transaction open): the common requests (a create, a refresh) as one
    statement, atomic in its own implicit transaction, without the round trips of BEGIN and COMMIT (a renewal of a
    row that is not there, which changed nothing, is written whole instead); anything else in one transaction."""
    single = single_mitigation(changes)
    if single is not None:
        record, renewed = single
        if not renewed or await connection.execute(_RENEW_MITIGATION, *renewal_row(record)) != "UPDATE 1":
            await connection.execute(_PUT_MITIGATION, *mitigation_row(record))
        return
    rows = _Rows(changes)  # serialised before the transaction: a value that is not JSON (a bug) writes nothing
    async with connection.transaction():
        await write(connection, changes, rows)


async def write(connection: asyncpg.Connection, changes: SignalChanges, rows: _Rows | None = None) -> None:
    """CHANGES' statements on CONNECTION, inside the transaction the caller holds open."""
    rows = rows or _Rows(changes)
    if changes.delete_mitigations:
        await connection.executemany(
            "DELETE FROM signal_mitigations WHERE cuid = $1 AND mid = $2", changes.delete_mitigations
        )
    if rows.puts:
        await connection.executemany(_PUT_MITIGATION, rows.puts)
    for record in changes.renewed_mitigations:
        if await connection.fetchval(_RENEW_MITIGATION + " RETURNING 1", *renewal_row(record)) is None:
            await connection.execute(_PUT_MITIGATION, *mitigation_row(record))
    if changes.delete_session_configs:
        await connection.executemany(
            "DELETE FROM signal_session_configs WHERE client = $1",
            [(client,) for client in changes.delete_session_configs],
        )
    if rows.configs:
        await connection.executemany(
            "INSERT INTO signal_session_configs (client, config) VALUES ($1, $2)"
            " ON CONFLICT (client) DO UPDATE SET config = excluded.config",
            rows.configs,
        )
    if changes.put_cuids:
        await connection.executemany(
            "INSERT INTO signal_cuids (cuid, client, first_seen) VALUES ($1, $2, $3) ON CONFLICT (cuid) DO NOTHING",
            [(c.cuid, c.client, c.first_seen) for c in changes.put_cuids],
        )
    if changes.delete_telemetry_setups:
        await connection.executemany(
            "DELETE FROM signal_telemetry_setups WHERE cuid = $1 AND tsid = $2",
            changes.delete_telemetry_setups,
        )
    if rows.setups:
        await connection.executemany(
            "INSERT INTO signal_telemetry_setups (cuid, tsid, client, setup) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (cuid, tsid) DO UPDATE SET client = excluded.client, setup = excluded.setup",
            rows.setups,
        )
    if changes.delete_telemetry_reports:
        await connection.executemany(
            "DELETE FROM signal_telemetry_reports WHERE cuid = $1 AND tmid = $2",
            changes.delete_telemetry_reports,
        )
    if rows.reports:
        await connection.executemany(
            "INSERT INTO signal_telemetry_reports (cuid, tmid, client, entries) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (cuid, tmid) DO UPDATE SET client = excluded.client, entries = excluded.entries",
            rows.reports,
        )


async def upgrade(url: str) -> dict[str, int]:
    """`opendots db upgrade`: bring URL's schema to this version's; the version each component is at."""
    from opendots.store import postgres_data

    pool = await connect_pool(url, max_size=1)
    try:
        return {
            **{component: await migrate(pool, component, migrations) for component, migrations in signal_components()},
            postgres_data.COMPONENT: await migrate(pool, postgres_data.COMPONENT, postgres_data.MIGRATIONS),
        }
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as problem:
        raise StoreError(f"PostgreSQL {redacted(url)}: {problem}") from problem
    finally:
        await pool.close()
