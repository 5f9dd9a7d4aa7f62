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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from opendots.config import ClientAuthorization, ClientConfig, TlsFiles
from opendots.data.client import client_ssl_context
from opendots.data.shell.server import server_ssl_context
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
    _runner: web.AppRunner | None = None

    @property
    def upstream_base(self) -> str:
        host = self.upstream.server_addresses[0] if self.upstream.server_addresses else self.upstream.server_name
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.upstream.data_port}"

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
        url = self.upstream_base + request.rel_url.raw_path_qs
        try:
            async with self._session.request(
                request.method, url, data=body or None, headers=headers, server_hostname=self.upstream.server_name
            ) as answer:
                payload = await answer.read()
                returned = {name: answer.headers[name] for name in RETURNED_HEADERS if name in answer.headers}
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as problem:
            self.counters["upstream-failed"] += 1
            return _error(503, "resource-denied", f"the upstream DOTS server cannot be reached: {problem}")
        self.counters["relayed"] += 1
        return web.Response(status=status, body=without_cdid(payload) if payload else None, headers=returned)
