"""A test PKI with matching server.toml and client configurations (`opendots certs init`, the demo, the labs and
the tests)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

from opendots.config import DOCUMENTATION_PREFIXES, ClientAuthorization, ClientConfig, ServerConfig, TlsFiles
from opendots.pki.certs import TestPki
from opendots.pki.cuid import cuid_from_certificate


def init_pki(
    directory: Path,
    server_names: list[str] | None = None,
    client_names: list[str] | None = None,
    signal_port: int | None = None,
    data_port: int | None = None,
) -> tuple[ServerConfig, ClientConfig]:
    """Write ca/server/client credentials and server.toml / client.toml into DIRECTORY.

    Every client is authorized for the documentation prefixes (RFC 5737, RFC 3849); client.toml
    uses the first client ("client"), client-NAME.toml each other one.
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
    for name in clients[1:]:  # every other client gets a configuration of its own, ready to use
        own = replace(
            client_config,
            tls=TlsFiles(pki.ca_cert_path, directory / f"{name}.crt", directory / f"{name}.key"),
            control_socket=directory / f"opendots-{name}.sock",
        )
        own.save(client_config_path(directory, name))
    return server_config, client_config


def client_config_path(directory: Path, name: str) -> Path:
    """Where init_pki writes the configuration of client NAME ("client": client.toml)."""
    return directory / ("client.toml" if name == "client" else f"client-{name}.toml")


CALL_HOME_PREFIXES = ("192.0.2.0/24", "2001:db8::/32")
"""The sources a provider may ask the CPE of `init_call_home` about: documentation prefixes standing for the
CPE's own addresses."""


def init_call_home(directory: Path, provider_address: str = "127.0.0.1", port: int | None = None) -> tuple[Path, Path]:
    """Write the RFC 9066 pair into DIRECTORY (with its test CA): cpe.crt/.key and cpe.toml, a Call Home DOTS
    server dialing PROVIDER_ADDRESS over DTLS; provider.crt/.key and provider.toml, the Call Home DOTS client that
    knows that CPE as "home" (by the CUID of cpe.crt) and may ask it about CALL_HOME_PREFIXES."""
    from opendots.callhome.provider import CpePeer
    from opendots.callhome.provider_config import ProviderConfig
    from opendots.config import DEFAULT_CALL_HOME_PORT

    pki = TestPki(directory)
    cpe = pki.issue_client("cpe")
    provider = pki.issue_client("provider")
    prefixes = tuple(ipaddress.ip_network(text) for text in CALL_HOME_PREFIXES)
    port = port or DEFAULT_CALL_HOME_PORT
    cpe_config = ServerConfig(
        tls=TlsFiles(pki.ca_cert_path, cpe.cert_path, cpe.key_path),
        clients=[
            ClientAuthorization(
                name="provider", cuid=cuid_from_certificate(provider.cert_path.read_bytes()), prefixes=prefixes
            )
        ],
        db=directory / "cpe.db",
        providers=[{"name": "provider", "address": provider_address, "port": port, "transport": "dtls"}],
    )
    provider_config = ProviderConfig(
        tls=TlsFiles(pki.ca_cert_path, provider.cert_path, provider.key_path),
        cpes=[CpePeer("home", cuid_from_certificate(cpe.cert_path.read_bytes()), prefixes)],
        listen=[provider_address],
        port=port,
        control_socket=directory / "opendots-provider.sock",
        state_file=directory / "opendots-provider.json",
    )
    cpe_config.save(directory / "cpe.toml")
    provider_config.save(directory / "provider.toml")
    return directory / "cpe.toml", directory / "provider.toml"
