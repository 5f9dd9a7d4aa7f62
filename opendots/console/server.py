"""The operator's web console of `opendots server` ([dashboard] in server.toml): read views and one action on the
state the admin socket serves, through the admin socket's own handler.

Authentication: the token in [dashboard] token_file, given once in the login form (the page then holds a cookie
derived from it, HttpOnly and SameSite=Strict) or on every request as `Authorization: Bearer <token>`. Without a
token file the console does not start: it is never open. Actions take a JSON body only (a cross-site form cannot
send one), are confirmed in the page, and go through the admin socket's handler, which audits them
(opendots.audit: `[audit] file` and the page's timeline).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opendots.config import ConfigError, DashboardConfig
from opendots.console.events import CLOSED, Broadcaster
from opendots.console.page import dashboard_page, login_page
from opendots.console.views import CounterHistory, snapshot
from opendots.signal.client.shell.control import ControlError
from opendots.signal.server.shell.admin import AdminHandler

if TYPE_CHECKING:
    from opendots.signal.server.shell.run import RunningSignalServer

audit_log = logging.getLogger("opendots.audit")
COOKIE = "opendots_console"
DETAILS_EVERY = 2.0
TIMELINE = 50
"""Audit entries the page's timeline shows (the newest)."""
KEEPALIVE = 15.0


def read_token(path: Path) -> str:
    """The token operators log in with: the file's first line, at least 16 characters."""
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"[dashboard] token_file {path}: {error.strerror or error}") from None
    if len(token) < 16:
        raise ConfigError(f"[dashboard] token_file {path}: the token must be at least 16 characters")
    return token


@dataclass
class Console:
    admin: AdminHandler
    token: str
    clock: Callable[[], float]
    broadcaster: Broadcaster | None = None

    def __post_init__(self) -> None:
        self.session = hmac.new(self.token.encode(), b"opendots console session", hashlib.sha256).hexdigest()
        self.broadcaster = Broadcaster(self.state)
        self.history = CounterHistory(self.admin.server.service.counters_interval)
        self._details: list[dict[str, Any]] | None = None
        self._details_at = 0.0

    async def state(self) -> dict[str, Any]:
        now = self.clock()
        # Per-client details read the data channel's tables: at most every DETAILS_EVERY s, not at every snapshot.
        if self._details is None or now - self._details_at >= DETAILS_EVERY:
            self._details = (await self.admin("client-details", {}))["clients"]
            self._details_at = now
        state = await snapshot(self.admin, now, self._details)
        self.history.observe(state["mitigations"], now)
        state["audit"] = list(self.admin.server.audit.entries)[-TIMELINE:]
        return state

    def authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self.session.encode())

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/login" or self.authenticated(request):
            return await handler(request)
        if "Authorization" in request.headers or COOKIE in request.cookies:
            return _html(login_page("That credential is not valid."), 403)
        if request.path == "/":  # a person opening the console: to the form (a 401 would be a console error)
            raise web.HTTPSeeOther("/login")
        return _html(login_page(), 401)

    async def login_form(self, _request: web.Request) -> web.Response:
        return _html(login_page(), 200)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token", "")).strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            audit_log.warning("console: refused log-in from %s (wrong token)", request.remote)
            self.admin.server.audit.record(
                f"someone at {request.remote}", "console log-in refused", "console", None, None
            )
            return _html(login_page("That token is not valid."), 403)
        redirect = web.HTTPSeeOther("/")
        redirect.set_cookie(COOKIE, self.session, httponly=True, samesite="Strict", path="/")
        raise redirect

    async def page(self, _request: web.Request) -> web.Response:
        return _html(dashboard_page(await self.state()), 200)

    async def state_json(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.state())

    async def events(self, request: web.Request) -> web.StreamResponse:
        assert self.broadcaster is not None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        queue = self.broadcaster.subscribe()
        try:
            while True:
                try:
                    text = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if text == CLOSED:
                    break
                await response.write(f"event: state\ndata: {text}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.broadcaster.unsubscribe(queue)
        return response

    async def action(self, request: web.Request) -> web.Response:
        """An operator's action, on the admin socket's handler (so the same checks and the same audit entry), named
        after the operator's address. RFC 9132 leaves these to the server: the status of an externally-run
        mitigation (report-status), its termination (status 6), redirection (§4.6), and the client list."""
        op = request.match_info["op"]
        if op not in ACTIONS:
            return web.json_response({"error": f"no action {op}"}, status=404)
        if request.content_type != "application/json":
            return web.json_response({"error": "send the action as application/json"}, status=415)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        args = {key: body[key] for key in ACTIONS[op] if key in body}
        try:
            answer = await self.admin(op, args, f"operator at {request.remote} (console)")
        except ControlError as error:
            return web.json_response({"error": str(error)}, status=404 if error.code == "4.04" else 400)
        self._details = None  # a reload may change every client's details
        assert self.broadcaster is not None
        self.broadcaster.poke()
        return web.json_response(answer)


ACTIONS = {
    "report-status": ("cuid", "mid", "status"),
    "terminate": ("cuid", "mid"),
    "redirect": ("alt-server", "records", "ttl"),
    "redirect-clear": (),
    "reload": (),
}
"""What the page may ask, and the arguments each takes (the rest of a body is ignored)."""


def _html(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[console.guard], client_max_size=64 * 1024)
    app.router.add_get("/", console.page)
    app.router.add_get("/login", console.login_form)
    app.router.add_post("/login", console.login)
    app.router.add_get("/state", console.state_json)
    app.router.add_get("/events", console.events)
    app.router.add_post("/action/{op}", console.action)
    return app


@dataclass
class RunningConsole:
    console: Console
    runner: web.AppRunner
    restore: Callable[[], None]

    @property
    def addresses(self) -> list[Any]:
        return list(self.runner.addresses)

    async def stop(self) -> None:
        self.restore()
        assert self.console.broadcaster is not None
        await self.console.broadcaster.close()
        await self.runner.cleanup()


async def start_console(
    signal: RunningSignalServer,
    settings: DashboardConfig,
    config_path: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> RunningConsole:
    """Serve the console on settings.listen; ConfigError when the token file is missing, short or unreadable."""
    console = Console(AdminHandler(signal, config_path, clock), read_token(settings.token_file), clock)
    service = signal.service
    forward = service.on_event
    assert console.broadcaster is not None
    poke = console.broadcaster.poke

    def on_event(event: Any) -> None:  # every state change the service acts on also refreshes open pages
        forward(event)
        poke()

    service.on_event = on_event

    def restore() -> None:
        service.on_event = forward

    runner = web.AppRunner(build_app(console), access_log=None)
    await runner.setup()
    host, port = settings.host_port()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        restore()
        await runner.cleanup()
        raise ConfigError(f"[dashboard] listen {settings.listen}: {error.strerror or error}") from None
    return RunningConsole(console, runner, restore)
