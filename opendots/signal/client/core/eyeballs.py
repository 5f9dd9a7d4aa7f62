"""DOTS Happy Eyeballs (RFC 9132 §4.3), sans-I/O: which (address, transport) to try, when, and who won.

Preference: DTLS over IPv6, DTLS over IPv4, TLS over IPv6, TLS over IPv4. Attempts start one Connection Attempt
Delay apart (RFC 8305; 100 ms during an attack), a failure starts the next one at once, the first to connect wins
and the others are cancelled. The winner is cached for ~10 minutes; when TLS won, DTLS is probed again later
(not more often than every 5 minutes, by default every 24 hours).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Transport = Literal["dtls", "tls"]
DEFAULT_ATTEMPT_DELAY = 0.25  # RFC 8305 §5 recommended Connection Attempt Delay
ATTACK_ATTEMPT_DELAY = 0.1  # RFC 9132 §4.3, during an attack
CACHE_LIFETIME = 600.0  # RFC 9132 §4.3: "on the order of few minutes (e.g., 10 min)"
DTLS_PROBE_INTERVAL = 24 * 3600.0  # SHOULD NOT be more frequent than every 24 hours
DTLS_PROBE_MIN_INTERVAL = 300.0  # MUST NOT be more frequent than every 5 minutes


@dataclass(frozen=True)
class Candidate:
    address: str
    port: int
    transport: Transport

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version

    @property
    def base_uri(self) -> str:
        """coaps://… for DTLS, coaps+tcp://… for TLS (RFC 8323), IPv6 literals bracketed."""
        host = f"[{self.address}]" if self.family == 6 else self.address
        scheme = "coaps" if self.transport == "dtls" else "coaps+tcp"
        return f"{scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport.upper()}/IPv{self.family} {self.base_uri}"


def order_candidates(
    addresses: Iterable[str], port: int, transports: Iterable[Transport] = ("dtls", "tls")
) -> list[Candidate]:
    """Every (address, transport) pair in RFC 9132 §4.3 order; within a family the given address order is kept."""
    unique = list(dict.fromkeys(str(ipaddress.ip_address(a.strip("[]"))) for a in addresses))
    allowed = list(dict.fromkeys(transports))
    rank = {"dtls": 0, "tls": 1}
    pairs = [(t, a) for t in allowed for a in unique]
    pairs.sort(key=lambda pair: (rank[pair[0]], -ipaddress.ip_address(pair[1]).version))  # stable sort
    return [Candidate(address, port, transport) for transport, address in pairs]


class HappyEyeballs:
    """One race. Drive it with start(), next_timer()/handle_timer(), attempt_failed(), attempt_succeeded()."""

    def __init__(self, candidates: list[Candidate], attempt_delay: float = DEFAULT_ATTEMPT_DELAY) -> None:
        if not candidates:
            raise ValueError("Happy Eyeballs needs at least one candidate")
        self._pending = list(candidates)
        self._running: list[Candidate] = []
        self._failed: list[Candidate] = []
        self.attempt_delay = attempt_delay
        self.winner: Candidate | None = None
        self._next_start: float | None = None

    @property
    def finished(self) -> bool:
        return self.winner is not None or self.all_failed

    @property
    def all_failed(self) -> bool:
        return self.winner is None and not self._pending and not self._running

    @property
    def failed(self) -> tuple[Candidate, ...]:
        return tuple(self._failed)

    def start(self, now: float) -> list[Candidate]:
        """The first attempt(s) to start right now."""
        return self._start_next(now)

    def next_timer(self) -> float | None:
        return None if self.finished or not self._pending else self._next_start

    def handle_timer(self, now: float) -> list[Candidate]:
        """Attempts to start because the Connection Attempt Delay since the last start has passed."""
        if self.finished or self._next_start is None or now < self._next_start:
            return []
        return self._start_next(now)

    def attempt_failed(self, candidate: Candidate, now: float) -> list[Candidate]:
        """A candidate failed: RFC 8305 starts the next one without waiting for the delay."""
        if candidate in self._running:
            self._running.remove(candidate)
            self._failed.append(candidate)
        if self.finished:
            return []
        return self._start_next(now) if self._pending else []

    def attempt_succeeded(self, candidate: Candidate) -> list[Candidate]:
        """The first success wins; returns the still-running attempts to cancel. Later successes are losers."""
        if self.winner is not None:
            return [candidate] if candidate != self.winner else []
        self.winner = candidate
        losers = [c for c in self._running if c != candidate]
        self._running = [candidate]
        self._pending.clear()
        return losers

    def _start_next(self, now: float) -> list[Candidate]:
        if not self._pending:
            return []
        candidate = self._pending.pop(0)
        self._running.append(candidate)
        self._next_start = now + self.attempt_delay if self._pending else None
        return [candidate]


class EyeballsCache:
    """Remembers the last winner so a reconnect within CACHE_LIFETIME does not race again (§4.3)."""

    def __init__(self, lifetime: float = CACHE_LIFETIME, dtls_probe_interval: float = DTLS_PROBE_INTERVAL) -> None:
        self.lifetime = lifetime
        self.dtls_probe_interval = max(dtls_probe_interval, DTLS_PROBE_MIN_INTERVAL)
        self._winner: Candidate | None = None
        self._won_at = 0.0
        self._last_dtls_probe = 0.0

    def remember(self, winner: Candidate, now: float) -> None:
        self._winner = winner
        self._won_at = now
        if winner.transport == "tls":
            self._last_dtls_probe = now  # this race was itself a DTLS probe

    def forget(self) -> None:
        self._winner = None

    def lookup(self, now: float) -> Candidate | None:
        if self._winner is not None and now - self._won_at <= self.lifetime:
            return self._winner
        return None

    def candidates(self, all_candidates: list[Candidate], now: float) -> list[Candidate]:
        """The race to run: the fresh cached winner alone, else everything in preference order."""
        cached = self.lookup(now)
        if cached is not None and cached in all_candidates:
            return [cached]
        return list(all_candidates)

    def dtls_probe_due(self, now: float) -> bool:
        """True when the session runs over TLS and it is time to see whether DTLS works again."""
        current = self._winner
        return (
            current is not None
            and current.transport == "tls"
            and now - self._last_dtls_probe >= (self.dtls_probe_interval)
        )

    def next_dtls_probe(self) -> float | None:
        current = self._winner
        if current is None or current.transport != "tls":
            return None
        return self._last_dtls_probe + self.dtls_probe_interval

    def dtls_probed(self, now: float) -> None:
        self._last_dtls_probe = now
