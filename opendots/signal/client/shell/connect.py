"""Runs a Happy Eyeballs race (core_eyeballs) with real connection attempts: a CoAP ping per candidate."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiocoap

from opendots.config import ClientConfig
from opendots.discovery.cache import DiscoveryCache
from opendots.discovery.discover import Discoverer
from opendots.discovery.records import DiscoveredServer
from opendots.errors import UnavailableError
from opendots.signal.client.core.eyeballs import Candidate, HappyEyeballs, Transport, order_candidates
from opendots.transport.endpoints import remote_identity, resolve_remote

log = logging.getLogger(__name__)
Attempt = Callable[[Candidate], Awaitable[float]]


class ConnectError(UnavailableError):
    """No candidate (address, transport) could be reached."""


@dataclass(frozen=True)
class Connection:
    candidate: Candidate
    rtt: float

    @property
    def reliable(self) -> bool:
        return self.candidate.transport == "tls"


async def resolve_addresses(config: ClientConfig, override: list[str] | None = None) -> list[str]:
    """Configured (or redirected-to) addresses, else the server name resolved (AAAA and A)."""
    addresses = override or config.server_addresses
    if addresses:
        return list(addresses)
    try:
        ipaddress.ip_address(config.server_name)
        return [config.server_name]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(config.server_name, None, type=socket.SOCK_DGRAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def transports_for(config: ClientConfig) -> list[Transport]:
    return {"auto": ["dtls", "tls"], "dtls": ["dtls"], "tls": ["tls"]}[config.transport]  # type: ignore[return-value]


def _reason(error: BaseException) -> str:
    """An attempt's failure in words, not a repr (aiocoap's errors print as "Network error: NetworkError")."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if error.args and isinstance(error.args[0], str) and error.args[0]:
        return error.args[0]
    return str(error) or type(error).__name__


async def race(
    candidates: list[Candidate],
    attempt: Attempt,
    *,
    attempt_delay: float = 0.25,
    clock: Callable[[], float] = time.time,
) -> Connection:
    """Start ATTEMPT per candidate, staggered; the first that completes wins and the rest are cancelled."""
    eyeballs = HappyEyeballs(candidates, attempt_delay)
    tasks: dict[asyncio.Task[float], Candidate] = {}
    errors: list[str] = []

    def launch(started: list[Candidate]) -> None:
        for candidate in started:
            log.debug("connection attempt: %s", candidate)
            tasks[asyncio.ensure_future(attempt(candidate))] = candidate

    launch(eyeballs.start(clock()))
    try:
        while not eyeballs.finished:
            timer = eyeballs.next_timer()
            if not tasks and timer is None:
                break
            wait = None if timer is None else max(0.0, timer - clock())
            done, _ = await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                candidate = tasks.pop(task)
                error = task.exception()
                if error is None:
                    for loser in eyeballs.attempt_succeeded(candidate):
                        for other, owner in tasks.items():
                            if owner == loser:
                                other.cancel()
                    return Connection(candidate, task.result())
                errors.append(f"{candidate}: {_reason(error)}")
                launch(eyeballs.attempt_failed(candidate, clock()))
            launch(eyeballs.handle_timer(clock()))
    finally:
        for task in tasks:
            task.cancel()
    raise ConnectError("no DOTS server candidate answered: " + "; ".join(errors or ["no candidates"]))


async def certificate_expiry(context: aiocoap.Context, uri: str) -> float | None:
    """When the certificate of the peer of CONTEXT's session to URI expires (RFC 8973 §4 discovers again then)."""
    try:
        identity = remote_identity(await asyncio.wait_for(resolve_remote(context, uri), 5.0))
    except (OSError, TimeoutError, ValueError):
        return None
    return None if identity is None else identity.certificate.not_valid_after_utc.timestamp()


def candidates_for(config: ClientConfig, addresses: list[str]) -> list[Candidate]:
    return order_candidates(addresses, config.signal_port, transports_for(config))


def discovered_candidates(servers: list[DiscoveredServer]) -> list[Candidate]:
    """Discovered signal-channel servers as Happy Eyeballs candidates, in RFC 9132 §4.3 order (DTLS before TLS,
    IPv6 before IPv4), the discovery order kept otherwise; each keeps the port its SRV record gave."""
    unique = list(dict.fromkeys(Candidate(s.address, s.port, s.transport) for s in servers))
    rank = {"dtls": 0, "tls": 1}
    return sorted(unique, key=lambda c: (rank[c.transport], -c.family))


@dataclass(frozen=True)
class Group:
    """One Happy Eyeballs race: candidates whose certificate must name SERVER_NAME; SOURCE is the RFC 8973
    mechanism that found them (None without discovery)."""

    server_name: str
    candidates: list[Candidate]
    source: str | None = None


async def discovered_groups(
    config: ClientConfig, discoverer: Discoverer, cache: DiscoveryCache | None = None, now: float = 0.0
) -> list[Group]:
    """The RFC 8973 §4 result as races, best source first: from CACHE while its TTL holds, else looked up."""
    result = cache.get(now) if cache is not None else None
    if result is None:
        result = await discoverer.discover()
        if cache is not None:
            cache.store(result, now)
        log.info("discovery: %d candidate(s); %s", len(result.servers), "; ".join(result.notes))
    groups = result.signal_groups(tuple(transports_for(config)))
    if not groups:
        raise ConnectError("discovery found no DOTS server: " + "; ".join(result.notes))
    return [Group(name, discovered_candidates(servers), servers[0].source) for name, servers in groups]
