"""A client-domain DOTS gateway's data-channel state (SQLite, in the gateway's state file beside
opendots.store.gateway_state): each downstream client's prefix for its alias and ACL names upstream
(opendots.gateway.data_names), whether it is registered, and whether the gateway's own upstream registration is
known to exist. Kept so that a restarted gateway gives every client the same names upstream: a prefix picked after
a collision is not derivable again from the 'cuid' alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opendots.gateway.data_names import derive_prefix
from opendots.store.sqlite import SqliteDatabase

_MIGRATIONS = [
    """
    CREATE TABLE gateway_data_clients (
        cuid TEXT PRIMARY KEY, prefix TEXT NOT NULL UNIQUE, registered INTEGER NOT NULL DEFAULT 0)
    """,
]
MAX_ATTEMPTS = 64  # a 40-bit tag collides about once in a million clients; 64 in a row does not happen


class NameStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database
        self.database.migrate("gateway-names", _MIGRATIONS)
        self._prefixes: dict[str, str] = {
            row["cuid"]: row["prefix"]
            for row in self.database.connection.execute("SELECT cuid, prefix FROM gateway_data_clients")
        }

    def prefix(self, cuid: str) -> str:
        """CUID's prefix: the one stored, or a new one stored before it is returned (used upstream at once)."""
        known = self._prefixes.get(cuid)
        if known is not None:
            return known
        taken = set(self._prefixes.values())
        for attempt in range(MAX_ATTEMPTS):
            candidate = derive_prefix(cuid, attempt)
            if candidate not in taken:
                break
        else:
            raise RuntimeError(f"no free name prefix for cuid {cuid}")
        with self.database.transaction() as cursor:
            cursor.execute("INSERT INTO gateway_data_clients (cuid, prefix) VALUES (?, ?)", (cuid, candidate))
        self._prefixes[cuid] = candidate
        return candidate

    def registered(self, cuid: str) -> bool:
        row = self.database.connection.execute(
            "SELECT registered FROM gateway_data_clients WHERE cuid = ?", (cuid,)
        ).fetchone()
        return bool(row and row["registered"])

    def set_registered(self, cuid: str, registered: bool) -> None:
        self.prefix(cuid)
        with self.database.transaction() as cursor:
            cursor.execute("UPDATE gateway_data_clients SET registered = ? WHERE cuid = ?", (int(registered), cuid))

    def registered_count(self) -> int:
        row = self.database.connection.execute(
            "SELECT COUNT(*) AS n FROM gateway_data_clients WHERE registered = 1"
        ).fetchone()
        return int(row["n"])

    def forget_registrations(self) -> None:
        """The upstream registration is gone: no client is registered (their prefixes stay theirs)."""
        with self.database.transaction() as cursor:
            cursor.execute("UPDATE gateway_data_clients SET registered = 0")

    def listing(self, name_of: Callable[[str], str | None] = lambda cuid: None) -> list[dict[str, Any]]:
        """Every client's prefix, for the gateway's status (NAME_OF: its [[clients]] name, None if it has none)."""
        rows = self.database.connection.execute(
            "SELECT cuid, prefix, registered FROM gateway_data_clients ORDER BY cuid"
        ).fetchall()
        return [
            {"client": name_of(row["cuid"]), "cuid": row["cuid"], "prefix": row["prefix"],
             "registered": bool(row["registered"])}
            for row in rows
        ]  # fmt: skip
