"""The data channel's RESTCONF server found by RFC 8973 when client.toml names none (`[client] discovery = "auto"`).

The same procedure as the signal channel's (opendots.discovery), for the "data.tcp" application protocol tag (§6,
§9.4.5): DHCP-supplied addresses at `data_port` (§5: one peer for both channels), S-NAPTR "DOTS:data.tcp" then SRV
`_dots-data._tcp` or an "a" record (port 443), then DNS-SD `_dots-data._tcp`. Each candidate is tried in that order
with its reference identifier as the TLS server name (§8); the first whose certificate verifies and whose
/.well-known/host-meta names a RESTCONF root (RFC 8040 §3.1, RFC 8783 §3) is used.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from opendots.config import ClientConfig
from opendots.data.client import DataChannelClient, DataChannelError, one_line
from opendots.discovery.discover import Discoverer
from opendots.discovery.records import DiscoveredServer, DiscoveryResult
from opendots.errors import UnavailableError

log = logging.getLogger(__name__)
DATA_PROTOCOLS = ("data.tcp",)


def data_servers(result: DiscoveryResult) -> list[DiscoveredServer]:
    """RESULT's data-channel candidates, best RFC 8973 §4 source first (the discovery order kept within one)."""
    from opendots.discovery.records import SOURCES

    found = [server for server in result.servers if server.channel == "data"]
    return sorted(found, key=lambda server: SOURCES.index(server.source))


def url_of(server: DiscoveredServer) -> str:
    host = f"[{server.address}]" if ":" in server.address else server.address
    return f"https://{host}:{server.port}"


@asynccontextmanager
async def discovered_client(
    config: ClientConfig, discoverer: Discoverer | None = None
) -> AsyncIterator[DataChannelClient]:
    """A DataChannelClient on the first discovered server that answers host-meta with a verified certificate."""
    if discoverer is None:
        from opendots.discovery.discover import discoverer_for

        discoverer = discoverer_for(config)
    result = await discoverer.discover(DATA_PROTOCOLS)
    errors: list[str] = []
    for server in data_servers(result):
        client = DataChannelClient(url_of(server), config.tls, server.peer_name)
        await client.__aenter__()
        try:
            try:
                await client.discover()  # host-meta: the RESTCONF root, over a handshake that checked the name
            except aiohttp.ClientConnectorCertificateError as error:
                errors.append(
                    f"{url_of(server)} ({server.source}): its certificate is refused for {server.peer_name!r} "
                    f"(RFC 8973 §8): {one_line(str(error.certificate_error))}"
                )
                continue
            except (OSError, aiohttp.ClientError, DataChannelError, ValueError) as error:
                errors.append(f"{url_of(server)} ({server.source}): {one_line(str(error)) or type(error).__name__}")
                continue
            log.info("data channel: %s, found by RFC 8973 %s, root %s", url_of(server), server.source, client.root)
            client.found = server
            yield client
            return
        finally:
            await client.__aexit__(None, None, None)
    if not errors:
        raise UnavailableError("discovery found no DOTS data channel server: " + "; ".join(result.notes))
    raise UnavailableError("no discovered DOTS data channel server answered: " + "; ".join(errors))
