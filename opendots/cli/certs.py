"""`opendots certs`: a test PKI and matching server/client configuration files."""

from __future__ import annotations

from pathlib import Path

import click

from opendots.cli.common import OpenDotsGroup
from opendots.cli.server import PORT
from opendots.pki.setup import client_config_path, init_call_home, init_pki

__all__ = ["certs", "init_pki"]  # init_pki lives in opendots.pki.setup; imported from here by older callers


@click.group(cls=OpenDotsGroup)
def certs() -> None:
    """Create test certificates (ECDSA P-256) and configs for labs and tests."""


@certs.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--server-name", "server_names", multiple=True, help="Extra server SAN (repeatable).")
@click.option("--client", "client_names", multiple=True, help="Extra client certificate NAME (repeatable).")
@click.option("--signal-port", type=PORT, help="Signal channel port written into every config.")
@click.option("--data-port", type=PORT, help="Data channel port written into every config.")
@click.option(
    "--call-home",
    is_flag=True,
    help="Also write the RFC 9066 pair: cpe.crt/.key + cpe.toml (opendots callhome server) and provider.crt/.key + "
    "provider.toml (opendots callhome client run), the CPE dialing the provider on 127.0.0.1 port 4647 over DTLS.",
)
def init_command(
    directory: Path,
    server_names: tuple[str, ...],
    client_names: tuple[str, ...],
    signal_port: int | None,
    data_port: int | None,
    call_home: bool,
) -> None:
    """Write ca.crt/ca.key, server.crt/.key, client.crt/.key, NAME.crt/.key, server.toml, client.toml and
    client-NAME.toml (with --call-home also cpe.* and provider.*)."""
    server_config, _ = init_pki(directory, list(server_names), list(client_names), signal_port, data_port)
    click.echo(f"wrote test PKI and configs to {directory}")
    for client in server_config.clients:
        path = client_config_path(directory, client.name)
        click.echo(f"  client {client.name}: cuid {client.cuid}, configuration {path}")
    if call_home:
        cpe, provider = init_call_home(directory)
        click.echo(f"  Call Home CPE: opendots callhome server -c {cpe}")
        click.echo(f"  Call Home provider: opendots callhome client run -c {provider}")
