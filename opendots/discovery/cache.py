"""The discovery result kept for its TTL (RFC 8973 §4), sans-I/O: driven by `now`."""

from __future__ import annotations

from opendots.discovery.records import DiscoveryResult

MIN_TTL = 5.0  # a TTL of 0 would mean a DNS round per connection attempt; hold answers a few seconds at least


class DiscoveryCache:
    def __init__(self) -> None:
        self._result: DiscoveryResult | None = None
        self._expires: float | None = None
        self.discoveries = 0

    def get(self, now: float) -> DiscoveryResult | None:
        """The cached result, or None when there is none or its TTL has passed."""
        if self._result is None or (self._expires is not None and now >= self._expires):
            return None
        return self._result

    def store(self, result: DiscoveryResult, now: float) -> None:
        self.discoveries += 1
        if not result.servers:
            self._result = self._expires = None  # nothing found: look again next time
            return
        ttl = result.ttl
        self._result = result
        self._expires = None if ttl is None else now + max(ttl, MIN_TTL)

    def invalidate(self) -> None:
        """The servers found could not be reached: discover again before the next attempt (RFC 8973 §4)."""
        self._result = self._expires = None

    def expires_at(self) -> float | None:
        return self._expires
