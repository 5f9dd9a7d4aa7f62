"""`opendots server`: run the DOTS signal channel (RFC 9132) and data channel (RFC 8783) configured by server.toml.

Both channels share the database file, and the data channel's ACL changes are enforced at once (signal/server/acls).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from opendots import eventloop
from opendots.config import ConfigError, ServerConfig

log = logging.getLogger(__name__)


event_loop_option = click.option(
    "--event-loop",
    type=click.Choice(eventloop.CHOICES),
    default="auto",
    show_default=True,
    help="asyncio event loop: uvloop when installed (auto), or the standard one.",
)
"""Shared by `opendots server` and `opendots client run`."""


@click.command()
@click.option(
    "-c", "--config", type=click.Path(dir_okay=False, path_type=Path), default="server.toml", show_default=True
)
@click.option("--no-dtls", is_flag=True, help="Do not listen on UDP (DTLS).")
@click.option("--no-tls", is_flag=True, help="Do not listen on TCP (TLS).")
@click.option("--signal-port", type=int, help="Signal channel port, UDP and TCP (overrides signal_port).")
@click.option("--data-port", type=int, help="Data channel HTTPS port (overrides data_port).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="SQLite database file (overrides db).")
@click.option("--listen", multiple=True, help="Address to listen on (repeatable; overrides listen).")
@click.option("--no-data", is_flag=True, help="Do not serve the data channel (RESTCONF over HTTPS).")
@click.option("--metrics", help="host:port of the Prometheus endpoint, GET /metrics (overrides metrics).")
@event_loop_option
def server(
    config: Path,
    no_dtls: bool,
    no_tls: bool,
    signal_port: int | None,
    data_port: int | None,
    db: Path | None,
    listen: tuple[str, ...],
    no_data: bool,
    metrics: str | None,
    event_loop: eventloop.EventLoopChoice,
) -> None:
    """Serve the DOTS signal channel over DTLS and TLS, and the data channel over HTTPS, until SIGINT/SIGTERM.

    Command-line flags override the values of the configuration file.
    """
    from opendots.data.server import SERVICE_KEY, start_data_server  # imports aiohttp: only when serving
    from opendots.metrics import SignalCollector, start_metrics_endpoint
    from opendots.signal.client.control import ControlError
    from opendots.signal.server.admin import start_admin_socket
    from opendots.signal.server.run import start_signal_server  # imports aiocoap: only when serving
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.sqlite import SqliteDatabase

    try:
        loaded = ServerConfig.load(config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if signal_port is not None:
        loaded.signal_port = signal_port
    if data_port is not None:
        loaded.data_port = data_port
    if db is not None:
        loaded.db = db
    if listen:
        loaded.listen = list(listen)
    if metrics:
        loaded.metrics = metrics
    if no_dtls and no_tls:
        raise click.ClickException("--no-dtls and --no-tls leave nothing to serve")

    async def main() -> None:
        data = None
        running = None
        exporter = None
        admin = None
        try:
            if not no_data:
                store = SqliteDataChannelStore(SqliteDatabase(loaded.db))
                data = await start_data_server(loaded, store)
            service = data.app[SERVICE_KEY] if data is not None else None
            running = await start_signal_server(loaded, dtls=not no_dtls, tls=not no_tls, data_channel=service)
            if loaded.metrics:
                exporter = await start_metrics_endpoint([SignalCollector(running)], loaded.metrics)
            if loaded.admin_socket is not None:
                admin = await start_admin_socket(running, loaded.admin_socket, config)
        except (ConfigError, ControlError, OSError, ValueError) as error:
            if exporter is not None:
                await exporter.stop()
            if running is not None:
                await running.stop()
            if data is not None:
                await data.cleanup()
            raise click.ClickException(str(error)) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)

        def reload() -> None:
            """SIGHUP: read [[clients]] again; sessions stay up. Anything else in the file needs a restart."""
            try:
                running.reload_clients(ServerConfig.load(config))
            except ConfigError as error:
                log.error("SIGHUP: %s; the clients in force are unchanged", error)

        loop.add_signal_handler(signal.SIGHUP, reload)
        addresses = running.endpoint.dtls_addresses + running.endpoint.tls_addresses
        served = f"; data channel listening on {data.addresses}" if data is not None else ""
        if exporter is not None:
            served += f"; metrics on http://{loaded.metrics}/metrics"
        if admin is not None:
            served += f"; operator socket {loaded.admin_socket}"
        click.echo(f"DOTS signal channel listening on {addresses}{served}", err=True)
        try:
            await stop.wait()
        finally:
            if admin is not None:
                await admin.close()
            if exporter is not None:
                await exporter.stop()
            await running.stop()
            if data is not None:
                await data.cleanup()

    try:
        eventloop.run(main(), event_loop)
    except eventloop.EventLoopUnavailable as problem:
        raise click.ClickException(str(problem)) from None
