"""[signal] renewal_slack (refreshes written behind) holds for a server alone on its SQLite file; where others read
the same rows (PostgreSQL nodes, SQLite workers) every renewal is written, whatever the configuration says: a
renewal kept from the database would leave the others a stale expiry (RFC 9132 §4.4.1 lifetimes)."""

from __future__ import annotations

from pathlib import Path

from opendots.config import ServerConfig
from opendots.mitigate.base import LoggingMitigator
from opendots.signal.server.shell.run import start_signal_server
from opendots.signal.server.shell.settings import RENEWAL_SLACK
from tests.conftest import free_port


async def _slack(config: ServerConfig) -> float:
    running = await start_signal_server(
        config, bind=[("127.0.0.1", free_port())], mitigator=LoggingMitigator(), tls=False
    )
    try:
        return running.service.core.settings.renewal_slack
    finally:
        await running.stop()


async def test_a_server_alone_on_its_sqlite_file_writes_refreshes_behind(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "alone.db"
    assert await _slack(config) == RENEWAL_SLACK > 0


async def test_sqlite_workers_write_every_renewal(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db, config.worker = tmp_path / "shared.db", 0
    assert await _slack(config) == 0.0


async def test_postgresql_nodes_write_every_renewal(pki_dir: Path, tmp_path: Path, postgres_url: str):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db, config.db_url = tmp_path / "data.db", postgres_url
    assert await _slack(config) == 0.0
