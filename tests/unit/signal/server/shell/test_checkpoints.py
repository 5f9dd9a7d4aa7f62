"""WAL checkpoints run in the background, never inside a request's COMMIT (real SQLite file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opendots.signal.server.shell.checkpoints import checkpoint_in_background
from opendots.store.sqlite import SqliteDatabase


def autocheckpoint(database: SqliteDatabase) -> int:
    return database.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]


async def test_commits_leave_pages_in_the_wal_until_the_background_checkpoint(tmp_path: Path):
    path = tmp_path / "signal.db"
    database = SqliteDatabase(path)
    database.connection.execute("CREATE TABLE rows (value TEXT)")
    task = asyncio.create_task(checkpoint_in_background(database, interval=0.3))
    await asyncio.sleep(0.01)
    assert autocheckpoint(database) == 0  # the request connection no longer checkpoints by itself
    size_before = path.stat().st_size
    for _ in range(3):  # well past the 1,000-page automatic threshold if it were still on
        with database.transaction() as cursor:
            cursor.executemany("INSERT INTO rows VALUES (?)", [("x" * 2000,) for _ in range(1000)])
    assert path.stat().st_size == size_before  # everything is still in the WAL: no checkpoint in a COMMIT
    copied = size_before + 3 * 1000 * 2000
    for _attempt in range(300):  # up to 30 s on a loaded machine; the file grows while the checkpoint copies
        await asyncio.sleep(0.1)
        if path.stat().st_size > copied:
            break
    assert path.stat().st_size > copied  # copied into the database file in the background
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert autocheckpoint(database) == 1000  # handed back
    assert database.connection.execute("SELECT count(*) FROM rows").fetchone()[0] == 3000
    database.close()
