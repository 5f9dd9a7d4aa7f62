"""`opendots server`: run the DOTS signal channel (RFC 9132) and data channel (RFC 8783) configured by server.toml.

Both channels share the database file, and the data channel's ACL changes are enforced at once (signal/server/acls).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from opendots import eventloop
from opendots.cli.common import OpenDotsCommand, config_option, run_service
from opendots.cli.workers import as_worker, report_ready, supervise, worker_from_environment
from opendots.config import ConfigError, ServerConfig, database_location

log = logging.getLogger(__name__)


PORT = click.IntRange(1, 65535)
"""A port flag: out-of-range values are refused by name instead of wrapping around in the socket layer."""

event_loop_option = click.option(
    "--event-loop",
    type=click.Choice(eventloop.CHOICES),
    default="auto",
    show_default=True,
    help="asyncio event loop: uvloop when installed (auto), or the standard one.",
)
"""Shared by `opendots server` and `opendots client run`."""


def _set_log_format(_context: click.Context, _parameter: click.Parameter, value: str) -> None:
    from opendots import logs

    logs.configure(value)  # type: ignore[arg-type]


log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    expose_value=False,
    callback=_set_log_format,
    help="Log lines as text, or one JSON object a line (time, level, logger, message; journald, Loki, ELK).",
)
"""Shared by the long-running commands: `opendots server`, `client run`, `gateway`, `callhome server|client run`."""


@click.command(cls=OpenDotsCommand)
@config_option("server.toml")
@click.option("--no-dtls", is_flag=True, help="Do not listen on UDP (DTLS).")
@click.option("--no-tls", is_flag=True, help="Do not listen on TCP (TLS).")
@click.option("--signal-port", type=PORT, help="Signal channel port, UDP and TCP (overrides signal_port).")
@click.option("--data-port", type=PORT, help="Data channel HTTPS port (overrides data_port).")
@click.option("--db", help="SQLite database file, sqlite:///path or postgresql://user@host/name (overrides db).")
@click.option("--listen", multiple=True, help="Address to listen on (repeatable; overrides listen).")
@click.option("--no-data", is_flag=True, help="Do not serve the data channel (RESTCONF over HTTPS).")
@click.option("--metrics", help="host:port of the Prometheus endpoint, GET /metrics (overrides metrics).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the ports (SO_REUSEPORT) and the database; the node's operator socket and "
    "/metrics are served by the parent, whole.",
)
@event_loop_option
@log_format_option
def server(
    config: Path,
    no_dtls: bool,
    no_tls: bool,
    signal_port: int | None,
    data_port: int | None,
    db: str | None,
    listen: tuple[str, ...],
    no_data: bool,
    metrics: str | None,
    workers: int,
    event_loop: eventloop.EventLoopChoice,
) -> None:
    """Serve the DOTS signal channel over DTLS and TLS, and the data channel over HTTPS, until SIGINT/SIGTERM.

    Command-line flags override the values of the configuration file.
    """
    from opendots.app import NOT_ENFORCING, enforces_anything, start_server

    loaded = ServerConfig.load(config)
    if signal_port is not None:
        loaded.signal_port = signal_port
    if data_port is not None:
        loaded.data_port = data_port
    if db is not None:
        located = database_location({"db": db}, Path.cwd(), "--db")
        loaded.db_url = located.get("db_url")
        if loaded.db_url is None:
            loaded.db = located["db"]  # with a PostgreSQL URL, the data channel keeps the file's data_db
    if listen:
        loaded.listen = list(listen)
    if metrics:
        loaded.metrics = metrics
    if no_dtls and no_tls:
        raise click.UsageError("--no-dtls and --no-tls leave nothing to serve")
    worker = worker_from_environment()
    if workers > 1 and worker is None:
        supervise(loaded, workers, sys.argv[1:])  # this process is the parent: the workers run this command
        return
    if worker is not None:
        as_worker(loaded, worker[0], workers)

    async def main() -> None:
        running = await start_server(loaded, config_path=config, dtls=not no_dtls, tls=not no_tls, data=not no_data)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)

        def reload() -> None:
            """SIGHUP: read [[clients]] again; sessions stay up. Anything else in the file needs a restart."""
            try:
                running.signal.reload_clients(ServerConfig.load(config))
            except ConfigError as error:
                log.error("SIGHUP: %s; the clients in force are unchanged", error)

        loop.add_signal_handler(signal.SIGHUP, reload)
        if worker is not None:  # the parent says when the node serves
            addresses = running.metrics.addresses if running.metrics is not None else None
            report_ready(worker[1], running.describe(), addresses, loaded.admin_socket)
        else:
            click.echo(running.describe(), err=True)  # first: the line scripts wait for
        if not enforces_anything(loaded) and worker is None:
            click.echo(f"warning: {NOT_ENFORCING}", err=True)
        try:
            await stop.wait()
        finally:
            await running.stop()

    run_service(main(), event_loop)
