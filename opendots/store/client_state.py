"""The client's durable state (SQLite, WAL): mid/sid counters and the mitigations it asked for.

RFC 9132 §4.4.1.1: 'mid' MUST increase monotonically, so the counter is advanced and committed *before* a request
leaves; a client restarted after a crash therefore never reuses a lower mid. The active mitigations and the session
configuration the client set are kept so a restarted agent can re-create them on the server (§4.7 recovery).
BEGIN IMMEDIATE serializes the agent and one-shot CLI runs that share the file.
"""

from __future__ import annotations

import json
from collections.abc import Set
from pathlib import Path
from typing import Any

from opendots.signal.client.core.scope import MitigationScope
from opendots.signal.client.core.state import MID_ROLLOVER, StoredMitigation, next_id, next_mid
from opendots.store.sqlite import SqliteDatabase

__all__ = ["MID_ROLLOVER", "ClientStateStore", "StoredMitigation", "next_mid"]

_MIGRATIONS = [
    """
    CREATE TABLE client_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE client_mitigations (
        cuid TEXT NOT NULL, mid INTEGER NOT NULL, scope TEXT NOT NULL, expires_at REAL,
        PRIMARY KEY (cuid, mid));
    CREATE TABLE client_session_config (cuid TEXT PRIMARY KEY, sid INTEGER NOT NULL, body TEXT NOT NULL)
    """,
    # RFC 9244: the telemetry setups the client installed, one per kind, re-sent after a reconnection.
    """
    CREATE TABLE client_telemetry_setups (
        cuid TEXT NOT NULL, kind TEXT NOT NULL, tsid INTEGER NOT NULL, entry TEXT NOT NULL,
        PRIMARY KEY (cuid, kind))
    """,
]


class ClientStateStore:
    """Durable client state for one cuid, shared by the agent and one-shot CLI runs."""

    def __init__(self, path: Path | str, cuid: str) -> None:
        self.path = Path(path)
        self.cuid = cuid
        self.database = SqliteDatabase(self.path)
        self.database.migrate("signal-client", _MIGRATIONS)

    def close(self) -> None:
        self.database.close()

    def _counter(self, cursor: Any, name: str) -> int:
        row = cursor.execute("SELECT value FROM client_counters WHERE name = ?", (name,)).fetchone()
        return int(row["value"]) if row else 0

    def _set_counter(self, cursor: Any, name: str, value: int) -> None:
        cursor.execute(
            "INSERT INTO client_counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def allocate_mid(self, explicit: int | None = None, *, rollover_allowed: bool = True) -> int:
        """Reserve a mid and commit the counter before returning it."""
        with self.database.transaction() as cursor:
            counter = self._counter(cursor, f"mid:{self.cuid}")
            active = {
                int(row["mid"])
                for row in cursor.execute("SELECT mid FROM client_mitigations WHERE cuid = ?", (self.cuid,))
            }
            mid, counter = next_mid(counter, explicit, rollover_allowed=rollover_allowed, active=active)
            self._set_counter(cursor, f"mid:{self.cuid}", counter)
        return mid

    def peek_next_mid(self) -> int:
        with self.database.transaction() as cursor:
            return self._counter(cursor, f"mid:{self.cuid}")

    def allocate_sid(self) -> int:
        """'sid' values MUST increase monotonically too (§4.5.2)."""
        with self.database.transaction() as cursor:
            sid = self._counter(cursor, f"sid:{self.cuid}") + 1
            self._set_counter(cursor, f"sid:{self.cuid}", sid)
        return sid

    def save_mitigation(self, mitigation: StoredMitigation) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO client_mitigations (cuid, mid, scope, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(cuid, mid) DO UPDATE SET scope = excluded.scope, expires_at = excluded.expires_at",
                (self.cuid, mitigation.mid, json.dumps(mitigation.scope.to_yang()), mitigation.expires_at),
            )

    def delete_mitigation(self, mid: int) -> None:
        with self.database.transaction() as cursor:
            cursor.execute("DELETE FROM client_mitigations WHERE cuid = ? AND mid = ?", (self.cuid, mid))

    def load_mitigations(self) -> list[StoredMitigation]:
        with self.database.transaction() as cursor:
            rows = cursor.execute(
                "SELECT mid, scope, expires_at FROM client_mitigations WHERE cuid = ? ORDER BY mid", (self.cuid,)
            ).fetchall()
        return [
            StoredMitigation(int(row["mid"]), MitigationScope.from_yang(json.loads(row["scope"])), row["expires_at"])
            for row in rows
        ]

    def save_session_config(self, sid: int, body: dict[str, Any]) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO client_session_config (cuid, sid, body) VALUES (?, ?, ?) "
                "ON CONFLICT(cuid) DO UPDATE SET sid = excluded.sid, body = excluded.body",
                (self.cuid, sid, json.dumps(body)),
            )

    def delete_session_config(self) -> None:
        with self.database.transaction() as cursor:
            cursor.execute("DELETE FROM client_session_config WHERE cuid = ?", (self.cuid,))

    def load_session_config(self) -> tuple[int, dict[str, Any]] | None:
        with self.database.transaction() as cursor:
            row = cursor.execute("SELECT sid, body FROM client_session_config WHERE cuid = ?", (self.cuid,)).fetchone()
        return (int(row["sid"]), json.loads(row["body"])) if row else None

    def _allocate(self, name: str, explicit: int | None, held: Set[int], above: int | None = None) -> int:
        with self.database.transaction() as cursor:
            counter = self._counter(cursor, f"{name}:{self.cuid}")
            if above is not None:
                counter = max(counter, above + 1)
            allocated, counter = next_id(counter, explicit, held, name)
            self._set_counter(cursor, f"{name}:{self.cuid}", counter)
        return allocated

    def allocate_tsid(self, *, above: int | None = None) -> int:
        """RFC 9244 §7: committed before the setup request leaves, like a mid."""
        return self._allocate("tsid", None, frozenset(), above)

    def allocate_tmid(self, explicit: int | None = None, *, held: Set[int] = frozenset()) -> int:
        return self._allocate("tmid", explicit, held)

    def save_telemetry_setup(self, kind: str, tsid: int, entry: dict[str, Any]) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO client_telemetry_setups (cuid, kind, tsid, entry) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(cuid, kind) DO UPDATE SET tsid = excluded.tsid, entry = excluded.entry",
                (self.cuid, kind, tsid, json.dumps(entry)),
            )

    def delete_telemetry_setup(self, kind: str) -> None:
        with self.database.transaction() as cursor:
            cursor.execute("DELETE FROM client_telemetry_setups WHERE cuid = ? AND kind = ?", (self.cuid, kind))

    def load_telemetry_setups(self) -> dict[str, tuple[int, dict[str, Any]]]:
        with self.database.transaction() as cursor:
            rows = cursor.execute(
                "SELECT kind, tsid, entry FROM client_telemetry_setups WHERE cuid = ? ORDER BY tsid", (self.cuid,)
            ).fetchall()
        return {str(row["kind"]): (int(row["tsid"]), json.loads(row["entry"])) for row in rows}
