"""Fixtures shared by every test folder."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.cli.certs import init_pki
from opendots.config import ClientConfig, ServerConfig
from opendots.lab.processes import free_udp_tcp_port
from opendots.model.codec import validate_every_encoding
from opendots.transport.dtls_listener import DtlsListener
from tests.helpers import tls_files


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test PKI (CA, server, clients `client` and `other`) with server.toml and client.toml."""
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, client_names=["other"])
    return directory


@pytest.fixture
def server_config(pki_dir: Path) -> ServerConfig:
    return ServerConfig.load(pki_dir / "server.toml")


@pytest.fixture
def client_config(pki_dir: Path) -> ClientConfig:
    return ClientConfig.load(pki_dir / "client.toml")


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free for UDP and TCP on HOST right now (DOTS uses both; KIND is kept for the callers that name it),
    outside the ephemeral range (opendots.lab.processes.free_udp_tcp_port says why)."""
    return free_udp_tcp_port(host)


def libcoap_port_pair() -> int:
    """P with P+1 free for UDP and TCP: `coap-server-openssl -p P` listens for DTLS/TLS on P+1."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
                udp.bind(("127.0.0.1", port + 1))
                tcp.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of adjacent ports")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (./run installs it from Debian's libcoap3-bin)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _validate_every_encoding() -> Iterator[None]:
    """Production encodes server-built bodies without re-validating them (speed); every test validates them."""
    validate_every_encoding()
    yield
    validate_every_encoding(False)


@pytest.fixture
def production_encoding() -> Iterator[None]:
    """Encode like production (server-built bodies not re-validated), for the tests that check exactly that."""
    validate_every_encoding(False)
    yield
    validate_every_encoding()


@pytest.fixture(scope="module")
def listener(pki_dir: Path) -> DtlsListener:
    return DtlsListener(tls_files(pki_dir, "server"), now=time.monotonic())
