"""S-NAPTR (RFC 3958) and SRV (RFC 2782) selection for DOTS (RFC 8973 §6, §7), sans-I/O: records in, order out."""

from __future__ import annotations

import random
from dataclasses import dataclass

from opendots.discovery.records import DEFAULT_DATA_PORT, DEFAULT_SIGNAL_PORT, Channel, Transport

SERVICE_DOTS = "DOTS"  # RFC 8973 §9.4.1
SERVICE_CALL_HOME = "DOTS-CALL-HOME"  # §9.4.2
# Application protocol tag -> (channel, transport, SRV service name, default port): §6, §9.1, §9.4.3-§9.4.5.
PROTOCOLS: dict[str, tuple[Channel, Transport, str, int]] = {
    "signal.udp": ("signal", "dtls", "_dots-signal._udp", DEFAULT_SIGNAL_PORT),
    "signal.tcp": ("signal", "tls", "_dots-signal._tcp", DEFAULT_SIGNAL_PORT),
    "data.tcp": ("data", "tls", "_dots-data._tcp", DEFAULT_DATA_PORT),
}
# The SRV service names (and DNS-SD <Service>) per application service: §7, §9.1. Call Home has no data channel.
SRV_SERVICES: dict[str, dict[str, str]] = {
    SERVICE_DOTS: {protocol: entry[2] for protocol, entry in PROTOCOLS.items()},
    SERVICE_CALL_HOME: {"signal.udp": "_dots-call-home._udp", "signal.tcp": "_dots-call-home._tcp"},
}
MAX_NAPTR_DEPTH = 5  # non-terminal NAPTR chains longer than this are a loop or a misconfiguration


def srv_service(service: str, protocol: str) -> str | None:
    """ "_dots-call-home._udp" for ("DOTS-CALL-HOME", "signal.udp"); None when SERVICE does not offer PROTOCOL."""
    return SRV_SERVICES.get(service.upper(), {}).get(protocol)


@dataclass(frozen=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: float


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str
    ttl: float


def protocols_of(record: Naptr, service: str = SERVICE_DOTS) -> list[str]:
    """The application protocol tags a NAPTR record offers for SERVICE ("DOTS:signal.udp" -> ["signal.udp"]);
    S-NAPTR service fields are case-insensitive (RFC 3958 §6.5)."""
    tag, *protocols = record.service.split(":")
    if tag.upper() != service.upper():
        return []
    return [protocol.lower() for protocol in protocols if srv_service(service, protocol.lower()) is not None]


def select_naptr(records: list[Naptr], protocols: tuple[str, ...], service: str = SERVICE_DOTS) -> list[Naptr]:
    """The records usable for SERVICE with any of PROTOCOLS, by order then preference (RFC 3403 §4.1).

    Records with a regexp or with flags other than "", "s", "a" are dropped: S-NAPTR uses neither (RFC 3958 §2.2)."""
    usable = [
        record
        for record in records
        if record.flags.lower() in ("", "s", "a")
        and not record.regexp
        and any(protocol in protocols for protocol in protocols_of(record, service))
    ]
    return sorted(usable, key=lambda record: (record.order, record.preference))


def order_srv(records: list[Srv], rng: random.Random | None = None) -> list[Srv]:
    """RFC 2782 order: ascending priority; within a priority a weighted random draw (zero weights last-ish).

    A target of "." means the service is decidedly not available there and is dropped."""
    rng = rng or random.Random()
    ordered: list[Srv] = []
    for priority in sorted({record.priority for record in records}):
        pool = sorted((r for r in records if r.priority == priority and r.target != "."), key=lambda r: r.weight)
        while pool:
            total = sum(record.weight for record in pool)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(pool):
                running += record.weight
                if running >= pick:
                    ordered.append(pool.pop(index))
                    break
    return ordered
