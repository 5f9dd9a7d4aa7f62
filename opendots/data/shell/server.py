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
from opendots.data.core.channel import DataChannelCore
from opendots.data.core.errors import RestconfError
from opendots.data.core.messages import MEDIA_TYPE, RESTCONF_ROOT, RestconfRequest, RestconfResponse
from opendots.data.core.settings import DataChannelSettings
from opendots.data.shell.runner import CoreRunner
from opendots.data.shell.settings import HttpTimeouts, data_settings_from_table, timeouts_from_table
from opendots.model.data_channel import yang_library
from opendots.pki import cuid_from_certificate
from opendots.store.data_records import DataChannelStore
from opendots.store.records import StoreError

log = logging.getLogger(__name__)

CORE_KEY = web.AppKey("data_channel_core", DataChannelCore)
RUNNER_KEY = web.AppKey("data_channel_runner", CoreRunner)
HOST_META_XRD = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
    f"    <Link rel='restconf' href='{RESTCONF_ROOT}'/>\n"
    "</XRD>\n"
)
MAX_BODY = 4 * 1024 * 1024
YANG_LIBRARY_VERSION = "2016-06-21"  # RFC 7895's ietf-yang-library, the modules-state we serve
TIMEOUTS_KEY = web.AppKey("data_channel_timeouts", HttpTimeouts)


class _Watchdog(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection and closes it when a request head is late: aiohttp itself
    waits forever for the first head, so a client trickling bytes (slowloris) would hold the connection.

    The first head must be complete within `header` seconds of the TLS handshake, each later one within
    `keepalive` seconds of the previous response; the handler stops the clock while a request is served."""

    def __init__(self, inner: asyncio.Protocol, timeouts: HttpTimeouts) -> None:
        self.inner = inner
        self.timeouts = timeouts
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self.transport is not None:
            log.debug("data channel: closing a connection whose request head is late")
            self.transport.abort()

    def head_received(self) -> None:
        self._disarm()

    def response_sent(self) -> None:
        self._arm(self.timeouts.keepalive)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)
        self._arm(self.timeouts.header)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.transport = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through _Watchdog."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        timeouts: HttpTimeouts,
        reuse_port: bool = False,
    ):
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None)
        self._timeouts = timeouts

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Watchdog(server(), self._timeouts),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )


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


def _make_handler():
    async def handle(request: web.Request) -> web.Response:
        runner = request.app[RUNNER_KEY]
        cuid = _peer_cuid(request)
        if cuid is None:  # unreachable with CERT_REQUIRED, kept as a guard for plain-HTTP test setups
            error = RestconfError("access-denied", "a client certificate is required", status=401)
            return _json_response(RestconfResponse(401, error.body()))
        prefix = f"{RESTCONF_ROOT}/data"
        raw_path = request.rel_url.raw_path
        try:
            # The whole body, bounded in size (client_max_size) and in time (a trickled body is dropped).
            body = await asyncio.wait_for(request.read(), request.app[TIMEOUTS_KEY].body)
        except web.HTTPRequestEntityTooLarge:
            error = RestconfError("too-big", f"request bodies are limited to {MAX_BODY} bytes", error_type="transport")
            return _json_response(RestconfResponse(413, error.body()))
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
            error = RestconfError("operation-failed", "the request body came too slowly", error_type="transport")
            return _json_response(RestconfResponse(408, error.body()))
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
        response = await runner.serve(restconf_request)
        return _json_response(response, head=request.method == "HEAD")

    return handle


async def _yang_library(request: web.Request) -> web.Response:
    """The module set this server implements (RFC 8040 §10, RFC 7895), for clients that ask."""
    return web.Response(body=json.dumps(yang_library()).encode(), content_type=MEDIA_TYPE)


async def _yang_library_version(request: web.Request) -> web.Response:
    """RFC 8040 §3.3.3: the mandatory leaf naming the ietf-yang-library revision the server implements."""
    body = {"ietf-restconf:yang-library-version": YANG_LIBRARY_VERSION}
    return web.Response(text=json.dumps(body), content_type=MEDIA_TYPE)


async def _restconf_root(request: web.Request) -> web.Response:
    body = {"ietf-restconf:restconf": {"data": {}, "operations": {}, "yang-library-version": YANG_LIBRARY_VERSION}}
    return web.Response(text=json.dumps(body), content_type=MEDIA_TYPE)


@web.middleware
async def _restconf_errors(request: web.Request, handler):
    """Errors raised by routing itself (unknown API resource, wrong method) still get an `errors` body."""
    watchdog = request.transport.get_protocol() if request.transport is not None else None
    if isinstance(watchdog, _Watchdog):
        watchdog.head_received()
    try:
        return await handler(request)
    except web.HTTPException as exception:
        if exception.status < 400 or not request.path.startswith(RESTCONF_ROOT):
            raise
        tag = "operation-not-supported" if exception.status == 405 else "invalid-value"
        error = RestconfError(tag, exception.reason, status=exception.status, error_type="protocol")
        return _json_response(RestconfResponse(exception.status, error.body()))
    finally:
        if isinstance(watchdog, _Watchdog):
            watchdog.response_sent()  # from here the next request head has `keepalive` seconds


def create_data_app(
    config: ServerConfig,
    store: DataChannelStore,
    settings: DataChannelSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The RESTCONF application; `store` holds the data, `config.clients` says who may do what."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_restconf_errors])
    settings = settings or data_settings_from_table(config.clients, config.data)
    app[TIMEOUTS_KEY] = timeouts_from_table(config.data)
    app[CORE_KEY] = DataChannelCore(store, config.client_by_cuid, settings)
    app[RUNNER_KEY] = CoreRunner(app[CORE_KEY], clock)
    handler = _make_handler()
    app.router.add_get("/.well-known/host-meta", _host_meta)
    app.router.add_get("/.well-known/host-meta.json", _host_meta_json)
    app.router.add_get(RESTCONF_ROOT, _restconf_root)
    app.router.add_get(f"{RESTCONF_ROOT}/data/ietf-yang-library:modules-state", _yang_library)
    app.router.add_get(f"{RESTCONF_ROOT}/yang-library-version", _yang_library_version)
    app.router.add_route("*", f"{RESTCONF_ROOT}/data", handler)
    app.router.add_route("*", f"{RESTCONF_ROOT}/data/{{path:.*}}", handler)
    app.cleanup_ctx.append(_expiry_task(app[RUNNER_KEY], store, clock))
    return app


PURGE_INTERVAL = 60.0  # seconds between purges of expired aliases/ACLs


def _expiry_task(runner: CoreRunner, store: DataChannelStore, clock: Callable[[], float]):
    """Owns the periodic purge of expired aliases/ACLs (§3.5); readers already ignore expired rows. On cleanup,
    closes the runner's second connection."""

    async def context(app: web.Application):
        async def loop() -> None:
            while True:
                await asyncio.sleep(PURGE_INTERVAL)
                try:
                    async with runner.writes:  # not while a write is being committed in a worker thread
                        removed = await runner.run_store(store.purge_expired, clock())  # off the loop on PostgreSQL
                except StoreError as error:  # the next round tries again: expired rows are invisible meanwhile
                    log.error("data channel: could not purge expired aliases/ACLs: %s", error)
                    continue
                if removed:
                    log.info("data channel: removed %d expired aliases/ACLs", removed)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        runner.close()

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
    `config.data_port`); `await runner.cleanup()` stops it. The core is `runner.app[CORE_KEY]`."""
    app = create_data_app(config, store, settings, clock)
    timeouts = app[TIMEOUTS_KEY]
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=timeouts.keepalive)
    await runner.setup()
    hosts = [host] if isinstance(host, str) else list(host or config.listen)
    context = server_ssl_context(config.tls)
    try:
        for address in hosts:
            at = port if port is not None else config.data_port
            # `opendots server --workers N`: each worker accepts on the port (SO_REUSEPORT)
            await _GuardedSite(runner, address, at, context, timeouts, reuse_port=config.worker is not None).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
