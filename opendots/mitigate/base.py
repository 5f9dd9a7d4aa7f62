"""The Mitigator interface and its optional capabilities, and the logging mitigator used where no actuator is
configured. The values a mitigator handles (MitigationScope, Counters, PortRange, IPNetwork) live in
opendots.domain and are re-exported here for the actuators."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from opendots.domain import Counters, IPNetwork, MitigationScope, PortRange
from opendots.errors import OpenDotsError

if TYPE_CHECKING:
    from opendots.mitigate.nftables_acl import AclPolicy

__all__ = [
    "AclActuator",
    "AclPlanner",
    "BatchCounters",
    "Counters",
    "IPNetwork",
    "Lifecycle",
    "LoggingMitigator",
    "MitigationScope",
    "Mitigator",
    "MitigatorError",
    "PortRange",
    "Restorable",
    "RestoreResult",
    "read_counters",
    "refused_by",
]

log = logging.getLogger(__name__)


class MitigatorError(OpenDotsError, RuntimeError):
    """Enforcement could not be applied or removed; the mitigation status becomes 'failed'."""


@runtime_checkable
class Mitigator(Protocol):
    """What every actuator does. The optional capabilities below are separate protocols: callers test for them
    with isinstance(), so a type checker follows every call."""

    name: str

    async def apply(self, scope: MitigationScope) -> None: ...

    async def update(self, scope: MitigationScope) -> None: ...

    async def withdraw(self, key: str) -> None: ...

    async def counters(self, key: str) -> Counters: ...

    async def health(self) -> bool: ...


@runtime_checkable
class Lifecycle(Protocol):
    """An actuator with processes of its own (BGP speakers): started before use, stopped at shutdown."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Restorable(Protocol):
    """An actuator that replaces whatever an earlier run left behind with exactly SCOPES after a restart, and
    returns the keys it could not enforce (with the reason when known). Others get each scope applied."""

    async def restore(self, scopes: Iterable[MitigationScope]) -> RestoreResult: ...


RestoreResult = Mapping[str, MitigatorError] | Sequence[str]
"""What Restorable.restore could not enforce: keys with their errors (nftables, the router) or keys alone (BGP)."""


def refused_by(mitigator: Mitigator, result: RestoreResult) -> dict[str, MitigatorError]:
    """RESULT of MITIGATOR's restore() as keys with an error each."""
    if isinstance(result, Mapping):
        return dict(result)
    return {key: MitigatorError(f"{mitigator.name} could not restore {key}") for key in result}


@runtime_checkable
class BatchCounters(Protocol):
    """Counters of many mitigations read at once (keys it cannot read are left out). Polling every active mitigation
    one by one costs one round trip (an nft process, an API call) each; read_counters() uses this when present."""

    async def counters_many(self, keys: list[str]) -> dict[str, Counters]: ...


@runtime_checkable
class AclActuator(Protocol):
    """An actuator that enforces data-channel ACLs (RFC 8783 §7.3, RFC 9133): nftables, and the router over it."""

    name: str

    async def apply_acl(self, policy: AclPolicy) -> None: ...

    async def withdraw_acl(self, key: str) -> None: ...


@runtime_checkable
class AclPlanner(AclActuator, Protocol):
    """An ACL enforcer that can tell beforehand whether it would enforce (part of) POLICY (the router, which knows
    which of its actuators are responsible for which clients and prefixes). Without it, every ACL is taken."""

    def can_enforce_acl(self, policy: AclPolicy) -> bool: ...


async def read_counters(mitigator: Mitigator, keys: list[str]) -> dict[str, Counters]:
    """The counters of KEYS (those that could be read), in one call when MITIGATOR can batch them."""
    if not keys:
        return {}
    if isinstance(mitigator, BatchCounters):
        try:
            return await mitigator.counters_many(keys)
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
