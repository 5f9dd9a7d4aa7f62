"""The DTLS server's table of unfinished handshakes (past the cookie round, not yet finished): sans-I/O.

A peer that answers the cookie (RFC 6347 §4.2.1) proves its address is real, but may still never finish the
handshake. The table is bounded in all and per source address, so one host on thousands of source ports holds only
its share, and when the table is full room is made for a newcomer: the oldest handshake of the address holding the
most goes if that address holds more than the newcomer would, else the oldest of all once it is older than a minimum
age (long enough for a genuine handshake's round trips). Entries expire after a timeout, oldest first.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

Entry = TypeVar("Entry", bound=Hashable)


class HandshakeTable(Generic[Entry]):
    def __init__(self, *, limit: int, per_address: int, timeout: float, min_age: float) -> None:
        self.limit = limit
        self.per_address = per_address
        self.timeout = timeout
        self.min_age = min_age
        self._entries: dict[Entry, tuple[str, float]] = {}  # insertion order is age order
        self._by_address: dict[str, int] = {}
        self.refused_per_address = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry: object) -> bool:
        return entry in self._entries

    def address_full(self, address: str) -> bool:
        """ADDRESS holds its share already (counted as a refusal): not even a cookie should be sent back."""
        if self._by_address.get(address, 0) >= self.per_address:
            self.refused_per_address += 1
            return True
        return False

    def admit(self, address: str, now: float) -> tuple[bool, Entry | None]:
        """May a handshake from ADDRESS start? Returns (admitted, the entry to drop first to make room)."""
        if self.address_full(address):
            return False, None
        if len(self._entries) < self.limit:
            return True, None
        # Only when full: scans of tables bounded by `limit`.
        busiest = max(self._by_address, key=self._by_address.__getitem__)
        if self._by_address[busiest] > self._by_address.get(address, 0) + 1:
            victim = next(entry for entry, (owner, _) in self._entries.items() if owner == busiest)
        else:
            victim = next(iter(self._entries))
            if now - self._entries[victim][1] < self.min_age:
                return False, None
        self.evicted += 1
        return True, victim

    def add(self, entry: Entry, address: str, now: float) -> None:
        self._entries[entry] = (address, now)
        self._by_address[address] = self._by_address.get(address, 0) + 1

    def discard(self, entry: Entry) -> None:
        held = self._entries.pop(entry, None)
        if held is not None:
            left = self._by_address[held[0]] - 1
            if left:
                self._by_address[held[0]] = left
            else:
                del self._by_address[held[0]]

    def oldest_due(self, now: float) -> Entry | None:
        """The oldest entry if it has outlived the timeout (the caller drops it and asks again)."""
        for entry, (_, since) in self._entries.items():
            return entry if now - since >= self.timeout else None
        return None

    def clear(self) -> None:
        self._entries.clear()
        self._by_address.clear()
