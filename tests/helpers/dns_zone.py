"""A DNS zone held in a dict for the sans-I/O discovery tests (opendots.discovery.discover.Lookups): what a resolver
would answer, by (type, name), with the lookups made counted. tests/e2e/test_discovery.py serves such zones from a
real dnsmasq."""

from __future__ import annotations

from opendots.discovery.naptr import Naptr, Srv
from opendots.discovery.resolve import LookupFailed


def naptr(order: int, flags: str, service: str, replacement: str, ttl: float = 300) -> Naptr:
    """An S-NAPTR record (preference 10, no regexp, RFC 3958)."""
    return Naptr(order, 10, flags, service, "", replacement, ttl)


class Zone:
    """Records by (type, name): what a resolver would answer, with a count of the lookups made."""

    def __init__(self, records: dict[tuple[str, str], list], fail: bool = False) -> None:
        self.records = records
        self.fail = fail
        self.queries: list[tuple[str, str]] = []

    async def _get(self, kind: str, name: str) -> list:
        self.queries.append((kind, name))
        if self.fail:
            raise LookupFailed(f"the resolver did not answer {kind} {name} (timeout)")
        return list(self.records.get((kind, name), []))

    async def naptr(self, name: str) -> list[Naptr]:
        return await self._get("NAPTR", name)

    async def srv(self, name: str) -> list[Srv]:
        return await self._get("SRV", name)

    async def ptr(self, name: str) -> list[tuple[str, float]]:
        return await self._get("PTR", name)

    async def addresses(self, name: str) -> list[tuple[str, float]]:
        return await self._get("ADDR", name)
