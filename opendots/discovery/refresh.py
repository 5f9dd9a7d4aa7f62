"""When a DOTS agent with a live session runs discovery again, and what it does with the answer (RFC 8973 §4).

§4: discovery "is reiterated by the DOTS agent upon the following events: expiry of a validity timer (e.g., DHCP
lease, DHCP information refresh time, or DNS TTL) associated with a discovered DOTS agent; expiry of the certificate
of a peer DOTS agent currently in use; attachment to a new network". A session that still works is therefore not
kept past the TTL of what found it: discovery runs again, and the session is kept when the answer still names the
peer in use, else the agent moves to the new peer (the caller establishes the new session before dropping the old,
RFC 9132 §4.7 style). Sans-I/O: driven by `now`, the caller runs discovery and the sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

from opendots.discovery.cache import MIN_TTL
from opendots.discovery.records import DiscoveryResult

RETRY_AFTER = 30.0
"""At most this many seconds before trying again when re-discovery found nothing or the new peer could not be
reached (sooner when the information's TTL was shorter): the current session keeps working meanwhile, so neither
is a reason to drop it."""


@dataclass(frozen=True)
class Peer:
    """The discovered peer a session is up with: the reference identifier its certificate matched and where."""

    name: str
    address: str
    port: int
    transport: str


@dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str


class Rediscovery:
    """The re-discovery timer of one session: armed when a session with a discovered peer comes up."""

    def __init__(self) -> None:
        self.peer: Peer | None = None
        self._ttl_at: float | None = None
        self._certificate_at: float | None = None
        self._retry_at: float | None = None
        self._retry_delay = RETRY_AFTER
        self.rediscoveries = 0

    def session_up(
        self, peer: Peer | None, now: float, ttl_expires: float | None, certificate_expires: float | None
    ) -> None:
        """PEER (None: not a discovered peer, e.g. a redirection's) is in use from NOW; what found it holds until
        TTL_EXPIRES, its certificate until CERTIFICATE_EXPIRES (None: no such limit)."""
        self.peer = peer
        self._ttl_at = ttl_expires if peer is not None else None
        self._certificate_at = certificate_expires if peer is not None else None
        self._retry_at = None
        self._learn_period(now, ttl_expires)

    def session_down(self) -> None:
        self.session_up(None, 0.0, None, None)

    def _learn_period(self, now: float, ttl_expires: float | None) -> None:
        if ttl_expires is not None:
            self._retry_delay = min(RETRY_AFTER, max(MIN_TTL, ttl_expires - now))

    def next_timer(self) -> float | None:
        if self.peer is None:
            return None
        if self._retry_at is not None:
            return self._retry_at
        times = [t for t in (self._ttl_at, self._certificate_at) if t is not None]
        return min(times, default=None)

    def due(self, now: float) -> str | None:
        """Why discovery must run again now (None: not yet)."""
        timer = self.next_timer()
        if timer is None or now < timer:
            return None
        if self._retry_at is not None:
            return "retrying the re-discovery"
        if self._certificate_at is not None and now >= self._certificate_at:
            return "the certificate of the peer in use expired (RFC 8973 §4)"
        return "the TTL of the discovered information expired (RFC 8973 §4)"

    def started(self) -> None:
        """The caller runs discovery now: no timer fires until it reports back."""
        self.rediscoveries += 1
        self._ttl_at = self._retry_at = None

    def decide(self, result: DiscoveryResult, now: float, ttl_expires: float | None) -> Decision:
        """RESULT of the re-discovery (held until TTL_EXPIRES): keep the session when it still holds the peer in
        use, else move. An empty RESULT keeps the session (a lookup failing is no sign the peer is wrong) and
        tries again after RETRY_AFTER."""
        peer = self.peer
        assert peer is not None, "decide() without a discovered session"
        if not result.servers:
            self._retry_at = now + self._retry_delay
            return Decision(True, "re-discovery found nothing: the session is kept, retrying later")
        still = any(
            server.channel == "signal"
            and (server.peer_name, server.address, server.port, server.transport)
            == (peer.name, peer.address, peer.port, peer.transport)
            for server in result.servers
        )
        if self._certificate_at is not None and now >= self._certificate_at:
            self._certificate_at = None  # a new session (with whatever certificate the peer has now) re-arms it
            return Decision(False, "the peer's certificate expired: a new session is established")
        if still:
            self._ttl_at = ttl_expires
            self._learn_period(now, ttl_expires)
            return Decision(True, f"{peer.name} at {peer.address} port {peer.port} is still discovered")
        return Decision(False, f"{peer.name} at {peer.address} port {peer.port} is no longer discovered")

    def move_failed(self, now: float) -> None:
        """No new peer answered: the current session stays, and re-discovery is tried again later."""
        self._retry_at = now + self._retry_delay
