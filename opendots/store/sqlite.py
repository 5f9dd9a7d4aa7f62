"""Shared SQLite plumbing: one connection in WAL mode and per-component schema migrations.

Each component (signal channel, data channel, mitigators) keeps its own tables in its own module and
registers its migrations here, so schemas evolve independently.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class SqliteDatabase:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a transaction spans exactly one decision.
        self.connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (SIGKILL); only an OS crash can lose the last commit.
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Apply, in order, the migrations of COMPONENT that this database has not seen yet."""
        row = self.connection.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
        current = row["version"] if row else 0
        for version, script in enumerate(migrations[current:], start=current + 1):
            with self.transaction() as cursor:
                for statement in filter(str.strip, script.split(";")):
                    cursor.execute(statement)
                cursor.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, version),
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One transaction; inside one already open (a worker process deciding under the write lock, see
        opendots.signal.server.shell.workers_sqlite) a savepoint, so its changes commit with the decision."""
        cursor = self.connection.cursor()
        nested = self.connection.in_transaction
        cursor.execute("SAVEPOINT nested" if nested else "BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            if nested:
                cursor.execute("ROLLBACK TO nested")  # undoes the savepoint's changes, keeps it open
                cursor.execute("RELEASE nested")
            else:
                cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("RELEASE nested" if nested else "COMMIT")
        finally:
            cursor.close()

    def close(self) -> None:
        self.connection.close()
