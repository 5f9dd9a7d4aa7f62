"""`opendots certs`: a test PKI and matching server/client configuration files."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from opendots.config import DOCUMENTATION_PREFIXES, ClientAuthorization, ClientConfig, ServerConfig, TlsFiles
from opendots.pki.certs import TestPki
from opendots.pki.cuid import cuid_from_certificate


@click.group()
def certs() -> None:
    """Create test certificates (ECDSA P-256) and configs for labs and tests."""


def init_pki(
    directory: Path,
    server_names: list[str] | None = None,
    client_names: list[str] | None = None,
    signal_port: int | None = None,
    data_port: int | None = None,
) -> tuple[ServerConfig, ClientConfig]:
    """Write ca/server/client credentials and server.toml / client.toml into DIRECTORY.

    Every client is authorized for the documentation prefixes (RFC 5737, RFC 3849); client.toml
    uses the first client.
    """
    pki = TestPki(directory)
    server = pki.issue_server(server_names)
    clients = list(dict.fromkeys(["client", *(client_names or [])]))
    authorizations = []
    for name in clients:
        credential = pki.issue_client(name)
        authorizations.append(
            ClientAuthorization(
                name=name,
                cuid=cuid_from_certificate(credential.cert_path.read_bytes()),
                prefixes=tuple(ipaddress.ip_network(p) for p in DOCUMENTATION_PREFIXES),
                fqdns=("example.com", "*.example.com"),
            )
        )
    server_config = ServerConfig(
        tls=TlsFiles(pki.ca_cert_path, server.cert_path, server.key_path),
        clients=authorizations,
        db=directory / "opendots.db",
        admin_socket=directory / "opendots-server.sock",
    )
    client_config = ClientConfig(
        tls=TlsFiles(pki.ca_cert_path, directory / "client.crt", directory / "client.key"),
        server_name="localhost",
        server_addresses=["::1", "127.0.0.1"],
        control_socket=directory / "opendots-client.sock",
    )
    if signal_port is not None:
        server_config.signal_port = client_config.signal_port = signal_port
    if data_port is not None:
        server_config.data_port = client_config.data_port = data_port
    server_config.save(directory / "server.toml")
    client_config.save(directory / "client.toml")
    return server_config, client_config


@certs.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--server-name", "server_names", multiple=True, help="Extra server SAN (repeatable).")
@click.option("--client", "client_names", multiple=True, help="Extra client certificate NAME (repeatable).")
@click.option("--signal-port", type=int, help="Signal channel port written into both configs.")
@click.option("--data-port", type=int, help="Data channel port written into both configs.")
def init_command(
    directory: Path,
    server_names: tuple[str, ...],
    client_names: tuple[str, ...],
    signal_port: int | None,
    data_port: int | None,
) -> None:
    """Write ca.crt/ca.key, server.crt/.key, client.crt/.key, NAME.crt/.key, server.toml, client.toml."""
    server_config, _ = init_pki(directory, list(server_names), list(client_names), signal_port, data_port)
    click.echo(f"wrote test PKI and configs to {directory}")
    for client in server_config.clients:
        click.echo(f"  client {client.name}: cuid {client.cuid}")
