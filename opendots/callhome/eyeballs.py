"""Happy Eyeballs for a CPE's dial (RFC 9066 §5.1 → RFC 9132 §4.3): DTLS first, TLS one attempt delay later.

The race is the client agent's (opendots.signal.client.shell.connect.race over the sans-I/O core in
opendots.signal.client.core.eyeballs, with its winner cache), run with a Call Home DOTS server's connection
attempts. One rule of the provider changes the end of it: the provider keeps ONE session per CPE, the newest, and
closes the older one (opendots.callhome.provider). A losing attempt that completed its handshake, or was cut in
the middle of one, may therefore be the newest session the provider saw, and the winner would be closed under the
CPE's feet. So when more than one attempt was started, every loser is closed (a DTLS one cut mid-handshake would
otherwise complete in the background) and the winner's session is opened afresh once the race is over: it is then
the newest for certain.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opendots.signal.client.core.eyeballs import Candidate, EyeballsCache, order_candidates
from opendots.signal.client.shell.connect import race
from opendots.transport import open_session, ping, reset_session, resolve_remote

if TYPE_CHECKING:
    from opendots.callhome.cpe import ProviderAddress

log = logging.getLogger(__name__)


async def addresses_of(host: str) -> list[str]:
    """HOST if it is an address, else what it resolves to (AAAA and A)."""
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host.strip("[]")))]
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


async def dial_eyeballs(
    context: Any,
    target: ProviderAddress,
    cache: EyeballsCache,
    *,
    timeout: float,
    attempt_delay: float,
    clock: Callable[[], float] = time.time,
) -> ProviderAddress:
    """Open a session to TARGET (transport "auto") over DTLS or TLS, whichever connects first (the cached winner
    alone while it is fresh); the address and transport that hold the session. Raises what the last attempt
    raised (ConnectError when none connected)."""
    candidates = order_candidates(await addresses_of(target.host), target.port, ("dtls", "tls"))
    started: list[Candidate] = []
    reached: dict[Candidate, Any] = {}  # the session (remote) of each attempt whose handshake completed here

    async def attempt(candidate: Candidate) -> float:
        started.append(candidate)
        began = time.perf_counter()
        remote = await asyncio.wait_for(resolve_remote(context, candidate.base_uri), timeout)
        reached[candidate] = remote
        if candidate.transport == "tls":
            return await ping(context, remote, timeout=timeout)  # as open_session does over TLS
        return time.perf_counter() - began

    won = await race(cache.candidates(candidates, clock()), attempt, attempt_delay=attempt_delay, clock=clock)
    winner = won.candidate
    cache.remember(winner, clock())
    losers = [candidate for candidate in started if candidate != winner]
    await asyncio.sleep(0)  # the race cancelled the losers' tasks: let them unwind before closing their sessions
    for loser in losers:
        remote = reached.get(loser)
        if remote is None and loser.transport == "tls":
            continue  # cancelled before its TLS handshake completed: the provider saw no session
        # A DTLS attempt cancelled here goes on handshaking in the background (the interface keeps it): it is
        # closed by its URI, which names that pending session.
        log.info("call home: closing the losing %s attempt", loser)
        with contextlib.suppress(Exception):
            await reset_session(context, remote if remote is not None else loser.base_uri)
    if losers:
        # A loser may have completed at the provider after the winner did, and the provider keeps the newest
        # session of a CPE: the winner's is opened afresh, after every loser is closed (module docstring).
        await _reopen(context, winner.base_uri, reached[winner], timeout)
    log.warning("call home: %s won the race to %s", winner, target.host)
    return replace(target, host=winner.address, port=winner.port, transport=winner.transport)


async def _reopen(context: Any, uri: str, old: Any, timeout: float) -> None:
    """Close the session OLD to URI and open a new one: a closed TLS connection leaves the context's pool only
    once its transport reports the loss, so the new one is asked for until it is not OLD."""
    with contextlib.suppress(Exception):
        await reset_session(context, old)
    deadline = time.monotonic() + timeout
    while await asyncio.wait_for(resolve_remote(context, uri), timeout) is old:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{uri}: the closed session is still the context's after {timeout:g} s")
        await asyncio.sleep(0.01)
    await open_session(context, uri, timeout=timeout)
