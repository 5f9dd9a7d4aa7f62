"""Persistence of the data channel (RFC 8783): registered clients, their aliases and their ordered ACLs.

Bodies are stored as the canonical RFC 7951 JSON of one list entry (configuration data only), already
validated by the model. Every change a request makes is one `Changes` value applied in ONE transaction, so a
rejected or failed request leaves the database exactly as it was.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from opendots.store.data_records import AclWrite, Changes, ClientRecord, DataChannelStore, StoredEntry
from opendots.store.records import StoreError
from opendots.store.sqlite import SqliteDatabase

__all__ = ["AclWrite", "Changes", "ClientRecord", "DataChannelStore", "SqliteDataChannelStore", "StoredEntry"]

COMPONENT = "data_channel"

MIGRATIONS = (
    """
    CREATE TABLE data_clients (
        cuid TEXT PRIMARY KEY,
        cdid TEXT,
        created REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE data_aliases (
        cuid TEXT NOT NULL REFERENCES data_clients(cuid) ON DELETE CASCADE,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (cuid, name)
    );
    CREATE TABLE data_acls (
        cuid TEXT NOT NULL REFERENCES data_clients(cuid) ON DELETE CASCADE,
        name TEXT NOT NULL,
        position REAL NOT NULL,
        activation_type TEXT NOT NULL,
        body TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (cuid, name)
    );
    CREATE INDEX data_acls_order ON data_acls (cuid, position);
    CREATE INDEX data_aliases_expiry ON data_aliases (expires);
    CREATE INDEX data_acls_expiry ON data_acls (expires)
    """,
    # RFC 9244 §8.1.6: one vendor attack mapping per client (the 'vendor-mapping' container, all vendors).
    """
    CREATE TABLE data_vendor_mappings (
        cuid TEXT PRIMARY KEY REFERENCES data_clients(cuid) ON DELETE CASCADE,
        body TEXT NOT NULL
    )
    """,
)


class SqliteDataChannelStore:
    """DataChannelStore on the shared SqliteDatabase (its own tables, its own migrations)."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database
        database.migrate(COMPONENT, MIGRATIONS)

    @property
    def _sql(self):
        return self.database.connection

    def get_client(self, cuid: str) -> ClientRecord | None:
        row = self._sql.execute(
            "SELECT cuid, cdid, created, last_seen FROM data_clients WHERE cuid = ?", (cuid,)
        ).fetchone()
        return ClientRecord(row["cuid"], row["cdid"], row["created"], row["last_seen"]) if row else None

    def clients(self) -> list[ClientRecord]:
        rows = self._sql.execute("SELECT cuid, cdid, created, last_seen FROM data_clients ORDER BY cuid")
        return [ClientRecord(row["cuid"], row["cdid"], row["created"], row["last_seen"]) for row in rows]

    def touch_client(self, cuid: str, now: float) -> None:
        with self.database.transaction() as cursor:
            cursor.execute("UPDATE data_clients SET last_seen = ? WHERE cuid = ?", (now, cuid))

    def get_alias(self, cuid: str, name: str, now: float) -> StoredEntry | None:
        row = self._sql.execute(
            "SELECT name, body, expires FROM data_aliases WHERE cuid = ? AND name = ? AND expires > ?",
            (cuid, name, now),
        ).fetchone()
        return StoredEntry(row["name"], json.loads(row["body"]), row["expires"]) if row else None

    def list_aliases(self, cuid: str, now: float) -> list[StoredEntry]:
        rows = self._sql.execute(
            "SELECT name, body, expires FROM data_aliases WHERE cuid = ? AND expires > ? ORDER BY rowid",
            (cuid, now),
        )
        return [StoredEntry(row["name"], json.loads(row["body"]), row["expires"]) for row in rows]

    def get_acl(self, cuid: str, name: str, now: float) -> StoredEntry | None:
        row = self._sql.execute(
            "SELECT name, body, expires, position, activation_type FROM data_acls "
            "WHERE cuid = ? AND name = ? AND expires > ?",
            (cuid, name, now),
        ).fetchone()
        return _acl_entry(row) if row else None

    def list_acls(self, cuid: str, now: float, activation_type: str | None = None) -> list[StoredEntry]:
        query = "SELECT name, body, expires, position, activation_type FROM data_acls WHERE cuid = ? AND expires > ?"
        parameters: tuple[Any, ...] = (cuid, now)
        if activation_type is not None:
            query += " AND activation_type = ?"
            parameters += (activation_type,)
        return [_acl_entry(row) for row in self._sql.execute(query + " ORDER BY position", parameters)]

    def acl_positions(self, cuid: str, now: float) -> list[tuple[str, float]]:
        rows = self._sql.execute(
            "SELECT name, position FROM data_acls WHERE cuid = ? AND expires > ? ORDER BY position", (cuid, now)
        )
        return [(row["name"], row["position"]) for row in rows]

    def acl_position_bounds(self, cuid: str, now: float, exclude: str) -> tuple[float, float] | None:
        """(first, last) ACL position of CUID, ignoring ACL EXCLUDE; None when it has no other ACL."""
        row = self._sql.execute(
            "SELECT MIN(position), MAX(position) FROM data_acls WHERE cuid = ? AND expires > ? AND name != ?",
            (cuid, now, exclude),
        ).fetchone()
        return None if row[0] is None else (row[0], row[1])

    def count_entries(self, cuid: str, now: float) -> int:
        """Live aliases plus ACLs of CUID (quota checks)."""
        row = self._sql.execute(
            "SELECT (SELECT COUNT(*) FROM data_aliases WHERE cuid = ?1 AND expires > ?2)"
            " + (SELECT COUNT(*) FROM data_acls WHERE cuid = ?1 AND expires > ?2)",
            (cuid, now),
        ).fetchone()
        return int(row[0])

    def get_vendor_mapping(self, cuid: str) -> dict[str, Any] | None:
        row = self._sql.execute("SELECT body FROM data_vendor_mappings WHERE cuid = ?", (cuid,)).fetchone()
        return json.loads(row["body"]) if row else None

    def entry_names(self, kind: str, cuid: str, now: float) -> set[str]:
        """Names of CUID's live aliases (KIND "aliases") or ACLs ("acls"): one read for many existence checks."""
        table = {"aliases": "data_aliases", "acls": "data_acls"}[kind]
        rows = self._sql.execute(f"SELECT name FROM {table} WHERE cuid = ? AND expires > ?", (cuid, now))
        return {row[0] for row in rows}

    def domain_acls(self, cdid: str, exclude_cuid: str, now: float) -> list[tuple[str, StoredEntry]]:
        """(cuid, ACL) of the other clients registered with client domain CDID (conflict checks, §7.2)."""
        rows = self._sql.execute(
            "SELECT a.cuid, a.name, a.body, a.expires, a.position, a.activation_type FROM data_acls a "
            "JOIN data_clients c ON c.cuid = a.cuid WHERE c.cdid = ? AND a.cuid != ? AND a.expires > ?",
            (cdid, exclude_cuid, now),
        )
        return [(row["cuid"], _acl_entry(row)) for row in rows]

    def apply(self, changes: Changes, now: float) -> None:
        # Serialized first: a commit in a worker thread then holds the database's write lock only for the SQL.
        aliases = [(changes.cuid, name, _dumps(body), expires) for name, body, expires in changes.alias_puts]
        mapping = None if changes.vendor_mapping is None else _dumps(changes.vendor_mapping)
        acls = [
            (changes.cuid, acl.name, acl.position, acl.activation_type, _dumps(acl.body), acl.expires)
            for acl in changes.acl_puts
        ]
        try:
            self._apply(changes, aliases, acls, mapping, now)
        except (sqlite3.Error, OSError) as problem:
            raise StoreError(f"SQLite: {problem}") from problem

    def _apply(
        self, changes: Changes, aliases: list[tuple], acls: list[tuple], mapping: str | None, now: float
    ) -> None:
        with self.database.transaction() as cursor:
            cuid = changes.cuid
            if changes.unregister:
                cursor.execute("DELETE FROM data_clients WHERE cuid = ?", (cuid,))
                return
            if changes.register is not None:
                cursor.execute(
                    "INSERT INTO data_clients (cuid, cdid, created, last_seen) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(cuid) DO UPDATE SET cdid = excluded.cdid, last_seen = excluded.last_seen",
                    (cuid, changes.register[0], now, now),
                )
            # Expired rows are invisible to readers; drop them now so a name can be reused.
            cursor.execute("DELETE FROM data_aliases WHERE cuid = ? AND expires <= ?", (cuid, now))
            cursor.execute("DELETE FROM data_acls WHERE cuid = ? AND expires <= ?", (cuid, now))
            if changes.clear_aliases:
                cursor.execute("DELETE FROM data_aliases WHERE cuid = ?", (cuid,))
            if changes.clear_acls:
                cursor.execute("DELETE FROM data_acls WHERE cuid = ?", (cuid,))
            cursor.executemany(
                "DELETE FROM data_aliases WHERE cuid = ? AND name = ?", [(cuid, name) for name in changes.alias_deletes]
            )
            cursor.executemany(
                "DELETE FROM data_acls WHERE cuid = ? AND name = ?", [(cuid, name) for name in changes.acl_deletes]
            )
            cursor.executemany(
                "INSERT INTO data_aliases (cuid, name, body, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(cuid, name) DO UPDATE SET body = excluded.body, expires = excluded.expires",
                aliases,
            )
            cursor.executemany(
                "INSERT INTO data_acls (cuid, name, position, activation_type, body, expires) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(cuid, name) DO UPDATE SET position = excluded.position, "
                "activation_type = excluded.activation_type, body = excluded.body, expires = excluded.expires",
                acls,
            )
            if changes.clear_vendor_mapping:
                cursor.execute("DELETE FROM data_vendor_mappings WHERE cuid = ?", (cuid,))
            if mapping is not None:
                cursor.execute(
                    "INSERT INTO data_vendor_mappings (cuid, body) VALUES (?, ?) "
                    "ON CONFLICT(cuid) DO UPDATE SET body = excluded.body",
                    (cuid, mapping),
                )

    def set_acl_activation(self, cuid: str, name: str, activation_type: str, expires: float | None, now: float) -> bool:
        try:
            # Read inside the write transaction: a commit in progress on another connection is waited for, so
            # the change applies to what it left (never to an ACL it replaced or deleted).
            with self.database.transaction() as cursor:
                row = cursor.execute(
                    "SELECT body, expires FROM data_acls WHERE cuid = ? AND name = ? AND expires > ?",
                    (cuid, name, now),
                ).fetchone()
                if row is None:
                    return False
                body = {**json.loads(row["body"]), "activation-type": activation_type}
                cursor.execute(
                    "UPDATE data_acls SET body = ?, activation_type = ?, expires = ? WHERE cuid = ? AND name = ?",
                    (_dumps(body), activation_type, row["expires"] if expires is None else expires, cuid, name),
                )
                return True
        except (sqlite3.Error, OSError) as problem:
            raise StoreError(f"SQLite: {problem}") from problem

    def writer(self) -> SqliteDataChannelStore | None:
        """A second connection to the same file: in WAL mode its commit is atomic for the readers of this one,
        which go on seeing the last committed state meanwhile. None for an in-memory database (a second
        connection would open another, empty one)."""
        if self.database.path in ("", ":memory:") or self.database.path.startswith("file::memory:"):
            return None
        return SqliteDataChannelStore(SqliteDatabase(self.database.path))

    def close(self) -> None:
        self.database.close()

    def purge_expired(self, now: float) -> int:
        """Remove aliases and ACLs whose lifetime ended without a refresh (RFC 8783 §3.5)."""
        with self.database.transaction() as cursor:
            removed = cursor.execute("DELETE FROM data_aliases WHERE expires <= ?", (now,)).rowcount
            removed += cursor.execute("DELETE FROM data_acls WHERE expires <= ?", (now,)).rowcount
        return removed

    def dump(self) -> str:
        """Every stored row in a stable order: tests compare dumps to prove a request changed nothing."""
        return "\n".join(self._dump_lines())

    def _dump_lines(self) -> Iterator[str]:
        for table, order in (
            ("data_clients", "cuid"),
            ("data_aliases", "cuid, name"),
            ("data_acls", "cuid, position, name"),
            ("data_vendor_mappings", "cuid"),
        ):
            for row in self._sql.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                yield f"{table} {json.dumps(dict(row), sort_keys=True)}"


def _acl_entry(row: Any) -> StoredEntry:
    return StoredEntry(row["name"], json.loads(row["body"]), row["expires"], row["position"], row["activation_type"])


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))
