"""RFC 9066 Call Home in tests: a CPE's configuration and a provider (Call Home DOTS client) on a free port, from
the session's test PKI (the CPE holds `server.crt`, the provider `client.crt`)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509

from opendots.callhome.cpe import DialPolicy, ProviderAddress
from opendots.callhome.provider import CallHomeClient, CpePeer
from opendots.config import ClientAuthorization, ServerConfig
from opendots.pki.cuid import cuid_from_certificate
from tests.conftest import free_port
from tests.helpers import tls_files

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
SOURCE = "ietf-dots-call-home:source-prefix"
HOME_PREFIX = ipaddress.ip_network("192.0.2.0/24")  # the CPE's own addresses: what the provider may ask about
FAST = DialPolicy(keepalive=0.3, ping_timeout=1.0, backoff=0.1, max_backoff=0.5, loss_after=2.0, dial_timeout=1.0)


def cuid_of(path: Path) -> str:
    return cuid_from_certificate(x509.load_pem_x509_certificate(path.read_bytes()))


def cpe_config(pki_dir: Path, tmp_path: Path, stem: str = "server") -> ServerConfig:
    """The CPE's server.toml: its certificate STEM, the provider (certificate `client`) as its only DOTS client."""
    config = ServerConfig.load(pki_dir / "server.toml")
    provider = ClientAuthorization(name="isp", cuid=cuid_of(pki_dir / "client.crt"), prefixes=(HOME_PREFIX,))
    return replace(
        config,
        tls=tls_files(pki_dir, stem),
        clients=[provider],
        db=tmp_path / "cpe.db",
        admin_socket=None,
        full_collection_interval=0,
        signal={"active_but_terminating": 1},  # a withdrawn mitigation ends a second later (RFC 9132 §4.4.4)
    )


async def start_provider(
    pki_dir: Path,
    transport: str,
    stem: str = "client",
    directory: Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> tuple[CallHomeClient, ProviderAddress]:
    """A provider with certificate STEM (from DIRECTORY, default the test PKI) knowing the CPE `home`, on HOST and
    PORT (default: a free one), over TRANSPORT ("auto": both); the address says to check the name `client` (a test
    may replace it)."""
    port = port or free_port(socket.SOCK_STREAM)
    home = CpePeer("home", cuid_of(pki_dir / "server.crt"), (HOME_PREFIX,))
    provider = await CallHomeClient.start(
        tls_files(directory or pki_dir, stem),
        [home],
        bind=[(host, port)],
        dtls=transport in ("dtls", "auto"),
        tls=transport in ("tls", "auto"),
    )
    return provider, ProviderAddress(host, server_name="client", port=port, transport=transport)  # type: ignore[arg-type]


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)
