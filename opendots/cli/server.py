"""`opendots server`: run the DOTS signal-channel server (RFC 9132) configured by server.toml."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from opendots.config import ConfigError, ServerConfig

log = logging.getLogger(__name__)


@click.command()
@click.option(
    "-c", "--config", type=click.Path(dir_okay=False, path_type=Path), default="server.toml", show_default=True
)
@click.option("--no-dtls", is_flag=True, help="Do not listen on UDP (DTLS).")
@click.option("--no-tls", is_flag=True, help="Do not listen on TCP (TLS).")
def server(config: Path, no_dtls: bool, no_tls: bool) -> None:
    """Serve the DOTS signal channel over DTLS and TLS until SIGINT/SIGTERM."""
    from opendots.signal.server.run import start_signal_server  # imports aiocoap: only when serving

    try:
        loaded = ServerConfig.load(config)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if no_dtls and no_tls:
        raise click.ClickException("--no-dtls and --no-tls leave nothing to serve")

    async def main() -> None:
        try:
            running = await start_signal_server(loaded, dtls=not no_dtls, tls=not no_tls)
        except (ConfigError, OSError) as error:
            raise click.ClickException(str(error)) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        addresses = running.endpoint.dtls_addresses + running.endpoint.tls_addresses
        click.echo(f"DOTS signal channel listening on {addresses}", err=True)
        try:
            await stop.wait()
        finally:
            await running.stop()

    asyncio.run(main())
