"""The nftables mitigator: DOTS mitigations (and data-channel ACLs) enforced in a netdev ingress chain.

Why netdev ingress (not inet forward): it runs before routing and conntrack, on the interface the attack arrives
on, so dropped packets cost the least; it needs no conntrack entries, which a flood would otherwise fill.

Every apply/update/withdraw/apply_acl/withdraw_acl/restore/cleanup is ONE `nft -j -f -` batch (libnftables JSON),
which the kernel commits atomically: either the whole change is enforced, or nothing changed. The ruleset is
built by the pure planner in opendots.mitigate.nftables_ruleset (ACL rules: nftables_acl); this module only runs
nft (inside a network namespace if asked, through `nsenter --net`) and reads counters back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opendots.mitigate.base import Counters, MitigationScope, MitigatorError
from opendots.mitigate.nftables_acl import AclPolicy, ace_counter_name, validate_policy
from opendots.mitigate.nftables_ruleset import (
    CHAIN,
    Plan,
    RulesetState,
    Table,
    batch,
    counter_name,
    plan_change,
    scope_elements,
)

log = logging.getLogger(__name__)

K = TypeVar("K", MitigationScope, AclPolicy)  # what restore() validates: each has a key
NFT_TIMEOUT = 30.0
NFT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
INTERFACE_NAME = re.compile(r"[^\s/\"':]{1,15}")
MAX_ERROR_CHARS = 2000
# RFC 9132 §5.3.3: bps-dropped / pps-dropped SHOULD be averages over five-minute intervals.
DEFAULT_RATE_WINDOW = 300.0


@dataclass(frozen=True)
class _Sample:
    at: float
    packets: int
    bytes: int


class DropRates:
    """Average drop rates over a sliding window, from successive reads of a monotonically growing counter."""

    def __init__(self, window: float, at: float, packets: int = 0, bytes_: int = 0) -> None:
        self.window = window
        self._samples: deque[_Sample] = deque([_Sample(at, packets, bytes_)])

    def add(self, at: float, packets: int, bytes_: int) -> tuple[int | None, int | None]:
        """Record a read; return (packets/s, bytes/s) since the oldest sample kept, None when not measurable."""
        samples = self._samples
        samples.append(_Sample(at, packets, bytes_))
        # Keep the newest sample at or before the window start, so the average spans the whole window.
        while len(samples) > 2 and samples[1].at <= at - self.window:
            samples.popleft()
        oldest = samples[0]
        elapsed = at - oldest.at
        if elapsed <= 0:
            return None, None
        return round((packets - oldest.packets) / elapsed), round((bytes_ - oldest.bytes) / elapsed)


@dataclass(frozen=True)
class AceStatistics:
    matched_packets: int
    matched_bytes: int
    limited_packets: int = 0  # of the matched ones, dropped for exceeding the ACE's rate-limit
    limited_bytes: int = 0


class NftablesMitigator:
    """Drops the traffic of each mitigation scope in its own nft table, with exact per-mitigation counters.

    One object per (namespace, table). At start-up the server calls `restore(active scopes)`; that replaces
    whatever an earlier run left in the table, keeping the counters of mitigations that are still active.
    """

    name = "nftables"

    def __init__(
        self,
        interface: str,
        table: str = "opendots",
        netns: str | None = None,
        *,
        nft: str = "nft",
        rate_window: float = DEFAULT_RATE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: int | None = None,
    ) -> None:
        """RATE_LIMIT: rate-limit instead of dropping: packets per second let through per matched flow key (e.g.
        source . target . protocol), the rest counted and dropped."""
        if not NFT_NAME.fullmatch(table):
            raise ValueError(f"nft table name {table!r}: letters, digits and _ only, at most 64 characters")
        if not INTERFACE_NAME.fullmatch(interface):
            raise ValueError(f"interface name {interface!r}: 1-15 characters, no spaces, quotes or slashes")
        if rate_limit is not None and (type(rate_limit) is not int or rate_limit < 1):
            raise ValueError(f"rate limit {rate_limit!r}: a positive number of packets per second")
        self.table = Table(name=table, interface=interface, rate_limit=rate_limit)
        self.netns = netns
        self._nft_binary = nft
        self._rate_window = rate_window
        self._clock = clock
        self._state = RulesetState()
        self._rates: dict[str, DropRates] = {}
        self._lock = asyncio.Lock()

    # ---- Mitigator protocol ----

    async def apply(self, scope: MitigationScope) -> None:
        async with self._lock:
            if self._state.initialized and self._state.scopes.get(scope.key) == scope:
                return  # idempotent: already enforced exactly like this
            await self._change(put=[scope])
            self._rates.setdefault(scope.key, DropRates(self._rate_window, self._clock()))

    async def update(self, scope: MitigationScope) -> None:
        await self.apply(scope)

    async def withdraw(self, key: str) -> None:
        async with self._lock:
            if key not in self._state.scopes:
                return
            await self._change(remove=[key])
            self._rates.pop(key, None)

    async def counters(self, key: str) -> Counters:
        if key not in self._state.scopes:
            raise MitigatorError(f"no active nftables mitigation {key!r}")
        listing = await self._nft("-j", "list", "counter", self.table.family, self.table.name, counter_name(key))
        packets, bytes_ = _counter_values(listing)[counter_name(key)]
        return self._measured(key, packets, bytes_)

    async def counters_many(self, keys: list[str]) -> dict[str, Counters]:
        """Every named counter of our table in one `nft list counters table` call (one nft process, however
        many mitigations are active); keys we do not enforce are left out."""
        active = [key for key in keys if key in self._state.scopes]
        if not active:
            return {}
        listing = await self._nft("-j", "list", "counters", "table", self.table.family, self.table.name)
        values = _counter_values(listing)
        found = {}
        for key in active:
            value = values.get(counter_name(key))
            if value is not None:
                found[key] = self._measured(key, *value)
        return found

    def _measured(self, key: str, packets: int, bytes_: int) -> Counters:
        rates = self._rates.get(key)
        if rates is None:
            rates = self._rates[key] = DropRates(self._rate_window, self._clock(), packets, bytes_)
            pps = bps = None
        else:
            pps, bps = rates.add(self._clock(), packets, bytes_)  # RFC 9132: bps-dropped is bytes per second
        return Counters(bytes_dropped=bytes_, pkts_dropped=packets, bps_dropped=bps, pps_dropped=pps)

    async def health(self) -> bool:
        """True when nft answers, the interface exists and, while enforcing, our chain is hooked on it."""
        try:
            await self._run(["ip", "link", "show", "dev", self.table.interface])
            if not self._state.initialized:
                await self._nft("list", "tables")
                return True
            listing = await self._nft("list", "chain", self.table.family, self.table.name, CHAIN)
        except MitigatorError as error:
            log.warning("nftables mitigator unhealthy: %s", error)
            return False
        # nft 1.0.6 leaves the device out of its JSON output, hence the text listing.
        return f'hook ingress device "{self.table.interface}"' in listing

    # ---- Data-channel filtering rules (RFC 8783 ACLs) ----

    async def apply_acl(self, policy: AclPolicy) -> None:
        """Enforce (or replace) one client ACL, in order after the ACLs applied before it. Idempotent."""
        async with self._lock:
            if self._state.initialized and self._state.acls.get(policy.key) == policy:
                return
            await self._change(put_acls=[policy])

    async def withdraw_acl(self, key: str) -> None:
        async with self._lock:
            if key not in self._state.acls:
                return
            await self._change(remove_acls=[key])

    async def acl_statistics(self, key: str) -> dict[str, AceStatistics]:
        """Per ACE: packets/bytes it matched (RFC 8519 matched-packets/-octets), of which rate-limited (dropped)."""
        policy = self._state.acls.get(key)
        if policy is None:
            raise MitigatorError(f"no active ACL {key!r}")
        listing = await self._nft("-j", "list", "counters", "table", self.table.family, self.table.name)
        values = _counter_values(listing)
        statistics = {}
        for ace in policy.aces:  # a dual-family ACE appears twice with one counter: reading it once is enough
            packets, bytes_ = values[ace_counter_name(key, ace.name)]
            limited_packets, limited_bytes = values.get(ace_counter_name(key, ace.name, limited=True), (0, 0))
            statistics[ace.name] = AceStatistics(
                matched_packets=packets + limited_packets,
                matched_bytes=bytes_ + limited_bytes,
                limited_packets=limited_packets,
                limited_bytes=limited_bytes,
            )
        return statistics

    # ---- Life cycle ----

    async def restore(
        self, scopes: Iterable[MitigationScope], acls: Iterable[AclPolicy] = ()
    ) -> dict[str, MitigatorError]:
        """Enforce exactly SCOPES and ACLS (the store's active ones) in one batch, replacing any leftover table.

        Counters found in a leftover table are carried over. A scope or ACL this mitigator cannot enforce
        (invalid) does not keep the others from being restored: it is left out and returned with its error, so
        the caller can mark it failed. A batch the kernel refuses raises MitigatorError.
        """
        refused: dict[str, MitigatorError] = {}
        valid = _enforceable(scopes, scope_elements, refused)
        valid_acls = _enforceable(acls, validate_policy, refused)
        async with self._lock:
            carried = await self._existing_counters()
            plan = plan_change(self.table, RulesetState(), put=valid, carried_counters=carried, put_acls=valid_acls)
            await self._commit(plan)
            now = self._clock()
            self._rates = {
                scope.key: DropRates(self._rate_window, now, *carried.get(counter_name(scope.key), (0, 0)))
                for scope in valid
            }
        return refused

    async def cleanup(self) -> None:
        """Remove the table (and with it every rule, map and counter of this mitigator)."""
        async with self._lock:
            await self._nft("-j", "-f", "-", stdin=json.dumps(batch(self.table.reset_commands())))
            self._state = RulesetState()
            self._rates.clear()

    @property
    def active_keys(self) -> list[str]:
        return list(self._state.scopes)

    @property
    def active_acls(self) -> list[str]:
        return list(self._state.acls)

    # ---- nft ----

    async def _change(self, **change: Any) -> None:
        """Plan CHANGE on top of the current state and commit it; rebuild the table first if it vanished."""
        plan = plan_change(self.table, self._state, **change)  # invalid input raises here, nothing sent
        try:
            await self._commit(plan)
        except MitigatorError:
            if not self._state.initialized or await self._table_present():
                raise
            # Our table is gone (someone flushed the ruleset, a firewall reload...): re-install everything we
            # enforce, plus this change, in one batch. Its counters went with the table.
            log.warning(
                "nftables table %s vanished: re-installing %d mitigations", self.table.name, len(self._state.scopes)
            )
            rebuilt = plan_change(
                self.table, RulesetState(), put=self._state.scopes.values(), put_acls=self._state.acls.values()
            )
            changed = plan_change(self.table, rebuilt.state, **change)
            await self._commit(Plan(commands=rebuilt.commands + changed.commands, state=changed.state))
            now = self._clock()
            self._rates = {key: DropRates(self._rate_window, now) for key in self._state.scopes}

    async def _table_present(self) -> bool:
        try:
            await self._nft("list", "table", self.table.family, self.table.name)
        except MitigatorError:
            return False
        return True

    async def _commit(self, plan: Plan) -> None:
        if plan.commands:
            await self._nft("-j", "-f", "-", stdin=json.dumps(batch(plan.commands)))
        self._state = plan.state

    async def _existing_counters(self) -> dict[str, tuple[int, int]]:
        try:
            listing = await self._nft("-j", "list", "counters", "table", self.table.family, self.table.name)
        except MitigatorError:
            return {}  # no leftover table
        return _counter_values(listing)

    async def run_command(self, argv: Sequence[str]) -> str:
        """ARGV's standard output, run in this mitigator's namespace (MitigatorError when it fails)."""
        return await self._run(argv)

    async def _nft(self, *arguments: str, stdin: str | None = None) -> str:
        return await self._run([self._nft_binary, *arguments], stdin)

    async def _run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        """Run ARGV in the mitigator's network namespace; a failure becomes MitigatorError with the tool's message."""
        command = list(argv)
        if self.netns is not None:
            path = self.netns if self.netns.startswith("/") else f"/run/netns/{self.netns}"
            command = ["nsenter", f"--net={path}", "--", *command]
        tool = argv[0]
        # `nft -f -` opens /dev/stdin by name, which fails on the socket pair uvloop (opendots.eventloop) gives a
        # child for a pipe: the input goes in an anonymous in-memory file instead, which also spares a pipe
        # hand-off of a large batch.
        input_file = _memory_file(stdin.encode()) if stdin is not None else asyncio.subprocess.DEVNULL
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=input_file,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise MitigatorError(f"cannot run {command[0]}: {error}") from error
        finally:
            if stdin is not None:
                os.close(input_file)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), NFT_TIMEOUT)
        except TimeoutError as error:
            process.kill()
            await process.wait()
            raise MitigatorError(f"{tool} did not answer within {NFT_TIMEOUT} s") from error
        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip() or f"exit status {process.returncode}"
            raise MitigatorError(f"{tool}: {message[:MAX_ERROR_CHARS]}")
        return stdout.decode()


def _memory_file(data: bytes) -> int:
    """A file descriptor of an anonymous in-memory file holding DATA, positioned at its start."""
    descriptor = os.memfd_create("opendots-nft-input", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.lseek(descriptor, 0, os.SEEK_SET)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _counter_values(listing: str) -> dict[str, tuple[int, int]]:
    values = {}
    for item in json.loads(listing or '{"nftables": []}')["nftables"]:
        counter = item.get("counter")
        if counter:
            values[counter["name"]] = (counter["packets"], counter["bytes"])
    return values


def _enforceable(items: Iterable[K], check: Callable[[K], object], refused: dict[str, MitigatorError]) -> list[K]:
    """The ITEMS that pass CHECK, in order; the error of each other one goes to REFUSED under its key."""
    kept = []
    for item in items:
        try:
            check(item)
        except MitigatorError as error:
            refused[item.key] = error
        else:
            kept.append(item)
    return kept
