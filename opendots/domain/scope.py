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

    target_prefixes, target_ports, protocols, source_prefixes and source_ports are Targets.prefixes, .port_ranges,
    .protocols, .source_prefixes and .source_port_ranges (aliases and FQDNs already resolved to prefixes by the
    signal channel); empty port/protocol tuples mean "all". `key` names the mitigation in withdraw() and
    counters(); `client` (the ClientAuthorization name), `cuid` and `mid` say whose it is. Scopes built by hand
    (tests, benchmarks) may leave those three out: an actuator then knows only the key.
    """

    key: str
    target_prefixes: tuple[IPNetwork, ...]
    target_ports: tuple[PortRange, ...] = ()
    protocols: tuple[int, ...] = ()
    source_prefixes: tuple[IPNetwork, ...] = ()  # RFC 9066 call home
    source_ports: tuple[PortRange, ...] = ()
    client: str | None = None
    cuid: str | None = None
    mid: int | None = None

    def __str__(self) -> str:
        """For logs: `client NAME mid N: PREFIXES [ports P] [protocols N] [from SOURCES [ports P]]`."""
        words = [f"client {self.client} mid {self.mid}:" if self.client is not None else f"{self.key}:"]
        words.append(" ".join(str(prefix) for prefix in self.target_prefixes) or "no prefix")
        if self.target_ports:
            words.append("ports " + ",".join(str(port) for port in self.target_ports))
        if self.protocols:
            words.append("protocols " + ",".join(str(protocol) for protocol in self.protocols))
        if self.source_prefixes:
            words.append("from " + " ".join(str(prefix) for prefix in self.source_prefixes))
        if self.source_ports:
            words.append("source ports " + ",".join(str(port) for port in self.source_ports))
        return " ".join(words)

    @classmethod
    def of(cls, targets: Targets, client: str, cuid: str, mid: int) -> MitigationScope:
        """The scope of mitigation (CUID, MID) of CLIENT, on TARGETS (aliases expanded)."""
        return cls(
            mitigation_key(cuid, mid),
            targets.prefixes,
            targets.port_ranges,
            targets.protocols,
            targets.source_prefixes,
            targets.source_port_ranges,
            client,
            cuid,
            mid,
        )
