"""The composition root: what a server or a client agent is made of, built from its parsed configuration.

The CLI, the demo, the process stack of the labs, the tests and the benchmarks build through here, so the parts
are wired one way: one SQLite database (chosen by `[server] db`, see `open_database`) shared by the signal
channel, the data channel and the aliases, or all of them on PostgreSQL (`db = "postgresql://..."`, see
`open_signal_store` and `open_data_store`); credentials checked before anything listens; the
operator warned when nothing enforces.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opendots.config import ClientConfig, ConfigError, ServerConfig, TlsFiles
from opendots.store.sqlite import SqliteDatabase

if TYPE_CHECKING:
    from opendots.signal.client.shell.agent import ClientAgent
    from opendots.signal.server.shell.run import RunningSignalServer
    from opendots.store.postgres import PostgresSignalStore
    from opendots.store.postgres_data import PostgresDataChannelStore

log = logging.getLogger(__name__)

NOT_ENFORCING = (
    "no [[mitigators]] entry enforces anything (only the logging mitigator runs): mitigations and ACLs are "
    "accepted and reported, but no traffic is dropped; configure nftables or bgp in server.toml"
)


def open_database(location: Path | str) -> SqliteDatabase:
    """The SQLite database. `location` is what ServerConfig.load made of `[server] db` (a file path or
    sqlite:///path, resolved by opendots.config.database_path), or of `data_db` when `db` is PostgreSQL."""
    path = Path(location)
    if not path.parent.is_dir():
        raise ConfigError(f"database {path}: directory {path.parent} does not exist")
    try:
        return SqliteDatabase(path)
    except Exception as error:  # sqlite3.Error: unreadable, not a database, read-only directory
        raise ConfigError(f"database {path}: {error}") from None


async def open_data_store(config: ServerConfig) -> PostgresDataChannelStore | None:
    """The data channel's store when `[server] db` names PostgreSQL (connected and migrated, off the loop); None:
    its tables live in the SQLite database."""
    if config.db_url is None:
        return None
    from opendots.store.postgres_data import PostgresDataChannelStore
    from opendots.store.records import StoreError

    try:
        return await asyncio.to_thread(PostgresDataChannelStore.open, config.db_url)
    except StoreError as error:
        raise ConfigError(f"db: {error}") from None


async def open_signal_store(config: ServerConfig) -> PostgresSignalStore | None:
    """The signal channel's store when `[server] db` names PostgreSQL (connected, migrated, its state read);
    None: the signal tables live in the SQLite database with the others."""
    if config.db_url is None:
        return None
    from opendots.store.postgres import PostgresSignalStore
    from opendots.store.records import StoreError

    try:
        return await PostgresSignalStore.open(config.db_url)
    except StoreError as error:
        raise ConfigError(f"db: {error}") from None


def check_credentials(tls: TlsFiles) -> None:
    """Every file exists and the key belongs to the certificate: said with the file's name before a socket is
    opened, rather than as an OpenSSL traceback at the first handshake."""
    for role, path in (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)):
        if not path.is_file():
            raise ConfigError(f"[tls] {role}: no such file {path}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(tls.ca))
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(f"[tls] ca {tls.ca}: not a usable CA certificate ({error})") from None
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error):
            raise ConfigError(f"[tls] key {tls.key} does not match the certificate {tls.cert}") from None
        raise ConfigError(f"[tls] cert {tls.cert} / key {tls.key}: {error.reason or error}") from None
    except OSError as error:
        raise ConfigError(f"[tls] cert {tls.cert} / key {tls.key}: {error}") from None
    _check_validity(tls.cert)


def _check_validity(path: Path) -> None:
    """A certificate outside its validity period is refused by every peer (the data channel's server only says
    "disconnected"): say so here, with its dates."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as error:  # OpenSSL took it; cryptography may not (then OpenSSL's peers will judge)
        log.debug("validity of %s not checked: %s", path, error)
        return
    now = dt.datetime.now(dt.UTC)
    if certificate.not_valid_after_utc < now:
        raise ConfigError(
            f"[tls] cert {path} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC "
            f"(now {now:%Y-%m-%d %H:%M}): peers refuse it; issue a new one"
        )
    if certificate.not_valid_before_utc > now:
        raise ConfigError(
            f"[tls] cert {path} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"(now {now:%Y-%m-%d %H:%M}; is this host's clock right?)"
        )


def socket_addresses(addresses: list[Any]) -> str:
    """Socket addresses as an operator writes them ([::]:4646 0.0.0.0:4646), each once: not Python tuples."""
    from opendots.pki.verify import peer_label

    return " ".join(dict.fromkeys(peer_label(address) for address in addresses)) or "-"


def enforces_anything(config: ServerConfig) -> bool:
    """False when every configured actuator (or the default, when none is) is the logging mitigator."""
    return any(entry.get("type") != "logging" for entry in config.mitigators)


@dataclass
class DotsServer:
    """A running `opendots server`: the signal channel and, when served, the data channel, the Prometheus
    endpoint and the operator socket."""

    config: ServerConfig
    signal: RunningSignalServer
    data: Any = None  # aiohttp web.AppRunner
    metrics: Any = None
    admin: Any = None
    console: Any = None  # opendots.console.server.RunningConsole
    data_store: Any = None  # the data channel's PostgreSQL store (its own thread and pool), closed last

    def describe(self) -> str:
        """The line that says the server is ready (tests and the process stack wait for its start)."""
        endpoint = self.signal.endpoint
        text = "DOTS signal channel listening on " + ", ".join(
            f"{kind} {socket_addresses(addresses)}"
            for kind, addresses in (("DTLS", endpoint.dtls_addresses), ("TLS", endpoint.tls_addresses))
            if addresses
        )
        if self.data is not None:
            text += f"; data channel listening on HTTPS {socket_addresses(self.data.addresses)}"
        if self.metrics is not None:
            text += f"; metrics on http://{self.config.metrics}/metrics"
        if self.admin is not None:
            text += f"; operator socket {self.config.admin_socket}"
        if self.console is not None:
            text += f"; dashboard on http://{socket_addresses(self.console.addresses)}/"
        return text

    async def stop(self) -> None:
        """In reverse order of start: the data channel goes before the signal server closes the database."""
        if self.console is not None:
            await self.console.stop()
        if self.admin is not None:
            await self.admin.close()
        if self.metrics is not None:
            await self.metrics.stop()
        if self.data is not None:
            await self.data.cleanup()
        await self.signal.stop()
        if self.data_store is not None:
            await asyncio.to_thread(self.data_store.close)


async def start_server(
    config: ServerConfig,
    *,
    config_path: Path | None = None,
    dtls: bool = True,
    tls: bool = True,
    data: bool = True,
    clock: Callable[[], float] = time.time,
) -> DotsServer:
    """Start everything CONFIG describes; on failure, stop what was started and raise (an OpenDotsError for
    anything an operator can fix). CONFIG_PATH: the file `opendots admin reload` reads again."""
    from opendots.data.core import DataChannelCore
    from opendots.data.shell.server import CORE_KEY, start_data_server  # imports aiohttp: only when serving
    from opendots.data.shell.settings import data_settings_from_table
    from opendots.metrics import SignalCollector, start_metrics_endpoint
    from opendots.signal.server.shell.admin import start_admin_socket
    from opendots.signal.server.shell.run import start_signal_server  # imports aiocoap: only when serving
    from opendots.store.data_channel import SqliteDataChannelStore

    if not (dtls or tls):
        raise ConfigError("--no-dtls and --no-tls leave nothing to serve")
    check_credentials(config.tls)
    if config.dashboard is not None:  # a missing token file is said before anything listens
        from opendots.console.server import read_token

        read_token(config.dashboard.token_file)
    database = open_database(config.db)
    server = None
    runner = None
    signal_store = None
    pg_data = None
    try:
        signal_store = await open_signal_store(config)
        pg_data = await open_data_store(config)
        data_store = pg_data or SqliteDataChannelStore(database)
        if data:
            runner = await start_data_server(config, data_store, clock=clock)
            service = runner.app[CORE_KEY]
        else:  # ACLs stored earlier are still enforced, and aliases still resolve
            service = DataChannelCore(
                data_store, config.client_by_cuid, data_settings_from_table(config.clients, config.data)
            )
        signal = await start_signal_server(
            config, dtls=dtls, tls=tls, data_channel=service, database=database, store=signal_store, clock=clock
        )
        server = DotsServer(config, signal, runner, data_store=pg_data)
        runner = pg_data = None  # the server stops them from here
        if config.metrics:
            server.metrics = await start_metrics_endpoint([SignalCollector(signal)], config.metrics)
        if config.admin_socket is not None:
            server.admin = await start_admin_socket(signal, config.admin_socket, config_path)
        if config.dashboard is not None:
            from opendots.console.server import start_console

            server.console = await start_console(signal, config.dashboard, config_path, clock)
    except BaseException:
        if server is not None:
            await server.stop()
        else:
            if runner is not None:
                await runner.cleanup()
            database.close()
            if signal_store is not None:
                await signal_store.close()
            if pg_data is not None:
                await asyncio.to_thread(pg_data.close)
        raise
    return server


def build_client_agent(config: ClientConfig) -> ClientAgent:
    """The long-running client agent of `opendots client run`, its [agent] settings from the same read."""
    from opendots.signal.client.shell.agent import ClientAgent
    from opendots.signal.client.shell.settings import AgentSettings

    check_credentials(config.tls)
    return ClientAgent(config, AgentSettings.from_config(config))
