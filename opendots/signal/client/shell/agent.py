"""The long-running DOTS client agent (`opendots client run`): the asyncio shell around DotsClientCore.

It keeps one signal channel session up (Happy Eyeballs to connect, reconnection with back-off), sends heartbeats and
answers the server's (a /hb resource on the client context's Site), observes each of its mitigations and keeps the
latest status, re-creates its state after a reconnection, follows redirections, and serves the local control API
(opendots.signal.client.shell.control) on ClientConfig.control_socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiocoap
import aiocoap.error
import aiocoap.resource

from opendots import eventloop
from opendots.config import ClientConfig
from opendots.discovery.cache import DiscoveryCache
from opendots.discovery.discover import Discoverer, discoverer_for
from opendots.discovery.records import name_origin
from opendots.discovery.refresh import Rediscovery
from opendots.eventloop import running_loop_name
from opendots.model import ModelError
from opendots.pki.cuid import cuid_from_certificate
from opendots.signal.client.core import events as ev
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.eyeballs import Candidate, EyeballsCache
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.client.core.timing import ReconnectBackoff
from opendots.signal.client.shell import coap
from opendots.signal.client.shell.connect import (
    ConnectError,
    Connection,
    Group,
    candidates_for,
    discovered_groups,
    race,
    resolve_addresses,
)
from opendots.signal.client.shell.control import ControlError, ControlServer
from opendots.signal.client.shell.heartbeats import HeartbeatResource
from opendots.signal.client.shell.operations import ClientOperations, OperationError
from opendots.signal.client.shell.rediscover import RediscoveryMixin
from opendots.signal.client.shell.settings import AgentSettings
from opendots.store.client_state import ClientStateStore
from opendots.transport import create_client_context, open_session
from opendots.transport.aiocoap_hooks import quiet_shutdown_races

log = logging.getLogger(__name__)
REDIRECTED_SIGNAL = "ietf-dots-signal-channel:redirected-signal"


async def _shutdown(context: aiocoap.Context | None) -> None:
    if context is not None:
        with contextlib.suppress(Exception):
            await context.shutdown()


def _cancel(pending: Any) -> None:
    # Forgetting the observation (RFC 7641 §3.6); aiocoap asserts on a second cancel.
    if not pending.observation.cancelled:
        pending.observation.cancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class ClientAgent(RediscoveryMixin):
    def __init__(self, config: ClientConfig, settings: AgentSettings, *, clock: Callable[[], float] = time.time):
        self.config = config
        self.settings = settings
        self.clock = clock
        self.cuid = cuid_from_certificate(config.tls.cert.read_bytes())
        self.store = ClientStateStore(settings.state_file, self.cuid)
        self.core = DotsClientCore(self.cuid, self.store, now=clock())
        self.core.telemetry.configure(settings.telemetry_setups)  # sent at every session start (RFC 9244 §7)
        self.operations = ClientOperations(self.core, self._send, clock, after_response=self._after_response)
        self.backoff = ReconnectBackoff(settings.reconnect_min, settings.reconnect_max)
        self.eyeballs = EyeballsCache()
        self.connection: Connection | None = None
        self.context: aiocoap.Context | None = None
        self.control = ControlServer(config.control_socket, self._control)
        self.sessions_established = 0
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._lost = False
        self._observations: dict[int, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._redirect_addresses: list[str] | None = None
        self._redirect_followed = False
        self._server_label = config.server_name
        self._replacement: tuple[aiocoap.Context, Connection] | None = None
        self._parallel: asyncio.Task[None] | None = None
        # What the supervisor is doing, for `client session` and for failing control requests fast.
        self._state = "starting"
        self._last_error: str | None = None
        self._next_attempt_at: float | None = None
        self._attempt_over = asyncio.Event()
        # RFC 8973 discovery ([client] discovery = "auto"); None keeps server_name / server_addresses only.
        self.discovery: Discoverer | None = discoverer_for(config) if config.discovery == "auto" else None
        self.discovery_cache = DiscoveryCache()
        self.discovered_from: str | None = None
        self.rediscovery = Rediscovery()  # RFC 8973 §4: discover again at the TTL's (or certificate's) expiry
        self._rediscovering: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        quiet_shutdown_races(asyncio.get_running_loop())
        await self.control.start()
        self._supervisor = asyncio.create_task(self._supervise(), name="dots-client-supervisor")
        log.info("DOTS client agent started: cuid %s, control socket %s", self.cuid, self.config.control_socket)

    async def stop(self) -> None:
        pending = (
            self._supervisor,
            self._parallel,
            self._rediscovering,
            *self._observations.values(),
            *self._background,
        )
        tasks = [t for t in pending if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.control.close()
        await _shutdown(self.context)
        await _shutdown(self._replacement[0] if self._replacement else None)
        self.context = None
        self.store.close()

    async def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM."""
        stop = eventloop.stop_on_signals()
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):  # not wait_for: 3.11's can swallow a racing cancel
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    # ---------------------------------------------------------------- session supervision
    async def _supervise(self) -> None:
        while True:
            delay = self.backoff.next_delay()
            if delay:
                redirection = self.core.redirection(self.clock())
                if redirection is not None and redirection["ttl-left"] is not None:
                    delay = min(delay, redirection["ttl-left"])  # §4.6: fall back as soon as the TTL is over
                log.info("next connection attempt in %.0f s", delay)
                self._state, self._next_attempt_at = "waiting", self.clock() + delay
                await asyncio.sleep(delay)
            # Timers run while no session is up too: a redirection's TTL expires even if the alternate server
            # never answered (RFC 9132 §4.6), so the provisioned server is tried again.
            self.core.handle_timer(self.clock())
            self.pump()
            self._state, self._next_attempt_at = "connecting", None
            self._attempt_over.clear()
            try:
                context, connection = await self._connect()
            except (ConnectError, OSError) as error:
                log.warning("cannot reach the DOTS server %s: %s", self._server_label, error)
                self._last_error = str(error)
                self.backoff.failed()
                self._state = "waiting"
                self._attempt_over.set()
                continue
            self.backoff.succeeded()
            self._last_error = None
            self._state = "connected"
            self._attempt_over.set()
            self._session_up(context, connection)
            await self._run_session()
            await self._session_down()

    async def _new_context(self, server_name: str, name_source: str) -> aiocoap.Context:
        # A fresh context per session: a new (D)TLS handshake instead of a session the server may have forgotten.
        site = aiocoap.resource.Site()
        site.add_resource((".well-known", "dots", "hb"), HeartbeatResource(self))
        # After a redirection the alternate server's certificate must name the alt-server FQDN (RFC 9132 §4.6);
        # a discovered server's must name its reference identifier (RFC 8973 §8).
        return await create_client_context(self.config.tls, server_name=server_name, site=site, name_source=name_source)

    async def _candidate_groups(self) -> list[Group]:
        """One race for the configured server, or RFC 8973 discovery's groups (best source first). A redirection
        (RFC 9132 §4.6) overrides discovery while it holds."""
        if self.discovery is None or self._redirect_addresses is not None:
            addresses = await resolve_addresses(self.config, self._redirect_addresses)
            return [Group(self._server_label, candidates_for(self.config, addresses))]
        return await discovered_groups(self.config, self.discovery, self.discovery_cache, self.clock())

    async def _connect(
        self, *, use_cache: bool = True, transports: tuple[str, ...] | None = None
    ) -> tuple[aiocoap.Context, Connection]:
        """Happy Eyeballs (RFC 9132 §4.3) on a new context; the cached winner is tried alone first. With
        discovery, one race per discovered peer name in the RFC 8973 §4 order; when none answers, the cached
        discovery is dropped so that the next attempt discovers again."""
        errors: list[str] = []
        for group in await self._candidate_groups():
            server_name = group.server_name
            every = [c for c in group.candidates if transports is None or c.transport in transports]
            if not every:
                continue
            try:
                context, connection = await self._race_group(server_name, every, use_cache, self._origin(group))
            except ConnectError as error:
                errors.append(f"{server_name}: {error}")
                continue
            self._server_label = server_name
            self.discovered_from = group.source
            return context, connection
        if self.discovery is not None:
            self.discovery_cache.invalidate()
        raise ConnectError("; ".join(errors) or "no candidate for the allowed transports")

    def _origin(self, group: Group) -> str:
        """Where GROUP's server name came from, for the error when the server's certificate lacks it."""
        if group.source is not None:
            return name_origin(group.source, group.server_name)
        if self._redirect_addresses is not None:
            return "the alternate server of a redirection, RFC 9132 §4.6"
        return "server_name in client.toml"

    async def _race_group(
        self, server_name: str, every: list[Candidate], use_cache: bool, name_source: str
    ) -> tuple[aiocoap.Context, Connection]:
        chosen = self.eyeballs.candidates(every, self.clock()) if use_cache else every
        context = await self._new_context(server_name, name_source)

        async def attempt(candidate: Any) -> float:
            return await open_session(context, candidate.base_uri, timeout=self.settings.connect_timeout)

        try:
            try:
                connection = await race(chosen, attempt, attempt_delay=self.settings.attempt_delay, clock=self.clock)
            except ConnectError:
                if len(chosen) == len(every):
                    raise
                self.eyeballs.forget()  # the cached winner stopped working: race everything again
                connection = await race(every, attempt, attempt_delay=self.settings.attempt_delay, clock=self.clock)
        except BaseException:
            await _shutdown(context)
            raise
        self.eyeballs.remember(connection.candidate, self.clock())
        return context, connection

    def _session_up(self, context: aiocoap.Context, connection: Connection) -> None:
        self.context = context
        self.connection = connection
        self._lost = False
        self.sessions_established += 1
        log.info("signal channel session up: %s (RTT %.1f ms)", connection.candidate, connection.rtt * 1000)
        self.core.connected(self.clock(), reliable=connection.reliable, server=self._server_label)
        self._connected.set()
        self.pump()

    async def _session_down(self) -> None:
        self._connected.clear()
        self.core.disconnected()
        self.connection = None
        for task in self._observations.values():
            task.cancel()
        self._observations.clear()
        if self._parallel is not None:
            self._parallel.cancel()
            self._parallel = None
        if self._rediscovering is not None:
            self._rediscovering.cancel()
            self._rediscovering = None
        self.rediscovery.session_down()
        context, self.context = self.context, None
        await _shutdown(context)

    def _mark_lost(self, reason: str) -> None:
        if self.connection is not None and not self._lost:
            log.warning("signal channel session lost: %s", reason)
        self._lost = True
        self._connected.clear()
        self._wake.set()

    async def _run_session(self) -> None:
        await self._arm_rediscovery()
        while not self._lost:
            self.pump()
            if self._lost:
                break
            if self._replacement is not None:
                await self._switch_session()
                await self._arm_rediscovery()
                continue
            self._maybe_probe_dtls()
            self._maybe_rediscover()
            timers = [self.core.next_timer(), self._next_dtls_probe()]
            if self._rediscovering is None:
                timers.append(self.rediscovery.next_timer())
            timers = [t for t in timers if t is not None]
            timer = min(timers, default=None)
            self._wake.clear()
            timeout = None if timer is None else max(0.0, timer - self.clock())
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel racing with the wake-up,
            # which left stop() waiting forever for this task.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self.core.handle_timer(self.clock())

    def _next_dtls_probe(self) -> float | None:
        if self.config.transport != "auto" or self._parallel is not None:
            return None
        return self.eyeballs.next_dtls_probe()

    def _maybe_probe_dtls(self) -> None:
        """RFC 9132 §4.3: over TLS because DTLS failed, look again now and then whether DTLS works."""
        if self._next_dtls_probe() is None or not self.eyeballs.dtls_probe_due(self.clock()):
            return
        self.eyeballs.dtls_probed(self.clock())
        self._parallel = asyncio.create_task(self._probe_dtls(), name="dots-client-dtls-probe")

    async def _probe_dtls(self) -> None:
        try:
            context, connection = await self._connect(use_cache=False, transports=("dtls",))
        except (ConnectError, OSError) as error:
            log.info("DTLS still unavailable: %s", error)
            return
        finally:
            self._parallel = None
        log.info("DTLS works again: moving the session from TLS to %s", connection.candidate)
        self._replacement = (context, connection)
        self._wake.set()

    async def _parallel_session(self) -> None:
        """RFC 9132 §4.7 under attack: keep the current session and try to establish a new one alongside,
        with the reconnection back-off between attempts, until one connects or the current session recovers."""
        backoff = ReconnectBackoff(self.settings.reconnect_min, self.settings.reconnect_max)
        try:
            while self.core.heartbeats_failing:
                try:
                    context, connection = await self._connect(use_cache=False)
                except (ConnectError, OSError) as error:
                    log.warning("parallel session attempt failed: %s", error)
                    await asyncio.sleep(backoff.failed())
                    continue
                if not self.core.heartbeats_failing:
                    log.info("the current session recovered: dropping the parallel one")
                    await _shutdown(context)
                    return
                self._replacement = (context, connection)
                self._wake.set()
                return
        finally:
            self._parallel = None

    async def _switch_session(self) -> None:
        assert self._replacement is not None
        context, connection = self._replacement
        self._replacement = None
        log.warning("switching to the new session %s", connection.candidate)
        await self._session_down()
        self._session_up(context, connection)

    # ---------------------------------------------------------------- core events
    def pump(self) -> None:
        """Carry out everything the core asked for since the last call."""
        while (event := self.core.next_event()) is not None:
            self._dispatch(event)
        self._wake.set()

    def _dispatch(self, event: ev.Event) -> None:
        match event:
            case ev.SendRequest(request=request, reason=reason):
                if request.observe == 0 and request.mid is not None:
                    self._observe(request)
                else:
                    self._spawn(self._send_in_background(request, reason))
            case ev.SessionLost(missed_heartbeats=missed):
                self._mark_lost(f"{missed} heartbeats in a row unanswered")
            case ev.SessionDegraded(missed_heartbeats=missed):
                log.warning("%d heartbeats unanswered during a mitigation: keeping the session (RFC 9132 §4.7)", missed)
                if self._parallel is None and self._replacement is None:
                    self._parallel = asyncio.create_task(self._parallel_session(), name="dots-client-parallel")
            case ev.MitigationUpdated(mid=mid, status=status):
                log.info("mitigation %d: %s", mid, status or "accepted")
                record = self.core.mitigations.get(mid)
                if record is not None and record.granted and mid not in self._observations and self.connection:
                    self._observe(self.core.status(mid, observe=0))
            case ev.MitigationGone(mid=mid, reason=reason):
                log.info("mitigation %d gone: %s", mid, reason)
                task = self._observations.pop(mid, None)
                if task is not None:
                    task.cancel()
            case ev.Redirected(alt_server=alt, alt_server_records=records, ttl=ttl):
                held = "until the server says otherwise" if ttl is None else f"TTL {ttl} s"
                log.warning("redirected to %s (%s), %s", alt, ", ".join(records) or "no address given", held)
                self._redirect_addresses = list(records) or [alt]
                self._server_label = alt
                self._redirect_followed = True
                self._mark_lost(f"redirected to {alt}")
            case ev.RedirectExpired(alt_server=alt):
                log.info("redirection to %s expired: back to the provisioned server", alt)
                self._redirect_addresses = None
                self._server_label = self.config.server_name
                self._mark_lost("redirection expired")
            case ev.RedirectIgnored(alt_server=alt):
                log.error("redirection loop: %s was contacted within the last 5 minutes; staying", alt)
            case ev.CuidCollision(mid=mid):
                log.error("mid %d: the server reports a cuid collision; this client needs a new certificate", mid)
            case ev.MitigationConflict(mid=mid, conflict=conflict):
                log.error("mid %d refused (4.09): %s", mid, ev.describe_conflict(conflict))
            case ev.ConfigRejected(code=code, diagnostic=diagnostic):
                log.error("session configuration refused (%s): %s", code, diagnostic)
            case ev.TelemetryRefused(request=request, code=code, diagnostic=diagnostic):
                log.error("%s %s refused (%s): %s", request.method, request.uri_path, code, diagnostic)
            case ev.ConfigUpdated():
                idle, mitigating = self.core.config.idle, self.core.config.mitigating
                log.debug(
                    "session configuration now: heartbeat %s s idle, %s s mitigating; %s missed allowed",
                    idle.heartbeat_interval,
                    mitigating.heartbeat_interval,
                    mitigating.missing_hb_allowed,
                )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_in_background(self, request: DotsRequest, reason: str) -> None:
        connection = self.connection
        if connection is None or self.context is None:
            return
        heartbeat = request.kind is RequestKind.HEARTBEAT
        timeout = float(self.core.parameters.heartbeat_interval or 30) if heartbeat else self.settings.request_timeout
        try:
            response = await coap.send(
                self.context,
                connection.candidate.base_uri,
                request,
                reliable=connection.reliable,
                parameters=self.core.parameters,
                timeout=timeout,
                single=heartbeat,  # the next heartbeat is the retry
            )
        except coap.NoAnswer:
            if not heartbeat:
                log.warning("%s (%s): no answer", request.uri_path, reason)
                self.core.request_failed(request)
            return
        except (coap.TransportFailure, ModelError) as error:
            self.core.request_failed(request)
            if isinstance(error, coap.TransportFailure) and connection is self.connection:
                self._mark_lost(f"{request.uri_path}: {error}")
            return
        if connection is not self.connection:
            return  # an answer from a session we already left
        self.core.handle_response(request, response, self.clock())
        self.pump()

    def _observe(self, request: DotsRequest) -> None:
        assert request.mid is not None
        if request.mid in self._observations or self.connection is None:
            return
        task = asyncio.create_task(self._observation(request, self.connection))
        self._observations[request.mid] = task
        task.add_done_callback(lambda done, mid=request.mid: self._observation_ended(mid, done))

    def _observation_ended(self, mid: int, task: asyncio.Task[None]) -> None:
        if self._observations.get(mid) is task:
            del self._observations[mid]

    async def _observation(self, request: DotsRequest, connection: Connection) -> None:
        """GET with Observe: 0 (§4.4.2.1); every notification updates the core. NON registration is retried."""
        assert self.context is not None
        pending = None
        for attempt in range(3):
            try:  # over DTLS with a Q-Block server, notifications larger than one block come as Q-Block2 bodies
                started = await coap.start_request(
                    self.context,
                    coap.build_message(
                        connection.candidate.base_uri,
                        request,
                        reliable=connection.reliable,
                        parameters=self.core.parameters,
                    ),
                    self.settings.request_timeout,
                )
            except coap.TransportFailure as error:
                self._mark_lost(f"observation of mid {request.mid}: {error}")
                return
            pending = started.pending
            # An observation still registered when the session closes ends with LibraryShutdown; nobody awaits it
            # then, and asyncio would log "exception was never retrieved" with a traceback at every agent stop.
            pending.response.add_done_callback(_retrieve)
            try:
                async with asyncio.timeout(self.settings.request_timeout / 3):
                    first = await asyncio.shield(pending.response)
                break
            except TimeoutError:
                _cancel(pending)
                log.debug("observation of mid %s: no answer (attempt %d)", request.mid, attempt + 1)
            except aiocoap.error.Error as error:
                self._mark_lost(f"observation of mid {request.mid}: {error}")
                return
        else:
            return
        self.core.handle_response(request, coap.to_dots_response(first), self.clock())
        self.pump()
        if not first.code.is_successful():
            return
        try:
            async for notification in pending.observation:
                if connection is not self.connection:
                    break
                self.core.handle_response(request, coap.to_dots_response(notification), self.clock())
                self.pump()
        except aiocoap.error.Error as error:
            if connection is self.connection and not isinstance(error, aiocoap.error.ResponseWrappingError):
                self._mark_lost(f"observation of mid {request.mid} broke: {error}")
            elif isinstance(error, aiocoap.error.ResponseWrappingError):
                self.core.handle_response(request, coap.to_dots_response(error.coapmessage), self.clock())
                self.pump()
        finally:
            _cancel(pending)

    # ---------------------------------------------------------------- requests from the control API
    async def _send(self, request: DotsRequest) -> DotsResponse:
        if not self._connected.is_set() and self._state == "connecting":
            # An attempt is under way: its outcome is known within the connection timeout.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.connect_timeout * 2):
                    await self._attempt_over.wait()
        if not self._connected.is_set() and not await self.wait_connected(0.5):
            # Fail fast with the reason rather than hold the caller for a whole request timeout.
            raise ControlError(f"no signal channel session with the DOTS server: {self.activity()}", "5.03")
        connection = self.connection
        assert connection is not None and self.context is not None
        try:
            return await coap.send(
                self.context,
                connection.candidate.base_uri,
                request,
                reliable=connection.reliable,
                parameters=self.core.parameters,
                timeout=self.settings.request_timeout,
            )
        except coap.NoAnswer as error:
            raise ControlError(str(error), "5.04") from None
        except coap.TransportFailure as error:
            self._mark_lost(str(error))
            raise ControlError(f"session failed: {error}", "5.03") from None
        except ModelError as error:
            raise ControlError(f"request body rejected by the data model: {error.diagnostic}", error.code) from None

    async def _after_response(self, response: DotsResponse) -> bool:
        self.pump()
        followed, self._redirect_followed = self._redirect_followed, False
        redirected = response.code == "5.03" and bool(response.body) and REDIRECTED_SIGNAL in (response.body or {})
        if not (followed and redirected):
            return False
        # §4.6: the request failed here but SHOULD be resent to the alternate server once the session is up.
        return await self.wait_connected(self.settings.connect_timeout * 2)

    async def _control(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        if operation == "ping":
            return {"pong": True}
        if operation == "session":
            return self.session_info()
        if operation == "status" and not args.get("refresh"):
            mid = args.get("mid")
            records = sorted(self.core.mitigations.values(), key=lambda r: r.mid)
            if mid is not None:
                records = [r for r in records if r.mid == mid]
                if not records:
                    raise ControlError(f"mid {mid} is not an active mitigation of this client", "4.04")
            return {"mitigations": [r.to_json() for r in records]}
        try:
            return await self.operations.dispatch(operation, {k: v for k, v in args.items() if k != "refresh"})
        except OperationError as error:
            raise ControlError(str(error), error.code) from None

    def activity(self) -> str:
        """One sentence: what the agent is doing about its session now."""
        now = self.clock()
        redirection = self.core.redirection(now)
        where = self._server_label
        if redirection is not None:
            left = redirection["ttl-left"]
            back = "no TTL" if left is None else f"back to {self.config.server_name} in {left} s"
            where = f"{where} (redirected, {back})"
        if self.connection is not None and not self._lost:
            return f"connected to {where}"
        if self._state == "waiting" and self._next_attempt_at is not None:
            wait = max(0, round(self._next_attempt_at - now))
            reason = f"; last attempt: {self._last_error}" if self._last_error else ""
            return f"next attempt to reach {where} in {wait} s{reason}"
        return f"connecting to {where}"

    def session_info(self) -> dict[str, Any]:
        connection = self.connection
        now = self.clock()
        return {
            "connected": connection is not None and not self._lost,
            "activity": self.activity(),
            "redirection": self.core.redirection(now),
            "last-error": self._last_error,
            "server": connection.candidate.base_uri if connection else None,
            "transport": connection.candidate.transport if connection else None,
            "discovered-from": self.discovered_from if connection else None,  # RFC 8973 §4 source, with discovery
            "rtt": round(connection.rtt, 4) if connection else None,  # seconds; 0.1 ms is all a ping can tell
            "cuid": self.cuid,
            "sessions-established": self.sessions_established,
            "rediscoveries": self.rediscovery.rediscoveries,  # RFC 8973 §4: discoveries run while a session was up
            "mitigating": self.core.mitigating,
            "peer-hb-status": self.core.peer_hb_status(now),
            "parameters": self.core.parameters.in_force(),
            "config": self.core.config_body,
            "event-loop": running_loop_name(),
        }
