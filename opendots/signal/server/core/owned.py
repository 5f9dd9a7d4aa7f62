"""What clients install under a cuid and a number (RFC 9244 'tsid', 'tmid'), held by owner: every rule of
tm-setup and tm looks only at the requesting client's own entries, so no client ever sees another's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar


class OwnedRecord(Protocol):
    @property
    def client(self) -> str: ...

    @property
    def key(self) -> tuple[str, int]:
        """(cuid, number)."""
        ...


class Held(Protocol):
    @property
    def record(self) -> OwnedRecord: ...


H = TypeVar("H", bound=Held)


class OwnedIndex(Generic[H]):
    """Held entries by client name, cuid, then number."""

    def __init__(self) -> None:
        self._clients: dict[str, dict[str, dict[int, H]]] = {}

    def own(self, client: str) -> dict[str, dict[int, H]]:
        """CLIENT's entries by cuid (read only)."""
        return self._clients.get(client, {})

    def under(self, client: str, cuid: str) -> dict[int, H]:
        """CLIENT's entries under CUID by number (read only)."""
        return self._clients.get(client, {}).get(cuid, {})

    def all(self) -> Iterator[H]:
        """Every held entry, all clients (for the server's own work, never for a client's response)."""
        for own in self._clients.values():
            for entries in own.values():
                yield from entries.values()

    def all_of(self, client: str) -> Iterator[H]:
        """Every entry CLIENT holds, all its cuids."""
        for entries in self._clients.get(client, {}).values():
            yield from entries.values()

    def install(self, held: H) -> None:
        record = held.record
        cuid, number = record.key
        self._clients.setdefault(record.client, {}).setdefault(cuid, {})[number] = held

    def remove(self, records: Iterable[OwnedRecord]) -> None:
        for record in records:
            cuid, number = record.key
            own = self._clients[record.client]
            del own[cuid][number]
            if not own[cuid]:
                del own[cuid]
            if not own:
                del self._clients[record.client]
