"""`opendots db upgrade`: bring the server's database schema to this version's before a server starts on it.

A server migrates at start too; this verb lets an operator do it on its own (one node of several, a maintenance
window) and see the versions. SQLite: every component's tables in `db`; PostgreSQL: the signal channel's tables
there, the data channel's in the SQLite `data_db`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from opendots.cli.common import OpenDotsGroup, group_config_option
from opendots.cli.common import config_option as common_config_option
from opendots.config import ConfigError, ServerConfig, database_location


@click.group(cls=OpenDotsGroup)
@group_config_option("server.toml")
def db() -> None:
    """The server's database ([server] db): schema migrations."""


@db.command()
@common_config_option("server.toml")
@click.option("--db", "location", help="SQLite file, sqlite:///path or postgresql://... (overrides db).")
def upgrade(config: Path, location: str | None) -> None:
    """Apply the schema migrations this version has and the database has not seen; print each version."""
    from opendots.app import open_database
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.signal import SqliteSignalStore

    loaded = ServerConfig.load(config)
    if location is not None:
        located = database_location({"db": location}, Path.cwd(), "--db")
        loaded.db_url = located.get("db_url")
        if loaded.db_url is None:
            loaded.db = located["db"]
    if loaded.db_url is not None:
        from opendots.store.postgres import redacted
        from opendots.store.postgres import upgrade as upgrade_postgres
        from opendots.store.records import StoreError

        try:
            versions = asyncio.run(upgrade_postgres(loaded.db_url))
        except StoreError as error:
            raise ConfigError(f"db: {error}") from None
        click.echo(f"{redacted(loaded.db_url)}: " + ", ".join(f"{name} {number}" for name, number in versions.items()))
    database = open_database(loaded.db)  # SQLite: opening each store migrates its tables
    try:
        SqliteDataChannelStore(database)
        if loaded.db_url is None:
            SqliteSignalStore(database)
        versions = database.connection.execute("SELECT component, version FROM schema_versions ORDER BY 1")
        click.echo(f"{loaded.db}: " + ", ".join(f"{row[0]} {row[1]}" for row in versions))
    finally:
        database.close()
