"""The DOTS gateway's durable relay state (SQLite, WAL): the upstream 'mid' counter and every downstream mitigation
with its upstream counterpart (opendots.gateway.relay.Link), and every telemetry setup and report (tsid, tmid) with
its upstream one (opendots.gateway.telemetry_relay.TelemetryLink), so that a restarted gateway keeps the mapping and can
re-establish the mitigations and telemetry setups upstream.

The counter is committed before a request that uses a new upstream 'mid' leaves (RFC 9132 §4.4.1.1: 'mid's
increase monotonically), as the client agent does (opendots.store.client_state).
"""

from __future__ import annotations

from pathlib import Path

from opendots.gateway.relay import Link
from opendots.gateway.telemetry_relay import TelemetryLink
from opendots.store.sqlite import SqliteDatabase

_MIGRATIONS = [
    """
    CREATE TABLE gateway_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE gateway_links (
        client TEXT NOT NULL, cuid TEXT NOT NULL, mid INTEGER NOT NULL,
        upstream_cuid TEXT NOT NULL, upstream_mid INTEGER NOT NULL, cdid TEXT,
        payload BLOB NOT NULL, accepted_at REAL NOT NULL, expires_at REAL,
        PRIMARY KEY (client, cuid, mid))
    """,
    """
    CREATE TABLE gateway_telemetry (
        resource TEXT NOT NULL, client TEXT NOT NULL, cuid TEXT NOT NULL, number INTEGER NOT NULL,
        upstream INTEGER NOT NULL,
        PRIMARY KEY (resource, client, cuid, number))
    """,
    # The body of a tm-setup accepted upstream, and the server-domain 'cdid': what a re-establishment sends again.
    """
    ALTER TABLE gateway_telemetry ADD COLUMN payload BLOB;
    ALTER TABLE gateway_telemetry ADD COLUMN cdid TEXT
    """,
]


class RelayStore:
    """opendots.gateway.relay.RelayState on one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.database = SqliteDatabase(path)
        self.database.migrate("gateway", _MIGRATIONS)

    def close(self) -> None:
        self.database.close()

    def allocate_mid(self) -> int:
        return self.allocate("mid")

    def allocate(self, name: str) -> int:
        """The next upstream 'mid', 'tsid' or 'tmid' (NAME), committed before it is used."""
        with self.database.transaction() as cursor:
            row = cursor.execute("SELECT value FROM gateway_counters WHERE name = ?", (name,)).fetchone()
            number = int(row["value"]) if row else 1
            cursor.execute(
                "INSERT INTO gateway_counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, number + 1),
            )
        return number

    def save_telemetry(self, link: TelemetryLink) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO gateway_telemetry (resource, client, cuid, number, upstream, payload, cdid) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(resource, client, cuid, number) DO UPDATE SET "
                "upstream = excluded.upstream, payload = excluded.payload, cdid = excluded.cdid",
                (link.resource, link.client, link.cuid, link.number, link.upstream, link.payload, link.cdid),
            )

    def delete_telemetry(self, key: tuple[str, str, str, int]) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "DELETE FROM gateway_telemetry WHERE resource = ? AND client = ? AND cuid = ? AND number = ?", key
            )

    def load_telemetry(self) -> list[TelemetryLink]:
        rows = self.database.connection.execute("SELECT * FROM gateway_telemetry").fetchall()
        return [
            TelemetryLink(
                row["resource"],
                row["client"],
                row["cuid"],
                row["number"],
                row["upstream"],
                None if row["payload"] is None else bytes(row["payload"]),
                row["cdid"],
            )
            for row in rows
        ]

    def save(self, link: Link) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO gateway_links (client, cuid, mid, upstream_cuid, upstream_mid, cdid, payload, "
                "accepted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(client, cuid, mid) DO UPDATE SET upstream_cuid = excluded.upstream_cuid, "
                "upstream_mid = excluded.upstream_mid, cdid = excluded.cdid, payload = excluded.payload, "
                "accepted_at = excluded.accepted_at, expires_at = excluded.expires_at",
                (
                    link.client,
                    link.cuid,
                    link.mid,
                    link.upstream_cuid,
                    link.upstream_mid,
                    link.cdid,
                    link.payload,
                    link.accepted_at,
                    link.expires_at,
                ),
            )

    def delete(self, key: tuple[str, str, int]) -> None:
        with self.database.transaction() as cursor:
            cursor.execute("DELETE FROM gateway_links WHERE client = ? AND cuid = ? AND mid = ?", key)

    def load(self) -> list[Link]:
        rows = self.database.connection.execute("SELECT * FROM gateway_links ORDER BY accepted_at").fetchall()
        return [
            Link(
                client=row["client"],
                cuid=row["cuid"],
                mid=row["mid"],
                upstream_cuid=row["upstream_cuid"],
                upstream_mid=row["upstream_mid"],
                cdid=row["cdid"],
                payload=bytes(row["payload"]),
                accepted_at=row["accepted_at"],
                expires_at=row["expires_at"],
            )
            for row in rows
        ]
