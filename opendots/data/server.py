"""The data channel's HTTPS shell: mutual TLS, host-meta root discovery, RESTCONF requests → the core."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from opendots.config import ServerConfig, TlsFiles
from opendots.data.errors import RestconfError
from opendots.data.service import (
    MEDIA_TYPE,
    RESTCONF_ROOT,
    DataChannelService,
    DataChannelSettings,
    RestconfRequest,
    RestconfResponse,
)
from opendots.data.settings import data_settings_from_table
from opendots.model.data_channel import yang_library
from opendots.pki import cuid_from_certificate
from opendots.store.data_channel import DataChannelStore

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("data_channel_service", DataChannelService)
HOST_META_XRD = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
    f"    <Link rel='restconf' href='{RESTCONF_ROOT}'/>\n"
    "</XRD>\n"
)
MAX_BODY = 4 * 1024 * 1024


def server_ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    """TLS ≥ 1.2 with a client certificate required and checked against our CA (RFC 8783 §10)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(tls.cert, tls.key)
    context.load_verify_locations(cafile=tls.ca)
    return context


def _peer_cuid(request: web.Request) -> str | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(True) if ssl_object is not None else None
    return cuid_from_certificate(der) if der else None


def _json_response(response: RestconfResponse, head: bool = False) -> web.Response:
    if response.body is None:
        return web.Response(status=response.status, headers=response.headers)
    text = json.dumps(response.body, separators=(",", ":"))  # no indent: keeps the C encoder
    return web.Response(
        status=response.status,
        body=None if head else text.encode(),
        headers={**response.headers, "Content-Type": MEDIA_TYPE},
    )


async def _host_meta(request: web.Request) -> web.Response:
    return web.Response(text=HOST_META_XRD, content_type="application/xrd+xml")


async def _host_meta_json(request: web.Request) -> web.Response:
    return web.json_response({"links": [{"rel": "restconf", "href": RESTCONF_ROOT}]})


def _make_handler(clock: Callable[[], float]):
    async def handle(request: web.Request) -> web.Response:
        service = request.app[SERVICE_KEY]
        cuid = _peer_cuid(request)
        if cuid is None:  # unreachable with CERT_REQUIRED, kept as a guard for plain-HTTP test setups
            error = RestconfError("access-denied", "a client certificate is required", status=401)
            return _json_response(RestconfResponse(401, error.body()))
        prefix = f"{RESTCONF_ROOT}/data"
        raw_path = request.rel_url.raw_path
        try:
            body = await request.read()  # the whole body, bounded by client_max_size
        except web.HTTPRequestEntityTooLarge:
            error = RestconfError("too-big", f"request bodies are limited to {MAX_BODY} bytes", error_type="transport")
            return _json_response(RestconfResponse(413, error.body()))
        restconf_request = RestconfRequest(
            method=request.method,
            path=raw_path[len(prefix) :],
            peer_cuid=cuid,
            query=[(key, value) for key, value in request.rel_url.query.items()],
            body=body,
            content_type=request.headers.get("Content-Type"),
            accept=request.headers.get("Accept"),
            via=request.headers.get("Via"),
        )
        response = service.handle(restconf_request, clock())
        return _json_response(response, head=request.method == "HEAD")

    return handle


async def _yang_library(request: web.Request) -> web.Response:
    """The module set this server implements (RFC 8040 §10, RFC 7895), for clients that ask."""
    return web.Response(body=json.dumps(yang_library()).encode(), content_type=MEDIA_TYPE)


async def _restconf_root(request: web.Request) -> web.Response:
    body = {"ietf-restconf:restconf": {"data": {}, "operations": {}, "yang-library-version": "2016-06-21"}}
    return web.Response(text=json.dumps(body), content_type=MEDIA_TYPE)


@web.middleware
async def _restconf_errors(request: web.Request, handler):
    """Errors raised by routing itself (unknown API resource, wrong method) still get an `errors` body."""
    try:
        return await handler(request)
    except web.HTTPException as exception:
        if exception.status < 400 or not request.path.startswith(RESTCONF_ROOT):
            raise
        tag = "operation-not-supported" if exception.status == 405 else "invalid-value"
        error = RestconfError(tag, exception.reason, status=exception.status, error_type="protocol")
        return _json_response(RestconfResponse(exception.status, error.body()))


def create_data_app(
    config: ServerConfig,
    store: DataChannelStore,
    settings: DataChannelSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The RESTCONF application; `store` holds the data, `config.clients` says who may do what."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_restconf_errors])
    settings = settings or data_settings_from_table(config.clients, config.data)
    app[SERVICE_KEY] = DataChannelService(store, config.client_by_cuid, settings)
    handler = _make_handler(clock)
    app.router.add_get("/.well-known/host-meta", _host_meta)
    app.router.add_get("/.well-known/host-meta.json", _host_meta_json)
    app.router.add_get(RESTCONF_ROOT, _restconf_root)
    app.router.add_get(f"{RESTCONF_ROOT}/data/ietf-yang-library:modules-state", _yang_library)
    app.router.add_route("*", f"{RESTCONF_ROOT}/data", handler)
    app.router.add_route("*", f"{RESTCONF_ROOT}/data/{{path:.*}}", handler)
    app.cleanup_ctx.append(_expiry_task(store, clock))
    return app


def _expiry_task(store: DataChannelStore, clock: Callable[[], float], interval: float = 60.0):
    """Owns the periodic purge of expired aliases/ACLs (§3.5); readers already ignore expired rows."""

    async def context(app: web.Application):
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                removed = store.purge_expired(clock())
                if removed:
                    log.info("data channel: removed %d expired aliases/ACLs", removed)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def start_data_server(
    config: ServerConfig,
    store: DataChannelStore,
    host: str | list[str] | None = None,
    port: int | None = None,
    settings: DataChannelSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> web.AppRunner:
    """Serve the data channel with mutual TLS on HOST:PORT (default: every `config.listen` address on
    `config.data_port`); `await runner.cleanup()` stops it. The service is `runner.app[SERVICE_KEY]`."""
    runner = web.AppRunner(create_data_app(config, store, settings, clock), access_log=None)
    await runner.setup()
    hosts = [host] if isinstance(host, str) else list(host or config.listen)
    context = server_ssl_context(config.tls)
    try:
        for address in hosts:
            await web.TCPSite(
                runner, address, port if port is not None else config.data_port, ssl_context=context
            ).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
