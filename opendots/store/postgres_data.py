"""The data channel's store (RFC 8783: registered clients, aliases, ordered ACLs) on PostgreSQL, chosen by the same
`db = "postgresql://..."` as the signal store, so every node of a cluster sees one set of aliases and ACLs.

The data channel core reads its store synchronously (it decides on what it reads). This store keeps that interface:
its asyncpg pool lives on an event loop in a thread of its own, and each call waits for its statement there, bounded
by TIMEOUT (a database that stops answering is a StoreUnavailable, never a wedged process). Since each call blocks
its caller, the HTTPS shell makes them from worker threads, never from the event loop. A local round trip costs
~0.1-0.3 ms, a request makes a handful. Every `apply` is one transaction, as in the SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg

from opendots.store.data_records import Changes, ClientRecord, StoredEntry
from opendots.store.postgres import TIMEOUT, connect_pool, migrate, redacted
from opendots.store.records import StoreError, StoreUnavailable

T = TypeVar("T")

COMPONENT = "data_channel"
DATA_CHANNEL = "opendots_data"
"""NOTIFY channel: the payload is the cuid whose aliases or ACLs a commit changed."""

# Never edit one that has shipped: add the next. 'seq' keeps the order aliases were first written in (SQLite's
# rowid there); bodies are `json` text like the SQLite store's.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE data_clients (
        cuid text PRIMARY KEY,
        cdid text,
        created double precision NOT NULL,
        last_seen double precision NOT NULL
    );
    CREATE TABLE data_aliases (
        cuid text NOT NULL REFERENCES data_clients(cuid) ON DELETE CASCADE,
        name text NOT NULL,
        seq bigserial NOT NULL,
        body text NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (cuid, name)
    );
    CREATE TABLE data_acls (
        cuid text NOT NULL REFERENCES data_clients(cuid) ON DELETE CASCADE,
        name text NOT NULL,
        position double precision NOT NULL,
        activation_type text NOT NULL,
        body text NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (cuid, name)
    );
    CREATE INDEX data_acls_order ON data_acls (cuid, position);
    CREATE INDEX data_aliases_expiry ON data_aliases (expires);
    CREATE INDEX data_acls_expiry ON data_acls (expires);
    CREATE INDEX data_clients_cdid ON data_clients (cdid)
    """,
    # RFC 9244 §8.1.6: one vendor attack mapping per client (the 'vendor-mapping' container, all vendors).
    """
    CREATE TABLE data_vendor_mappings (
        cuid text PRIMARY KEY REFERENCES data_clients(cuid) ON DELETE CASCADE,
        body text NOT NULL
    )
    """,
]

_ACL_COLUMNS = "name, body, expires, position, activation_type"


class PostgresDataChannelStore:
    """DataChannelStore on PostgreSQL: `PostgresDataChannelStore.open(url)` (blocking: call it off the loop or
    before serving), then the synchronous interface of the SQLite store. Every call is a network round trip that
    may wait up to TIMEOUT: callers on an event loop make them in a worker thread (`remote`)."""

    remote = True  # the data channel's shell runs whole requests off the loop (opendots/data/shell/runner.py)

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="opendots-pg-data", daemon=True)
        self._thread.start()
        self._pool: asyncpg.Pool | None = None

    @classmethod
    def open(cls, url: str, *, timeout: float = TIMEOUT) -> PostgresDataChannelStore:
        """Connect and migrate; StoreError (the thread stopped) when either fails."""
        store = cls(url, timeout)
        try:
            store._pool = store._run(connect_pool(url, max_size=4, timeout=timeout))
            store._run(migrate(store._pool, COMPONENT, MIGRATIONS))
        except BaseException:
            store.close()
            raise
        return store

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=self.timeout * 2)  # the statements' own timeout comes first
        except TimeoutError:
            future.cancel()
            raise StoreUnavailable(f"PostgreSQL {redacted(self.url)}: no answer within {self.timeout:.0f} s") from None
        except (asyncpg.InterfaceError, OSError) as problem:
            raise StoreUnavailable(f"PostgreSQL {redacted(self.url)}: {problem}") from problem
        except asyncpg.PostgresError as problem:
            raise StoreError(f"PostgreSQL {redacted(self.url)}: {problem}") from problem

    def _fetch(self, query: str, *arguments: Any) -> list[asyncpg.Record]:
        async def fetch() -> list[asyncpg.Record]:
            assert self._pool is not None
            async with self._pool.acquire(timeout=self.timeout) as connection:
                return await connection.fetch(query, *arguments)

        return self._run(fetch())

    def _fetchrow(self, query: str, *arguments: Any) -> asyncpg.Record | None:
        rows = self._fetch(query, *arguments)
        return rows[0] if rows else None

    def _transaction(self, work: Any) -> Any:
        """WORK(connection) (a coroutine function) inside one transaction."""

        async def run() -> Any:
            assert self._pool is not None
            async with self._pool.acquire(timeout=self.timeout) as connection, connection.transaction():
                return await work(connection)

        return self._run(run())

    # --- reads -----------------------------------------------------------------------------------------

    def get_client(self, cuid: str) -> ClientRecord | None:
        row = self._fetchrow("SELECT cuid, cdid, created, last_seen FROM data_clients WHERE cuid = $1", cuid)
        return ClientRecord(row["cuid"], row["cdid"], row["created"], row["last_seen"]) if row else None

    def clients(self) -> list[ClientRecord]:
        rows = self._fetch("SELECT cuid, cdid, created, last_seen FROM data_clients ORDER BY cuid")
        return [ClientRecord(row["cuid"], row["cdid"], row["created"], row["last_seen"]) for row in rows]

    def touch_client(self, cuid: str, now: float) -> None:
        self._fetch("UPDATE data_clients SET last_seen = $1 WHERE cuid = $2", now, cuid)

    def get_alias(self, cuid: str, name: str, now: float) -> StoredEntry | None:
        row = self._fetchrow(
            "SELECT name, body, expires FROM data_aliases WHERE cuid = $1 AND name = $2 AND expires > $3",
            cuid,
            name,
            now,
        )
        return StoredEntry(row["name"], json.loads(row["body"]), row["expires"]) if row else None

    def list_aliases(self, cuid: str, now: float) -> list[StoredEntry]:
        rows = self._fetch(
            "SELECT name, body, expires FROM data_aliases WHERE cuid = $1 AND expires > $2 ORDER BY seq", cuid, now
        )
        return [StoredEntry(row["name"], json.loads(row["body"]), row["expires"]) for row in rows]

    def get_acl(self, cuid: str, name: str, now: float) -> StoredEntry | None:
        row = self._fetchrow(
            f"SELECT {_ACL_COLUMNS} FROM data_acls WHERE cuid = $1 AND name = $2 AND expires > $3", cuid, name, now
        )
        return _acl_entry(row) if row else None

    def list_acls(self, cuid: str, now: float, activation_type: str | None = None) -> list[StoredEntry]:
        query = f"SELECT {_ACL_COLUMNS} FROM data_acls WHERE cuid = $1 AND expires > $2"
        arguments: tuple[Any, ...] = (cuid, now)
        if activation_type is not None:
            query += " AND activation_type = $3"
            arguments += (activation_type,)
        return [_acl_entry(row) for row in self._fetch(query + " ORDER BY position", *arguments)]

    def acl_positions(self, cuid: str, now: float) -> list[tuple[str, float]]:
        rows = self._fetch(
            "SELECT name, position FROM data_acls WHERE cuid = $1 AND expires > $2 ORDER BY position", cuid, now
        )
        return [(row["name"], row["position"]) for row in rows]

    def acl_position_bounds(self, cuid: str, now: float, exclude: str) -> tuple[float, float] | None:
        row = self._fetchrow(
            "SELECT MIN(position), MAX(position) FROM data_acls WHERE cuid = $1 AND expires > $2 AND name != $3",
            cuid,
            now,
            exclude,
        )
        return None if row is None or row[0] is None else (row[0], row[1])

    def count_entries(self, cuid: str, now: float) -> int:
        row = self._fetchrow(
            "SELECT (SELECT COUNT(*) FROM data_aliases WHERE cuid = $1 AND expires > $2)"
            " + (SELECT COUNT(*) FROM data_acls WHERE cuid = $1 AND expires > $2)",
            cuid,
            now,
        )
        return int(row[0]) if row else 0

    def get_vendor_mapping(self, cuid: str) -> dict[str, Any] | None:
        row = self._fetchrow("SELECT body FROM data_vendor_mappings WHERE cuid = $1", cuid)
        return json.loads(row["body"]) if row else None

    def entry_names(self, kind: str, cuid: str, now: float) -> set[str]:
        table = {"aliases": "data_aliases", "acls": "data_acls"}[kind]
        return {row[0] for row in self._fetch(f"SELECT name FROM {table} WHERE cuid = $1 AND expires > $2", cuid, now)}

    def domain_acls(self, cdid: str, exclude_cuid: str, now: float) -> list[tuple[str, StoredEntry]]:
        rows = self._fetch(
            "SELECT a.cuid, a.name, a.body, a.expires, a.position, a.activation_type FROM data_acls a "
            "JOIN data_clients c ON c.cuid = a.cuid WHERE c.cdid = $1 AND a.cuid != $2 AND a.expires > $3",
            cdid,
            exclude_cuid,
            now,
        )
        return [(row["cuid"], _acl_entry(row)) for row in rows]

    # --- writes ----------------------------------------------------------------------------------------

    def apply(self, changes: Changes, now: float) -> None:
        # Serialized first: a value that is not JSON (a bug) fails before anything is written.
        cuid = changes.cuid
        aliases = [(cuid, name, _dumps(body), expires) for name, body, expires in changes.alias_puts]
        acls = [
            (cuid, acl.name, acl.position, acl.activation_type, _dumps(acl.body), acl.expires)
            for acl in changes.acl_puts
        ]
        mapping = None if changes.vendor_mapping is None else _dumps(changes.vendor_mapping)

        async def work(connection: asyncpg.Connection) -> None:
            # Delivered at commit: the other nodes re-read this client's ACLs (the lease holder enforces them).
            await connection.execute("SELECT pg_notify($1, $2)", DATA_CHANNEL, cuid)
            if changes.unregister:
                await connection.execute("DELETE FROM data_clients WHERE cuid = $1", cuid)
                return
            if changes.register is not None:
                await connection.execute(
                    "INSERT INTO data_clients (cuid, cdid, created, last_seen) VALUES ($1, $2, $3, $3) "
                    "ON CONFLICT (cuid) DO UPDATE SET cdid = excluded.cdid, last_seen = excluded.last_seen",
                    cuid,
                    changes.register[0],
                    now,
                )
            # Expired rows are invisible to readers; drop them now so a name can be reused.
            await connection.execute("DELETE FROM data_aliases WHERE cuid = $1 AND expires <= $2", cuid, now)
            await connection.execute("DELETE FROM data_acls WHERE cuid = $1 AND expires <= $2", cuid, now)
            if changes.clear_aliases:
                await connection.execute("DELETE FROM data_aliases WHERE cuid = $1", cuid)
            if changes.clear_acls:
                await connection.execute("DELETE FROM data_acls WHERE cuid = $1", cuid)
            if changes.alias_deletes:
                await connection.execute(
                    "DELETE FROM data_aliases WHERE cuid = $1 AND name = ANY($2::text[])", cuid, changes.alias_deletes
                )
            if changes.acl_deletes:
                await connection.execute(
                    "DELETE FROM data_acls WHERE cuid = $1 AND name = ANY($2::text[])", cuid, changes.acl_deletes
                )
            if aliases:
                await connection.executemany(
                    "INSERT INTO data_aliases (cuid, name, body, expires) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (cuid, name) DO UPDATE SET body = excluded.body, expires = excluded.expires",
                    aliases,
                )
            if acls:
                await connection.executemany(
                    "INSERT INTO data_acls (cuid, name, position, activation_type, body, expires) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (cuid, name) DO UPDATE SET position = "
                    "excluded.position, activation_type = excluded.activation_type, body = excluded.body, "
                    "expires = excluded.expires",
                    acls,
                )
            if changes.clear_vendor_mapping:
                await connection.execute("DELETE FROM data_vendor_mappings WHERE cuid = $1", cuid)
            if mapping is not None:
                await connection.execute(
                    "INSERT INTO data_vendor_mappings (cuid, body) VALUES ($1, $2) "
                    "ON CONFLICT (cuid) DO UPDATE SET body = excluded.body",
                    cuid,
                    mapping,
                )

        self._transaction(work)

    def set_acl_activation(self, cuid: str, name: str, activation_type: str, expires: float | None, now: float) -> bool:
        """RFC 9133 §3.2.1 (signal-channel filter control): one statement, so one round trip. It is written while
        the signal channel's decision lock is held (opendots.signal.server.shell.durable says why it must be), where
        a transaction of its own (BEGIN, SELECT FOR UPDATE, NOTIFY, UPDATE, COMMIT) held every other decision behind
        five. The UPDATE waits for a change committing on another node and applies to what it left (READ COMMITTED
        re-reads the row), as FOR UPDATE did; the body's other members are kept (jsonb: their order may change, which
        JSON does not give meaning to)."""
        return bool(self._fetch(_SET_ACTIVATION, cuid, name, activation_type, expires, now, DATA_CHANNEL))

    def writer(self) -> None:
        """None: the data channel commits through this store (its pool serves a worker thread's calls as well)."""
        return None

    def close(self) -> None:
        """Close the pool and stop the store's thread."""
        if self._loop.is_closed():
            return
        if self._pool is not None:
            with contextlib.suppress(StoreError):
                self._run(self._pool.close())
            self._pool = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def purge_expired(self, now: float) -> int:
        async def work(connection: asyncpg.Connection) -> int:
            removed = 0
            for table in ("data_aliases", "data_acls"):
                status = await connection.execute(f"DELETE FROM {table} WHERE expires <= $1", now)
                removed += int(status.rpartition(" ")[2])
            return removed

        return self._transaction(work)

    def dump(self) -> str:
        """Every stored row in a stable order, as the SQLite store's dump (without the alias order column)."""
        lines = []
        for table, columns, order in (
            ("data_clients", "*", "cuid"),
            ("data_aliases", "cuid, name, body, expires", "cuid, name"),
            ("data_acls", "*", "cuid, position, name"),
            ("data_vendor_mappings", "*", "cuid"),
        ):
            for row in self._fetch(f"SELECT {columns} FROM {table} ORDER BY {order}"):
                lines.append(f"{table} {json.dumps(dict(row), sort_keys=True)}")
        return "\n".join(lines)


_SET_ACTIVATION = """
    WITH changed AS (
        UPDATE data_acls
        SET body = (body::jsonb || jsonb_build_object('activation-type', $3::text))::text,
            activation_type = $3, expires = coalesce($4::double precision, expires)
        WHERE cuid = $1 AND name = $2 AND expires > $5
        RETURNING cuid
    )
    SELECT pg_notify($6, cuid) FROM changed
"""


def _acl_entry(row: Any) -> StoredEntry:
    return StoredEntry(row["name"], json.loads(row["body"]), row["expires"], row["position"], row["activation_type"])


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
