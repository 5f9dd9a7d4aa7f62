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

from opendots.config import DEFAULT_CALL_HOME_PORT, ServerConfig
from opendots.mitigate.base import Mitigator
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.signal.server.shell.settings import settings_from_table
from opendots.transport import (
    SessionEvent,
    SessionListener,
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
    transport: Literal["tls", "dtls"] = "tls"

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'coaps+tcp' if self.transport == 'tls' else 'coaps'}://{host}:{self.port}"


@dataclass(frozen=True)
class DialPolicy:
    """How a CPE keeps its session to a provider: a keepalive ping every KEEPALIVE seconds (its loss closes the
    session), re-dials after BACKOFF seconds doubling to MAX_BACKOFF, with +-JITTER of randomness."""

    keepalive: float = 15.0
    ping_timeout: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.2


@dataclass
class ProviderDialer:
    """One provider's session: dialed, watched, re-dialed. SITE answers what the provider sends over it."""

    address: ProviderAddress
    config: ServerConfig
    site: aiocoap.resource.Site
    listeners: list[SessionListener]
    policy: DialPolicy = field(default_factory=DialPolicy)
    context: aiocoap.Context | None = None
    remote: Any = None
    """The live session (None while dialing)."""
    failures: int = 0
    """Dials that failed, or sessions that did not survive their first keepalive."""
    sessions: int = 0
    """Sessions established so far."""
    last_error: str | None = None
    _task: asyncio.Task[None] | None = None
    _up: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.context = await create_client_context(
            self.config.tls, server_name=self.address.server_name, site=self.site, serving=True
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"call home {self.address.uri}")

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._up.wait(), timeout)

    async def _run(self) -> None:
        delay = self.policy.backoff
        assert self.context is not None
        while True:
            held = await self._hold_session()
            if held:
                delay = self.policy.backoff  # a session that lived: start the backoff afresh
            else:
                self.failures += 1
            pause = delay * (1 + random.uniform(-self.policy.jitter, self.policy.jitter))
            log.info("call home %s: dialing again in %.1f s (%s)", self.address.uri, pause, self.last_error)
            await asyncio.sleep(pause)
            delay = min(delay * 2, self.policy.max_backoff)

    async def _hold_session(self) -> bool:
        """Dial, then keep the session until a keepalive fails; True when it survived at least one keepalive."""
        assert self.context is not None
        try:
            await open_session(self.context, self.address.uri, timeout=self.policy.ping_timeout)
            remote = await resolve_remote(self.context, self.address.uri)  # the one just opened
        except Exception as problem:  # refused handshake, untrusted certificate, no route, no answer
            self.last_error = _describe(problem)
            log.warning("call home %s: %s", self.address.uri, self.last_error)
            return False
        identity = remote_identity(remote)
        transport = self.address.transport
        self.remote = remote
        self.sessions += 1
        self._up.set()
        log.warning("call home %s: session up with %s", self.address.uri, identity)
        notify(self.listeners, SessionEvent("established", remote, identity, transport))
        survived = False
        try:
            while True:
                await asyncio.sleep(self.policy.keepalive)
                await ping(self.context, remote, timeout=self.policy.ping_timeout)
                survived = True
        except asyncio.CancelledError:
            raise
        except Exception as problem:
            self.last_error = f"keepalive lost: {_describe(problem)}"
        finally:
            self.remote = None
            self._up.clear()
            notify(self.listeners, SessionEvent("closed", remote, identity, transport, self.last_error))
            with contextlib.suppress(Exception):
                await reset_session(self.context, remote)
        return survived

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.context is not None:
            await self.context.shutdown()


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
        for dialer in self.dialers:
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
    """The server settings of `[signal]`, as a Call Home DOTS server (RFC 9066 §5.3.1 scopes and authorization)."""
    return replace(settings_from_table(config.clients, config.signal), call_home=True)


async def start_cpe(
    config: ServerConfig,
    providers: list[ProviderAddress],
    *,
    mitigator: Mitigator | None = None,
    policy: DialPolicy | None = None,
    clock: Callable[[], float] = time.time,
) -> CallHomeServer:
    """Start the Call Home DOTS server CONFIG describes (its store `config.db`, its `[[clients]]` the providers with
    the prefixes each may ask about, its `[[mitigators]]`), dialing every one of PROVIDERS."""
    if not providers:
        raise ValueError("a Call Home DOTS server needs at least one Call Home DOTS client to dial")
    endpoint = CallHomeEndpoint([])

    async def dial_out(site: aiocoap.resource.Site) -> Any:
        for address in providers:
            dialer = ProviderDialer(address, config, site, endpoint.session_listeners, policy or DialPolicy())
            endpoint.dialers.append(dialer)
        return endpoint

    signal = await start_signal_server(
        config, mitigator=mitigator, settings=call_home_settings(config), clock=clock, transport=dial_out
    )
    # Dial only once the server listens to session events (start_signal_server adds its listener after the
    # transport is made): the first session must reach it.
    try:
        for dialer in endpoint.dialers:
            await dialer.start()
    except BaseException:
        await signal.stop()
        raise
    return CallHomeServer(signal, endpoint)
