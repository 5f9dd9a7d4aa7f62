"""The Call Home DOTS server (RFC 9066), in the customer's network (a CPE): it dials out, then serves.

RFC 9066 §1.2 reverses the (D)TLS roles of RFC 9132: the Call Home DOTS server opens the secure session to the
Call Home DOTS client (the provider) on port 4647 and checks the provider's certificate as any TLS client checks a
server's; once the session is up the CoAP roles are those of RFC 9132: the provider sends mitigation requests, the
CPE answers them. Here the answering is our whole signal-channel server (core, store, mitigators: `start_signal_server`
with `call_home` settings), and only its transport differs: instead of listening, each `ProviderDialer` holds one
aiocoap client context whose site is the server's, keeps its session up (a keepalive ping, re-dialing with
exponential backoff), and reports the session to the server like an accepting endpoint would (SessionEvent), so
the server's heartbeats and notifications reach the provider over it.

The provider is known twice: by the name its certificate must carry (`server_name`, checked in the handshake, RFC
6125) and, as for any DOTS client, by the CUID of that certificate in the server's `[[clients]]`, whose `prefixes`
are here the CPE's own addresses the provider may ask about (RFC 9066 §5.3.1: source-prefix must lie inside them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import aiocoap
import aiocoap.resource

from opendots.callhome.discovery import ProviderDiscovery
from opendots.callhome.eyeballs import dial_eyeballs
from opendots.callhome.redirect import (
    DEFAULT_NAT_BINDING_TIMEOUT,
    Redirect,
    RedirectError,
    nat_adjusted,
    parse_redirect,
)
from opendots.config import DEFAULT_CALL_HOME_PORT, ServerConfig
from opendots.discovery.records import DiscoveryResult, name_origin
from opendots.discovery.refresh import Peer, Rediscovery
from opendots.mitigate.base import Mitigator
from opendots.signal.client.core.eyeballs import EyeballsCache
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.shell.resources import WELL_KNOWN_DOTS
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.signal.server.shell.settings import settings_from_table
from opendots.transport import (
    PeerIdentity,
    SessionEvent,
    SessionListener,
    connection_closed,
    create_client_context,
    open_session,
    ping,
    remote_identity,
    reset_session,
    resolve_remote,
)
from opendots.transport.events import notify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderAddress:
    """Where a Call Home DOTS client listens, and the name its certificate must carry."""

    host: str
    server_name: str
    port: int = DEFAULT_CALL_HOME_PORT
    transport: Literal["tls", "dtls", "auto"] = "tls"
    """"auto": Happy Eyeballs, DTLS first and TLS an attempt delay later (opendots.callhome.eyeballs)."""
    origin: str = field(default="[[providers]] name in cpe.toml", compare=False)
    """Where SERVER_NAME came from, named when the provider's certificate lacks it (opendots.pki.verify)."""

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = {"tls": "coaps+tcp", "dtls": "coaps", "auto": "coaps(+tcp)"}[self.transport]
        return f"{scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class DialPolicy:
    """How a CPE keeps its session to a provider: a keepalive ping every KEEPALIVE seconds (it also keeps NAT
    bindings); the session ends when nothing came from the provider for LOSS_AFTER seconds (None: the signal
    session's heartbeat-interval times missing-hb-allowed, RFC 9066 §5.2.1) or when the transport closes; re-dials
    after BACKOFF seconds doubling to MAX_BACKOFF, with +-JITTER of randomness; a dial gives up after DIAL_TIMEOUT."""

    keepalive: float = 15.0
    ping_timeout: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.2
    loss_after: float | None = None
    dial_timeout: float = 10.0
    attempt_delay: float = 0.25
    """Transport "auto": seconds between starting the DTLS attempt and the TLS one (RFC 8305 §5, RFC 9132 §4.3)."""


@dataclass
class ProviderDialer:
    """One provider's session: dialed, watched, re-dialed, redirected. SITE answers what the provider sends."""

    address: ProviderAddress
    config: ServerConfig
    site: Any
    """What answers the provider's requests (a CallHomeSite, or any aiocoap site)."""
    listeners: list[SessionListener]
    policy: DialPolicy = field(default_factory=DialPolicy)
    clock: Callable[[], float] = time.time
    context: aiocoap.Context | None = None
    remote: Any = None
    """The live session (None while dialing)."""
    identity: PeerIdentity | None = None
    failures: int = 0
    """Dials that failed, or sessions that did not survive their first keepalive."""
    sessions: int = 0
    """Sessions established so far."""
    missed_pings: int = 0
    """Keepalive pings that went unanswered (tolerated while the provider is heard otherwise, RFC 9066 §5.2.1)."""
    last_error: str | None = None
    redirect: Redirect | None = None
    """Where the provider redirected this CPE (RFC 9066 §5.2.2), while its TTL lasts."""
    dialed: ProviderAddress | None = None
    """What the current or last session was dialed to (the configured address, or a redirection's)."""
    last_traffic: Callable[[PeerIdentity | None], float | None] = lambda identity: None
    """When the signal server last heard the provider of a session (its requests, heartbeat answers)."""
    loss_window: Callable[[PeerIdentity | None], float] = lambda identity: 225.0
    """heartbeat-interval x missing-hb-allowed in force for the provider of a session."""
    attack_active: Callable[[], bool] = lambda: False
    """Whether a mitigation is enforced: an expired redirection is kept while one is (RFC 9132 §4.6)."""
    _task: asyncio.Task[None] | None = None
    _up: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _contexts: dict[tuple[str, str], aiocoap.Context] = field(default_factory=dict)
    eyeballs: EyeballsCache = field(default_factory=EyeballsCache)
    """Transport "auto": the last race's winner, dialed alone while it is fresh (RFC 9132 §4.3)."""
    discovery: ProviderDiscovery | None = None
    """RFC 8973 ([call_home] discovery = "auto"): dial what discovery finds, in its order, instead of ADDRESS."""
    discovered_from: str | None = None
    """The RFC 8973 §4 source of the candidate the current or last session was dialed to."""
    rediscovery: Rediscovery = field(default_factory=Rediscovery)
    """RFC 8973 §4: a discovered provider is re-checked at the TTL's (or its certificate's) expiry."""
    _moving: bool = False
    _sources: dict[ProviderAddress, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "RFC 8973 discovery" if self.discovery is not None else self.address.uri

    async def start(self) -> None:
        if self.discovery is None:  # a discovering dialer makes its contexts once it knows the names
            self.context = await self._context_for(self.address)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"call home {self.label}")

    async def _context_for(self, target: ProviderAddress) -> aiocoap.Context:
        """One client context per name the provider's certificate must carry (the configured one, a redirection's,
        a discovered one) and where that name came from (said when a certificate lacks it)."""
        key = (target.server_name, target.origin)
        context = self._contexts.get(key)
        if context is None:
            context = await create_client_context(
                self.config.tls, server_name=target.server_name, site=self.site, serving=True, name_source=target.origin
            )
            self._contexts[key] = context
        return context

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._up.wait(), timeout)

    def redirect_to(self, redirect: Redirect) -> None:
        """Close the session after its 2.01 has left, and dial REDIRECT's Call Home DOTS client (RFC 9066 §5.2.2)."""
        self.redirect = redirect
        asyncio.get_running_loop().call_later(REDIRECT_GRACE, self._wake.set)

    def _redirect_over(self) -> bool:
        """RFC 9132 §4.6: on expiry of its TTL, back to the provisioned client at once, except during an attack."""
        redirect = self.redirect
        if redirect is None or not redirect.expired(self.clock()) or self.attack_active():
            return False
        log.warning("call home: redirection to %s expired; back to %s", redirect.name, self.label)
        self.redirect = None
        return True

    async def _targets(self) -> list[ProviderAddress]:
        """Where to dial now: the redirection's addresses (or its name) while it holds, else the configured one or
        what discovery found (from its cache while the TTL holds)."""
        self._redirect_over()
        redirect = self.redirect
        if redirect is None:
            if self.discovery is None:
                return [self.address]
            return await self._discovered()
        hosts = redirect.records or (redirect.name,)
        base = self.dialed if self.discovery is not None and self.dialed is not None else self.address
        origin = "the alternate Call Home DOTS client of a redirection, RFC 9066 §5.2.2"
        return [replace(base, host=host, server_name=redirect.name, origin=origin) for host in hosts]

    async def _discovered(self) -> list[ProviderAddress]:
        assert self.discovery is not None
        try:
            candidates = await self.discovery.candidates(self.clock())
        except Exception as problem:  # a lookup the bounds stopped, a resolver that went away
            self.last_error = f"discovery failed: {_describe(problem)}"
            return []
        if not candidates:
            self.last_error = "discovery found no Call Home DOTS client: " + "; ".join(self.discovery.notes())
        self._sources = {}
        targets = []
        for candidate in candidates:
            origin = name_origin(candidate.source, candidate.server_name, "[[providers]] name or --provider")
            target = ProviderAddress(candidate.host, candidate.server_name, candidate.port, candidate.transport, origin)
            self._sources[target] = candidate.source
            targets.append(target)
        return targets

    async def _run(self) -> None:
        delay = self.policy.backoff
        while True:
            held = False
            for target in await self._targets():
                self.discovered_from = self._sources.get(target)
                held = await self._hold_session(target)
                if held or self._wake.is_set():
                    break
            if not held and self.discovery is not None and self.redirect is None:
                self.discovery.invalidate()  # none answered: discover again before the next round (RFC 8973 §4)
            if self._wake.is_set() or self._moving:  # redirected or re-discovered: dial the new client at once
                self._wake.clear()
                self._moving = False
                delay = self.policy.backoff
                continue
            if self.redirect is not None and self.redirect.ttl == 0 and held:
                self.redirect = None  # TTL 0: the alternate held for that session only (RFC 9132 §4.6)
            if held:
                delay = self.policy.backoff  # a session that lived: start the backoff afresh
            else:
                self.failures += 1
            pause = delay * (1 + random.uniform(-self.policy.jitter, self.policy.jitter))
            expiry = self.redirect.expires_at if self.redirect is not None else None
            if expiry is not None:  # RFC 9132 §4.6: back to the provisioned client as soon as the TTL is over
                pause = min(pause, max(0.0, expiry - self.clock()))
            log.info("call home %s: dialing again in %.1f s (%s)", self.label, pause, self.last_error)
            await asyncio.sleep(pause)
            delay = min(delay * 2, self.policy.max_backoff)

    async def _hold_session(self, target: ProviderAddress) -> bool:
        """Dial TARGET, then keep the session until it is lost, closed or redirected; True when the provider was
        heard after the handshake (a ping answered), or the session was redirected."""
        context = await self._context_for(target)
        self.context, self.dialed = context, target
        try:
            if target.transport == "auto":
                session = await dial_eyeballs(
                    context,
                    target,
                    self.eyeballs,
                    timeout=self.policy.dial_timeout,
                    attempt_delay=self.policy.attempt_delay,
                    clock=self.clock,
                )
            else:
                session = target
                await open_session(context, target.uri, timeout=self.policy.dial_timeout)
            remote = await resolve_remote(context, session.uri)  # the one just opened
        except Exception as problem:  # refused handshake, untrusted certificate, no route, no answer
            self.last_error = _describe(problem)
            log.warning("call home %s: %s", target.uri, self.last_error)
            return False
        identity = remote_identity(remote)
        self.remote, self.identity = remote, identity
        self.sessions += 1
        self._up.set()
        found = f" (found by RFC 8973 {self.discovered_from})" if self.discovered_from else ""
        log.warning("call home %s: session up with %s%s", session.uri, identity, found)
        notify(self.listeners, SessionEvent("established", remote, identity, session.transport))
        self._arm_rediscovery(session, identity)
        survived = False
        heard = self.clock()
        try:
            while True:
                await self._pause(remote)
                if self._wake.is_set():
                    self.last_error = f"redirected to {self.redirect.name if self.redirect else '?'}"
                    survived = True
                    break
                if connection_closed(remote):
                    self.last_error = "the provider closed the TLS connection"
                    break
                try:
                    await ping(context, remote, timeout=self.policy.ping_timeout)
                    heard, survived = self.clock(), True
                except TimeoutError:
                    self.missed_pings += 1  # a saturated uplink loses pings: the session is not over (§5.2.1)
                if self.redirect is not None and target is not self.address and self._redirect_over():
                    self.last_error = f"redirection to {target.server_name} expired"
                    break
                if await self._discovered_elsewhere():
                    self.last_error = "RFC 8973 re-discovery: moved to the newly discovered Call Home DOTS client"
                    survived = self._moving = True
                    break
                heard = max(heard, self.last_traffic(identity) or 0.0)
                window = self.policy.loss_after or self.loss_window(identity)
                if self.clock() - heard > window:
                    self.last_error = f"nothing from the provider for {window:.0f} s (RFC 9066 §5.2.1)"
                    break
        except asyncio.CancelledError:
            raise
        except Exception as problem:
            self.last_error = f"keepalive lost: {_describe(problem)}"
        finally:
            self.remote = None
            self.rediscovery.session_down()
            self._up.clear()
            notify(self.listeners, SessionEvent("closed", remote, identity, session.transport, self.last_error))
            with contextlib.suppress(Exception):
                await reset_session(context, remote)
        return survived

    def _arm_rediscovery(self, session: ProviderAddress, identity: PeerIdentity | None) -> None:
        """A session with a discovered provider (not a redirection's) is re-checked when what found it, or the
        provider's certificate, expires (RFC 8973 §4)."""
        if self.discovery is None or self.redirect is not None or self.discovered_from is None:
            return
        expires = None if identity is None else identity.certificate.not_valid_after_utc.timestamp()
        peer = Peer(session.server_name, session.host, session.port, session.transport)
        self.rediscovery.session_up(peer, self.clock(), self.discovery.cache.expires_at(), expires)

    async def _discovered_elsewhere(self) -> bool:
        """At the re-discovery timer: discover again; True when the provider in use is no longer found and a session
        with a new one is already open (it is made before the current one is dropped; dialing it next reuses it)."""
        reason = self.rediscovery.due(self.clock())
        if reason is None or self.discovery is None:
            return False
        log.info("call home: discovering again: %s", reason)
        self.rediscovery.started()
        try:
            result = await self.discovery.refresh(self.clock())
        except Exception as problem:  # a lookup the bounds stopped, a resolver that went away
            result = DiscoveryResult(notes=[_describe(problem)])
        decision = self.rediscovery.decide(result, self.clock(), self.discovery.cache.expires_at())
        log.info("call home: re-discovery: %s", decision.reason)
        if decision.keep:
            return False
        for target in await self._discovered():
            try:
                await open_session(await self._context_for(target), target.uri, timeout=self.policy.dial_timeout)
            except Exception as problem:  # the current session stays: the next target, or later
                log.warning("call home %s: newly discovered, not reachable: %s", target.uri, _describe(problem))
                continue
            log.warning("call home: re-discovery: %s; moving to %s", decision.reason, target.uri)
            return True
        self.rediscovery.move_failed(self.clock())
        return False

    async def _pause(self, remote: Any) -> None:
        """Until the next keepalive, a redirection, or REMOTE's TLS connection closing. The close is looked at every
        second: a provider that closed the connection (it no longer knows this CPE, or restarted) is re-dialed at
        once rather than after pings time out for the whole loss window."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.policy.keepalive
        timer = self.rediscovery.next_timer()
        if timer is not None:  # RFC 8973 §4: the re-discovery is not put off until the next keepalive
            end = min(end, loop.time() + max(0.0, timer - self.clock()))
        while not self._wake.is_set() and not connection_closed(remote) and (left := end - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, 1.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for context in self._contexts.values():
            await context.shutdown()


DISCOVERED = ProviderAddress("", "")
"""The address of a discovering dialer: never dialed (its targets come from discovery), a redirection's port and
transport default."""

REDIRECT_GRACE = 0.2
"""Seconds between answering a redirection (2.01) and closing the session it came over: the answer leaves first."""


class RedirectResource(aiocoap.resource.Resource, aiocoap.resource.PathCapable):
    """PUT .well-known/dots/redirect[/cuid=...[/mid=...]] from a provider (RFC 9066 §5.2.2): 2.01 and re-dial, or
    4.00 when the body cannot be serviced."""

    def __init__(self, dialers: list[ProviderDialer], clock: Callable[[], float]) -> None:
        super().__init__()
        self.dialers = dialers
        self.clock = clock

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if request.code != aiocoap.PUT:
            return aiocoap.Message(code=aiocoap.METHOD_NOT_ALLOWED, payload=b"redirect takes PUT (RFC 9066 5.2.2)")
        dialer = next((d for d in self.dialers if d.remote is not None and d.remote == request.remote), None)
        if dialer is None:
            return _bad_request("this session is not one this Call Home DOTS server dialed")
        try:
            redirect = parse_redirect(request.payload, request.opt.content_format, self.clock())
        except RedirectError as problem:
            return _bad_request(str(problem))
        log.warning(
            "call home %s: redirected to %s %s (ttl %s)",
            dialer.address.uri,
            redirect.name,
            list(redirect.records) or "(resolved by name)",
            redirect.ttl,
        )
        dialer.redirect_to(redirect)
        return aiocoap.Message(code=aiocoap.CREATED)


class CallHomeSite:
    """The CPE's site: PUT .well-known/dots/redirect goes to REDIRECT (RFC 9066 §5.2.2), everything else to the
    signal server's site (which takes every .well-known/dots path as its own)."""

    def __init__(self, inner: Any, redirect: RedirectResource) -> None:
        self.inner = inner
        self.redirect = redirect

    @staticmethod
    def _is_redirect(request: aiocoap.Message) -> bool:
        return tuple(request.opt.uri_path[:3]) == (*WELL_KNOWN_DOTS, "redirect")

    def answer_now(self, pipe: Any) -> bool:
        if self._is_redirect(pipe.request):
            return False  # aiocoap's path: render_to_pipe below, in a task
        return bool(self.inner.answer_now(pipe))

    async def render_to_pipe(self, pipe: Any) -> None:
        if self._is_redirect(pipe.request):
            return await self.redirect.render_to_pipe(pipe)
        return await self.inner.render_to_pipe(pipe)


def _bad_request(text: str) -> aiocoap.Message:
    return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=text.encode(), content_format=0)


def _describe(problem: BaseException) -> str:
    """PROBLEM with its causes: aiocoap says only "NetworkError" for a refused certificate (the SSL error is its
    __cause__), and an operator needs the certificate's complaint."""
    parts = []
    seen: BaseException | None = problem
    while seen is not None and len(parts) < 4:
        parts.append(f"{type(seen).__name__}: {seen}" if str(seen) else type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)


class _RequestRouter:
    """What the signal server calls `endpoint.context` to send requests (heartbeats): each goes through the
    context of the dialer whose session it names."""

    def __init__(self, dialers: list[ProviderDialer]) -> None:
        self.dialers = dialers

    def request(self, message: aiocoap.Message) -> Any:
        for dialer in self.dialers:  # the session's own context: a redirected dialer holds several
            if dialer.remote is not None and dialer.remote is message.remote and dialer.context is not None:
                return dialer.context.request(message)
        raise ConnectionError(f"no call-home session is {message.remote!r}")


@dataclass
class CallHomeEndpoint:
    """The transport of a Call Home DOTS server: its dialers, in the shape of an accepting endpoint."""

    dialers: list[ProviderDialer]
    session_listeners: list[SessionListener] = field(default_factory=list)
    dtls_addresses: list[tuple] = field(default_factory=list)  # it listens on nothing
    tls_addresses: list[tuple] = field(default_factory=list)

    @property
    def context(self) -> _RequestRouter:
        return _RequestRouter(self.dialers)

    async def shutdown(self) -> None:
        for dialer in self.dialers:
            await dialer.stop()


@dataclass
class CallHomeServer:
    """A running Call Home DOTS server: the signal server and the dialers that carry it."""

    signal: RunningSignalServer
    endpoint: CallHomeEndpoint

    @property
    def dialers(self) -> list[ProviderDialer]:
        return self.endpoint.dialers

    async def wait_connected(self, timeout: float = 10.0) -> None:
        for dialer in self.dialers:
            await dialer.wait_connected(timeout)

    async def stop(self) -> None:
        await self.signal.stop()


def call_home_settings(config: ServerConfig) -> ServerSettings:
    """The server settings of `[signal]`, as a Call Home DOTS server: RFC 9066 §5.3.1 scopes and authorization, and
    a heartbeat-interval that keeps on-path NAT bindings (§5.2.1)."""
    settings = replace(settings_from_table(config.clients, config.signal), call_home=True)
    return nat_adjusted(settings, settings.nat_binding_timeout or DEFAULT_NAT_BINDING_TIMEOUT)


async def start_cpe(
    config: ServerConfig,
    providers: list[ProviderAddress],
    *,
    mitigator: Mitigator | None = None,
    policy: DialPolicy | None = None,
    clock: Callable[[], float] = time.time,
    discovery: ProviderDiscovery | None = None,
) -> CallHomeServer:
    """Start the Call Home DOTS server CONFIG describes (its store `config.db`, its `[[clients]]` the providers with
    the prefixes each may ask about, its `[[mitigators]]`), dialing every one of PROVIDERS; with DISCOVERY (RFC
    8973), one dialer instead, dialing what DISCOVERY finds (PROVIDERS are then its explicit candidates)."""
    if not providers and discovery is None:
        raise ValueError("a Call Home DOTS server needs at least one Call Home DOTS client to dial")
    endpoint = CallHomeEndpoint([])

    async def dial_out(site: aiocoap.resource.Site) -> Any:
        served = CallHomeSite(site, RedirectResource(endpoint.dialers, clock))
        for address in providers if discovery is None else [DISCOVERED]:
            dialer = ProviderDialer(address, config, served, endpoint.session_listeners, policy or DialPolicy(), clock)
            dialer.discovery = discovery
            endpoint.dialers.append(dialer)
        return endpoint

    signal = await start_signal_server(
        config, mitigator=mitigator, settings=call_home_settings(config), clock=clock, transport=dial_out
    )
    core = signal.service.core

    def client_of(identity: PeerIdentity | None) -> str | None:
        return core.client_name(identity.cuid if identity is not None else None)

    def last_traffic(identity: PeerIdentity | None) -> float | None:
        name = client_of(identity)
        liveness = core.liveness(name) if name is not None else None
        return liveness.last_traffic if liveness is not None else None

    def loss_window(identity: PeerIdentity | None) -> float:
        name = client_of(identity)
        if name is None:
            parameters = core.settings.session_defaults.idle
        else:
            parameters = core.session_config(name).for_activity(core.is_enforcing(name))
        return float((parameters.heartbeat_interval or 30) * parameters.missing_hb_allowed)

    for dialer in endpoint.dialers:
        dialer.last_traffic, dialer.loss_window = last_traffic, loss_window
        dialer.attack_active = lambda: any(mitigation.enforcing for mitigation in core.mitigations())
    # Dial only once the server listens to session events (start_signal_server adds its listener after the
    # transport is made): the first session must reach it.
    try:
        for dialer in endpoint.dialers:
            await dialer.start()
    except BaseException:
        await signal.stop()
        raise
    return CallHomeServer(signal, endpoint)
