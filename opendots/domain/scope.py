"""What a mitigator is handed: the resolved targets of one accepted mitigation, and whose mitigation it is."""

from __future__ import annotations

from dataclasses import dataclass

from opendots.domain.addresses import IPNetwork
from opendots.domain.ranges import PortRange
from opendots.domain.targets import Targets


def mitigation_key(cuid: str, mid: int) -> str:
    """The mitigators' name for mitigation (CUID, MID): unique per mitigation, and part of nft set names and logs."""
    return f"{cuid}/{mid}"


@dataclass(frozen=True)
class MitigationScope:
    """The part of a mitigation's Targets an actuator can act on, with the mitigation's identity.

    The members are named as in Targets, after their YANG leaves (target-prefix, target-port-range,
    target-protocol, source-prefix, source-port-range), with aliases and FQDNs already resolved to prefixes by the
    signal channel; empty port/protocol tuples mean "all". `key` names the mitigation in withdraw() and
    counters(); `client` (the ClientAuthorization name), `cuid` and `mid` say whose it is. Scopes built by hand
    (tests, benchmarks) may leave those three out: an actuator then knows only the key.
    """

    key: str
    target_prefixes: tuple[IPNetwork, ...]
    target_port_ranges: tuple[PortRange, ...] = ()
    target_protocols: tuple[int, ...] = ()
    source_prefixes: tuple[IPNetwork, ...] = ()  # RFC 9066 call home
    source_port_ranges: tuple[PortRange, ...] = ()
    client: str | None = None
    cuid: str | None = None
    mid: int | None = None

    @classmethod
    def of(cls, targets: Targets, client: str, cuid: str, mid: int) -> MitigationScope:
        """The scope of mitigation (CUID, MID) of CLIENT, on TARGETS (aliases expanded)."""
        return cls(
            mitigation_key(cuid, mid),
            targets.target_prefixes,
            targets.target_port_ranges,
            targets.target_protocols,
            targets.source_prefixes,
            targets.source_port_ranges,
            client,
            cuid,
            mid,
        )
