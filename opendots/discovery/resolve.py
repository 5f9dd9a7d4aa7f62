"""DNS lookups for discovery through dnspython, against a configurable resolver (RFC 8973 §6, §7)."""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.resolver

from opendots.discovery.naptr import Naptr, Srv

DEFAULT_LIFETIME = 3.0  # per lookup: discovery must not hold the agent's first connection attempt for long


class LookupFailed(Exception):
    """A lookup that got no usable answer (timeout, SERVFAIL, the lookup budget spent): not "no such record"."""


def parse_resolver(text: str) -> tuple[str, int]:
    """'192.0.2.53', '192.0.2.53:5353', '2001:db8::53' or '[2001:db8::53]:5353' -> (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    else:
        host, port = text, 53
    ipaddress.ip_address(host)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return host, port


def check_resolver(text: str, where: str) -> None:
    """A ConfigError naming WHERE when TEXT (a `discovery_resolver` key) is not an address[:port]."""
    from opendots.errors import ConfigError

    try:
        parse_resolver(text)
    except ValueError:
        raise ConfigError(
            f"{where} discovery_resolver: {text!r} is not an address[:port] (e.g. 192.0.2.53:53)"
        ) from None


class DnsLookups:
    """The four record types discovery needs; an absent name or record type is an empty list, never an error."""

    def __init__(self, resolver: str | None = None, lifetime: float = DEFAULT_LIFETIME) -> None:
        if resolver is None:
            self._resolver = dns.asyncresolver.Resolver()  # the system's (/etc/resolv.conf)
        else:
            address, port = parse_resolver(resolver)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [address]
            self._resolver.port = port
        self._resolver.lifetime = lifetime
        self.queries = 0

    async def _query(self, name: str, rdtype: str) -> tuple[list[object], float]:
        self.queries += 1
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], 0.0
        except (dns.exception.DNSException, OSError) as error:  # timeout, SERVFAIL, refused, unreachable
            raise LookupFailed(f"the resolver did not answer {rdtype} {name} ({error})") from None
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
        return list(answer), ttl

    async def naptr(self, name: str) -> list[Naptr]:
        records, ttl = await self._query(name, "NAPTR")
        return [
            Naptr(
                order=r.order,
                preference=r.preference,
                flags=r.flags.decode(),
                service=r.service.decode(),
                regexp=r.regexp.decode(),
                replacement=r.replacement.to_text(omit_final_dot=True),
                ttl=ttl,
            )
            for r in records  # type: ignore[attr-defined]
        ]

    async def srv(self, name: str) -> list[Srv]:
        records, ttl = await self._query(name, "SRV")
        return [
            Srv(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True) or ".", ttl)  # type: ignore[attr-defined]
            for r in records
        ]

    async def ptr(self, name: str) -> list[tuple[str, float]]:
        records, ttl = await self._query(name, "PTR")
        return [(r.target.to_text(omit_final_dot=True), ttl) for r in records]  # type: ignore[attr-defined]

    async def addresses(self, name: str) -> list[tuple[str, float]]:
        """AAAA first, then A: the order Happy Eyeballs prefers (RFC 9132 §4.3)."""
        found: list[tuple[str, float]] = []
        for rdtype in ("AAAA", "A"):
            records, ttl = await self._query(name, rdtype)
            found += [(r.address, ttl) for r in records]  # type: ignore[attr-defined]
        return found
