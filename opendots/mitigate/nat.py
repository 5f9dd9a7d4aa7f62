"""The nftables mitigator of a NAT CPE (RFC 9066 §5.3.2): external sources mapped to internal hosts, then dropped.

    [[mitigators]]
    type = "nftables"
    interface = "lan0"                      # the LAN-facing side: packets still carry the internal addresses
    nat_external = ["198.51.100.2/32"]      # the CPE's public addresses (what its NAT translates to)
    nat_state = "/var/lib/opendots/nat.json"  # optional: the hosts matched so far, kept across restarts

A scope whose source prefixes lie in `nat_external` is looked up in the CPE's connection tracking (`conntrack -L`
in the mitigator's namespace, parsed by opendots.mitigate.conntrack) and enforced by the nftables mitigator with
the matched internal hosts as its sources (toward its targets). The lookup is repeated when counters are read
(at most every RESCAN seconds) while a mapped mitigation is active, so a host that starts flooding after the
request is caught too; hosts once matched stay filtered until the mitigation is withdrawn (their conntrack
entries expire once their packets are dropped before conntrack sees them). What was matched is logged and
reported by `explain()` (the admin socket's `mitigations`), never put on the wire: RFC 9066 has no field for it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from opendots.domain import Counters, IPNetwork, MitigationScope
from opendots.mitigate.base import MitigatorError
from opendots.mitigate.conntrack import IPAddress, external_sources, internal_hosts, mapped_scope, parse_conntrack
from opendots.mitigate.nftables import NftablesMitigator

log = logging.getLogger(__name__)
RESCAN = 2.0


class NatMappingMitigator:
    """NftablesMitigator behind a conntrack lookup; keys, counters and restore are the inner mitigator's."""

    def __init__(
        self,
        inner: NftablesMitigator,
        external: Sequence[IPNetwork],
        state_path: Path | None = None,
        *,
        conntrack: str = "conntrack",
        rescan: float = RESCAN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not external:
            raise ValueError("nat_external: the CPE's public addresses are needed to map sources")
        self.inner = inner
        self.name = inner.name
        self.external = tuple(external)
        self.state_path = state_path
        self._conntrack = conntrack
        self._rescan = rescan
        self._clock = clock
        self._scopes: dict[str, MitigationScope] = {}  # as asked (external sources)
        self._hosts: dict[str, list[IPAddress]] = self._load()
        self._flows_seen: dict[str, int] = {}
        self._scanned_at = -float("inf")
        self._lock = asyncio.Lock()

    # ---- what was matched ----

    def explain(self, key: str) -> dict[str, Any] | None:
        """What the NAT lookup made of mitigation KEY (None when it had no external source)."""
        scope = self._scopes.get(key)
        if scope is None or not external_sources(scope, self.external):
            return None
        hosts = self._hosts.get(key, [])
        return {
            "nat-external": [str(source) for source in external_sources(scope, self.external)],
            "nat-internal-hosts": [str(host) for host in hosts],
        }

    # ---- Mitigator ----

    async def apply(self, scope: MitigationScope) -> None:
        async with self._lock:
            self._scopes[scope.key] = scope
            if external_sources(scope, self.external):
                await self._lookup([scope.key])
            await self.inner.apply(self._enforced(scope))
            self._save()

    async def update(self, scope: MitigationScope) -> None:
        await self.apply(scope)

    async def withdraw(self, key: str) -> None:
        async with self._lock:
            await self.inner.withdraw(key)
            self._scopes.pop(key, None)
            if self._hosts.pop(key, None) is not None:
                self._save()

    async def counters(self, key: str) -> Counters:
        await self._refresh()
        return await self.inner.counters(key)

    async def counters_many(self, keys: list[str]) -> dict[str, Counters]:
        await self._refresh()
        return await self.inner.counters_many(keys)

    async def health(self) -> bool:
        return await self.inner.health()

    async def restore(self, scopes: Iterable[MitigationScope]) -> dict[str, MitigatorError]:
        """The inner restore of SCOPES mapped with the hosts kept from the last run plus a fresh lookup."""
        async with self._lock:
            self._scopes = {scope.key: scope for scope in scopes}
            self._hosts = {key: hosts for key, hosts in self._hosts.items() if key in self._scopes}
            mapped = [key for key, scope in self._scopes.items() if external_sources(scope, self.external)]
            if mapped:
                try:
                    await self._lookup(mapped)
                except MitigatorError as error:  # the kept hosts are still enforced
                    log.warning("NAT lookup at restore: %s", error)
            refused = await self.inner.restore([self._enforced(scope) for scope in self._scopes.values()])
            self._save()
            return refused

    async def cleanup(self) -> None:
        await self.inner.cleanup()

    # ---- the lookup ----

    def _enforced(self, scope: MitigationScope) -> MitigationScope:
        return mapped_scope(scope, self._hosts.get(scope.key, []), self.external)

    async def _lookup(self, keys: list[str]) -> list[str]:
        """Read the conntrack table once and add the hosts it shows for KEYS; the keys whose hosts changed."""
        text = await self.inner.run_command([self._conntrack, "-L"])
        self._scanned_at = self._clock()
        scopes = [self._scopes[key] for key in keys]
        # Linear in the table, which may hold a few hundred thousand flows: off the event loop.
        found = await asyncio.to_thread(_match_all, text, scopes, self.external)
        changed = []
        for scope, hosts in zip(scopes, found, strict=True):
            known = self._hosts.setdefault(scope.key, [])
            new = [host for host in hosts if host not in known]
            if new:
                known.extend(new)
                changed.append(scope.key)
                log.warning(
                    "mitigation %s: external source %s is internal host(s) %s (NAT lookup, RFC 9066 5.3.2)",
                    scope.key,
                    " ".join(str(s) for s in external_sources(scope, self.external)),
                    " ".join(str(h) for h in known),
                )
            elif not known:
                log.warning("mitigation %s: no internal host found behind %s yet", scope.key, scope.source_prefixes)
        return changed

    async def _refresh(self) -> None:
        """Look again for mapped mitigations, at most every RESCAN seconds; re-enforce those that found hosts."""
        if self._clock() - self._scanned_at < self._rescan:
            return
        async with self._lock:
            mapped = [key for key, scope in self._scopes.items() if external_sources(scope, self.external)]
            if not mapped:
                return
            try:
                changed = await self._lookup(mapped)
            except MitigatorError as error:
                log.warning("NAT lookup: %s", error)
                return
            for key in changed:
                await self.inner.apply(self._enforced(self._scopes[key]))
            if changed:
                self._save()

    # ---- kept across restarts ----

    def _load(self) -> dict[str, list[IPAddress]]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            data = json.loads(self.state_path.read_text())
            return {str(key): [ipaddress.ip_address(h) for h in hosts] for key, hosts in data["hosts"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.error("NAT state %s unreadable, starting without it: %s", self.state_path, error)
            return {}

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {"hosts": {key: [str(h) for h in hosts] for key, hosts in self._hosts.items() if hosts}}
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.state_path)  # never a half-written file


def _match_all(text: str, scopes: list[MitigationScope], external: Sequence[IPNetwork]) -> list[list[IPAddress]]:
    flows = parse_conntrack(text)
    return [internal_hosts(scope, flows, external) for scope in scopes]
