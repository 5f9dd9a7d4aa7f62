"""The data channel through a server-domain DOTS gateway (RFC 8783 §3.3): an HTTPS server toward the downstream
clients (mutual TLS, the same [[clients]] as the signal channel) that relays every RESTCONF request to the upstream
server with the gateway's own client certificate, with 'cdid' inserted in registrations and Via checked and
extended (opendots.gateway.data_rules).

A client-domain gateway is one data-channel client upstream, under its own 'cuid' as on its signal channel, with
its clients' aliases and ACLs renamed apart (opendots.gateway.data_client_domain, data_names).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from opendots.config import ClientAuthorization, ClientConfig, TlsFiles
from opendots.data.client import client_ssl_context
from opendots.data.shell.server import server_ssl_context
from opendots.discovery.cache import DiscoveryCache
from opendots.gateway.data_client_domain import ClientDomainData
from opendots.gateway.data_rules import check_via, is_registration, loop_detected_body, with_cdid, without_cdid
from opendots.pki.cuid import cuid_from_certificate

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/yang-data+json"
FORWARDED_HEADERS = ("Content-Type", "Accept", "If-Match", "If-None-Match")
RETURNED_HEADERS = ("Content-Type", "Location", "ETag", "Last-Modified")
TIMEOUT = aiohttp.ClientTimeout(total=30)


def _error(status: int, tag: str, message: str, **extra: str) -> web.Response:
    error = {"error-type": "application", "error-tag": tag, "error-message": message, **extra}
    return web.Response(
        status=status,
        body=json.dumps({"ietf-restconf:errors": {"error": [error]}}).encode(),
        content_type=MEDIA_TYPE,
    )


@dataclass
class DataRelay:
    kind: str
    identity: str
    client_by_cuid: Callable[[str], ClientAuthorization | None]
    upstream: ClientConfig
    downstream_tls: TlsFiles
    counters: Counter[str] = field(default_factory=Counter)
    client_domain: ClientDomainData | None = None
    """A client-domain gateway's handler (its clients' names kept apart upstream)."""
    _session: aiohttp.ClientSession | None = None
    _discovered: DiscoveryCache = field(default_factory=DiscoveryCache)
    _runner: web.AppRunner | None = None

    @property
    def upstream_base(self) -> str:
        host = self.upstream.server_addresses[0] if self.upstream.server_addresses else self.upstream.server_name
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.upstream.data_port}"

    @property
    def _discovering(self) -> bool:
        """RFC 8973 for the upstream data channel: `discovery = "auto"` in the upstream file, which names no server."""
        return self.upstream.discovery == "auto" and not self.upstream.server_configured

    async def _upstreams(self) -> list[tuple[str, str]]:
        """(base URL, name its certificate must carry) of the upstream data channel, best first: the upstream
        file's server, or the RFC 8973 "data.tcp" candidates (opendots.data.discovery), kept for their TTL."""
        if not self._discovering:
            return [(self.upstream_base, self.upstream.server_name)]
        from opendots.data.discovery import DATA_PROTOCOLS, data_servers, url_of
        from opendots.discovery.discover import discoverer_for

        now = time.monotonic()
        result = self._discovered.get(now)
        if result is None:
            result = await discoverer_for(self.upstream).discover(DATA_PROTOCOLS)
            self._discovered.store(result, now)
            log.info("data channel upstream: %s", "; ".join(result.notes))
        return [(url_of(server), server.peer_name) for server in data_servers(result)]

    async def start(self, listen: list[str], port: int) -> list[tuple[Any, ...]]:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(self.upstream.tls))
        self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = server_ssl_context(self.downstream_tls)
        for host in listen:
            await web.TCPSite(self._runner, host, port, ssl_context=context).start()
        return list(self._runner.addresses)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.Response:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        peer = cuid_from_certificate(der) if der else None
        if peer is None or self.client_by_cuid(peer) is None:
            return _error(403, "access-denied", "this DOTS client is not authorized to use this DOTS gateway")
        via = check_via(request.headers.get("Via"), self.identity)
        if via.loop:
            self.counters["loops-detected"] += 1
            log.error("DOTS gateway loop on the data channel: Via %r names this gateway (RFC 8783 §3.4)", via.via)
            return web.Response(
                status=508, body=json.dumps(loop_detected_body(via.via)).encode(), content_type=MEDIA_TYPE
            )
        if self.kind != "server-domain":
            if self.client_domain is None:
                return _error(501, "operation-not-supported", "this DOTS gateway does not relay the data channel")
            return await self.client_domain.handle(request, peer, via.via)
        body = await request.read()
        if body and is_registration(request.method, request.path):
            body = with_cdid(body, peer) or body  # §5.1: the client's certificate SPKI hash, as on the signal channel
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        headers["Via"] = via.via
        assert self._session is not None
        problem: Exception | str = "RFC 8973 discovery found no upstream data channel server"
        status: int | None = None
        candidates = await self._upstreams()
        for base, server_name in candidates:
            try:
                async with self._session.request(
                    request.method,
                    base + request.rel_url.raw_path_qs,
                    data=body or None,
                    headers=headers,
                    server_hostname=server_name,
                ) as answer:
                    payload = await answer.read()
                    returned = {name: answer.headers[name] for name in RETURNED_HEADERS if name in answer.headers}
                    status = answer.status
                break
            except aiohttp.ClientConnectorError as error:  # not connected (or its certificate refused): not sent,
                problem = error  # so the next candidate may take it
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = error
                break  # it may have reached the server: not sent again elsewhere
        if status is None:
            if self._discovering:
                self._discovered.invalidate()  # none connected: RFC 8973 discovery again for the next request
            self.counters["upstream-failed"] += 1
            return _error(503, "resource-denied", f"the upstream DOTS server cannot be reached: {problem}")
        self.counters["relayed"] += 1
        return web.Response(status=status, body=without_cdid(payload) if payload else None, headers=returned)
