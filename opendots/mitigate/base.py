"""The Mitigator interface, and the logging mitigator used where no actuator is configured."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Protocol

from opendots.errors import OpenDotsError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortRange:
    lower: int
    upper: int


@dataclass(frozen=True)
class MitigationScope:
    """What a mitigator acts on: the resolved targets of one accepted mitigation request.

    `key` is unique per mitigation (e.g. "<cuid>/<mid>"). Empty port/protocol tuples mean "all".
    Aliases and FQDNs are already resolved to prefixes by the signal channel.
    """

    key: str
    target_prefixes: tuple[IPNetwork, ...]
    target_ports: tuple[PortRange, ...] = ()
    protocols: tuple[int, ...] = ()
    source_prefixes: tuple[IPNetwork, ...] = ()  # RFC 9066 call home
    source_ports: tuple[PortRange, ...] = ()


@dataclass(frozen=True)
class Counters:
    """Traffic a mitigator really dropped. None means "not measured", never zero by assumption."""

    bytes_dropped: int | None = None
    pkts_dropped: int | None = None
    bps_dropped: int | None = None
    pps_dropped: int | None = None


class MitigatorError(OpenDotsError, RuntimeError):
    """Enforcement could not be applied or removed; the mitigation status becomes 'failed'."""


class Mitigator(Protocol):
    name: str

    async def apply(self, scope: MitigationScope) -> None: ...

    async def update(self, scope: MitigationScope) -> None: ...

    async def withdraw(self, key: str) -> None: ...

    async def counters(self, key: str) -> Counters: ...

    async def health(self) -> bool: ...

    # Optional: `async def counters_many(self, keys: list[str]) -> dict[str, Counters]`, the counters of many
    # mitigations read at once (keys it cannot read are left out). Polling every active mitigation one by one
    # costs one round trip (an nft process, an API call) each; read_counters() uses the batch form when present.


async def read_counters(mitigator: Mitigator, keys: list[str]) -> dict[str, Counters]:
    """The counters of KEYS (those that could be read), in one call when MITIGATOR can batch them."""
    if not keys:
        return {}
    many = getattr(mitigator, "counters_many", None)
    if many is not None:
        try:
            return await many(keys)
        except MitigatorError as error:
            log.warning("counters of %d mitigations from %s: %s", len(keys), mitigator.name, error)
            return {}
    found: dict[str, Counters] = {}
    for key in keys:
        try:
            found[key] = await mitigator.counters(key)
        except MitigatorError as error:
            log.warning("counters of %s from %s: %s", key, mitigator.name, error)
    return found


@dataclass
class LoggingMitigator:
    """Records what it was asked to do, and enforces nothing.

    It reports no counters at all: a DOTS server must never claim it dropped traffic it did not drop.
    """

    name: str = "logging"
    active: dict[str, MitigationScope] = field(default_factory=dict)

    async def apply(self, scope: MitigationScope) -> None:
        log.warning("logging mitigator: NOT enforcing %s (%s)", scope.key, scope)
        self.active[scope.key] = scope

    async def update(self, scope: MitigationScope) -> None:
        await self.apply(scope)

    async def withdraw(self, key: str) -> None:
        log.warning("logging mitigator: withdraw %s", key)
        self.active.pop(key, None)

    async def counters(self, key: str) -> Counters:
        return Counters()

    async def health(self) -> bool:
        return True
