"""The nftables mitigator: DOTS mitigations (and data-channel ACLs) enforced in a netdev ingress chain.

Why netdev ingress (not inet forward): it runs before routing and conntrack, on the interface the attack arrives
on, so dropped packets cost the least; it needs no conntrack entries, which a flood would otherwise fill.

Every apply/update/withdraw/apply_acl/withdraw_acl/restore/cleanup is ONE `nft -j -f -` batch (libnftables JSON),
which the kernel commits atomically: either the whole change is enforced, or nothing changed. The ruleset is
built by the pure planner in opendots.mitigate.nftables_ruleset (ACL rules: nftables_acl); this module only runs
the batches and reads counters back. They run in-process through libnftables (opendots.mitigate.libnftables: one
nft_run_cmd_from_buffer per batch, the same single transaction as `nft -f`, in a thread that entered the
namespace), which spares the ~20 ms of process start-up and `nsenter` an `nft` child costs per change; when
libnftables cannot be loaded (logged once), or with backend="process", every batch is an `nft` child process
instead (inside a network namespace through `nsenter --net`). Either way a refused batch raises MitigatorError
with nft's own error text.

A second table behind ours (nftables_watch), changed in the same batches, counts per mitigation what still reaches
its target prefixes (the passed counts of Counters: RFC 9244 total-traffic). With the top-talker policy ([mitigation]
top_talker_policy, opendots.mitigate.top_talkers) a mitigation naming top talkers is first enforced narrow, and that
table also counts what still reaches its scope; each counter read feeds the policy, and a widening is one more batch
touching both tables.
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
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from opendots.mitigate import libnftables
from opendots.mitigate.base import Counters, MitigationScope, MitigatorError
from opendots.mitigate.nftables_acl import AclPolicy, ace_counter_name, validate_policy
from opendots.mitigate.nftables_breakdown import breakdown_commands, breakdown_table, breakdown_values, complete
from opendots.mitigate.nftables_keys import JsonCommand
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
from opendots.mitigate.nftables_watch import (
    Watch,
    limited_counter_name,
    passed_counter_name,
    target_counter_name,
    watch_commands,
    watch_table,
)
from opendots.mitigate.top_talkers import Phase, PolicyStatus, SourcesFirst, TopTalkerSettings

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
        top_talkers: TopTalkerSettings | None = None,
        rate_limit: int | None = None,
        count_passed: bool = False,
        count_breakdown: bool = False,
        backend: str = "auto",
    ) -> None:
        """RATE_LIMIT: rate-limit instead of dropping: packets per second let through per matched flow key (e.g.
        source . target . protocol), the rest counted and dropped. COUNT_PASSED: count what still reaches each
        mitigation's targets (RFC 9244 total-traffic); off by default because every forwarded packet then also
        crosses the counting table (bench/mitigate.py: 10,000 /128 targets forward 72 % of the no-table rate with
        it, 93 % without). COUNT_BREAKDOWN: count all the traffic toward each mitigation's targets per protocol and
        destination port (RFC 9244 §8.3, opendots.mitigate.nftables_breakdown); off by default, it costs too
        (10,000 /128 targets: 88 % of the rate with the tables dormant, 93 % without it). BACKEND: "library"
        (libnftables in-process), "process" (an `nft` child per command, the fallback) or "auto" (the library when
        it loads and NFT is the default `nft`, else a process)."""
        if not NFT_NAME.fullmatch(table):
            raise ValueError(f"nft table name {table!r}: letters, digits and _ only, at most 64 characters")
        if not INTERFACE_NAME.fullmatch(interface):
            raise ValueError(f"interface name {interface!r}: 1-15 characters, no spaces, quotes or slashes")
        if rate_limit is not None and (type(rate_limit) is not int or rate_limit < 1):
            raise ValueError(f"rate limit {rate_limit!r}: a positive number of packets per second")
        self.table = Table(name=table, interface=interface, rate_limit=rate_limit)
        self.netns = netns
        self._nft_binary = nft
        self.in_process = libnftables.chosen(backend, nft)
        self._rate_window = rate_window
        self._clock = clock
        self._state = RulesetState()
        self._rates: dict[str, DropRates] = {}
        self._lock = asyncio.Lock()
        self.top_talkers = top_talkers or TopTalkerSettings()
        self._policies: dict[str, SourcesFirst] = {}
        """Mitigations under the top-talker policy (opendots.mitigate.top_talkers), by key."""
        self._watched: dict[str, bool] = {}
        """Keys in the watch table (opendots.mitigate.nftables_watch): narrow, and whether rate-limited there."""
        self.count_passed = count_passed
        self._counted: dict[str, MitigationScope] = {}
        """Keys whose passed traffic toward their targets the watch table counts: every enforced mitigation."""
        self.count_breakdown = count_breakdown
        self._broken: dict[str, MitigationScope] = {}
        """Keys whose traffic the breakdown table counts per protocol and port (those owning all their targets)."""

    # ---- Mitigator protocol ----

    async def apply(self, scope: MitigationScope) -> None:
        async with self._lock:
            policy = self._policies.get(scope.key)
            current = policy.scope if policy is not None else self._state.scopes.get(scope.key)
            if current == scope and (scope.key in self._state.scopes or scope.key in self._watched):
                return  # idempotent: already enforced exactly like this
            policies = {key: kept for key, kept in self._policies.items() if key != scope.key}
            put = [scope]
            if self.top_talkers.enabled and scope.top_talkers:
                # A new mitigation's counters start with the batch: the first judgement spans the window from now.
                fresh = scope.key not in self._state.scopes and scope.key not in self._watched
                policy = policies[scope.key] = SourcesFirst(
                    self.top_talkers, scope, self._clock(), (0, 0) if fresh else None
                )
                put = [] if policy.limited is not None else [policy.enforced]  # rate limits live in the watch table
            try:
                await self._change(put=put, policies=policies)
            except MitigatorError as error:
                if scope.key not in policies or policies[scope.key].phase is Phase.WIDE:
                    raise
                # The narrow form was refused (too many match entries, the kernel...): the whole scope still
                # protects the target, so that is what is enforced, and said.
                policies[scope.key].give_up(self._clock(), f"narrow drop refused: {str(error)[:200]}")
                await self._change(put=[scope], policies=policies)
            self._rates.setdefault(scope.key, DropRates(self._rate_window, self._clock()))
            if scope.key in policies:
                log.warning("mitigation %s: %s", scope.key, policies[scope.key].status().describe())

    async def update(self, scope: MitigationScope) -> None:
        await self.apply(scope)

    async def withdraw(self, key: str) -> None:
        async with self._lock:
            if key not in self._state.scopes and key not in self._watched:
                return
            policies = {k: policy for k, policy in self._policies.items() if k != key}
            await self._change(remove=[key], policies=policies)
            self._rates.pop(key, None)

    async def counters(self, key: str) -> Counters:
        found = await self.counters_many([key])
        if key not in found:
            raise MitigatorError(f"no active nftables mitigation {key!r}")
        return found[key]

    async def counters_many(self, keys: list[str]) -> dict[str, Counters]:
        """Every named counter of our table in one `nft list counters table` call, and of the watch table in one
        more (two nft processes, however many mitigations are active); keys we do not enforce are left out."""
        enforced = [key for key in keys if key in self._state.scopes]
        narrow = [key for key in keys if key in self._watched]
        if not enforced and not narrow:
            return {}
        values = {}
        if enforced:
            listing = await self._nft("-j", "list", "counters", "table", self.table.family, self.table.name)
            values = _counter_values(listing)
        counted = narrow or any(key in self._counted for key in enforced)
        watched = await self._watch_counters() if counted else {}
        if watched is None:  # the watch table is gone: build it again, counting from now
            async with self._lock:
                await self._change()
            watched = {}
        broken = await self._breakdown_counters() if any(key in self._broken for key in keys) else {}
        found = {}
        dropped = {}
        for key in keys:
            if key in self._state.scopes:
                value = values.get(counter_name(key))
            else:  # rate-limited talkers: the drops are counted in the watch table
                value = watched.get(limited_counter_name(key)) if self._watched.get(key) else None
            if value is not None:
                found[key] = self._measured(key, *value, passed=watched.get(target_counter_name(key)))
                dropped[key] = value[0]
                split = breakdown_values(self._broken[key], key, broken) if key in self._broken else None
                if split is not None:
                    found[key] = replace(found[key], by_protocol=split[0], by_port=split[1])
        await self._judge(dropped, watched)
        return found

    # ---- Top-talker policy (opendots.mitigate.top_talkers) ----

    def top_talker_status(self, key: str) -> PolicyStatus | None:
        """What the top-talker policy did for mitigation KEY (None: not under the policy)."""
        policy = self._policies.get(key)
        return None if policy is None else policy.status()

    async def _judge(self, dropped: dict[str, int], watched: dict[str, tuple[int, int]]) -> None:
        """Feed the narrow mitigations among DROPPED (key → packets dropped) and what still reaches their targets
        (WATCHED: the watch table's counters) to their policies; widen, in one batch, those the policy gives up
        on."""
        now = self._clock()
        widen = []
        for key in dropped:
            passed = watched.get(passed_counter_name(key))
            policy = self._policies.get(key)
            if passed is not None and policy is not None and policy.observe(now, dropped[key], passed[0]):
                widen.append(policy)
        if not widen:
            return
        async with self._lock:
            # A new request may have replaced a policy meanwhile: widen only those still in place.
            live = [policy for policy in widen if self._policies.get(policy.scope.key) is policy]
            if live:
                await self._change(put=[policy.scope for policy in live], policies=self._policies)
        for policy in widen:
            log.warning("mitigation %s: %s", policy.scope.key, policy.status().describe())

    async def _breakdown_counters(self) -> dict[str, tuple[int, int]]:
        """The breakdown table's counters (none when it cannot be read: no breakdown is claimed then)."""
        table = breakdown_table(self.table)
        try:
            return _counter_values(await self._nft("-j", "list", "counters", "table", table.family, table.name))
        except MitigatorError as error:
            log.warning("breakdown counters of %s: %s", table.name, error)
            return {}

    async def _watch_counters(self, expected: bool = True) -> dict[str, tuple[int, int]] | None:
        """The watch table's counters; None when it cannot be read (gone: worth a warning when EXPECTED)."""
        watch = watch_table(self.table)
        try:
            return _counter_values(await self._nft("-j", "list", "counters", "table", watch.family, watch.name))
        except MitigatorError as error:
            if expected:
                log.warning("top-talker counters of %s: %s", watch.name, error)
            return None

    def _measured(self, key: str, packets: int, bytes_: int, passed: tuple[int, int] | None = None) -> Counters:
        rates = self._rates.get(key)
        if rates is None:
            rates = self._rates[key] = DropRates(self._rate_window, self._clock(), packets, bytes_)
            pps = bps = None
        else:
            pps, bps = rates.add(self._clock(), packets, bytes_)  # RFC 9132: bps-dropped is bytes per second
        pkts_passed, bytes_passed = passed if passed is not None else (None, None)
        return Counters(
            bytes_dropped=bytes_,
            pkts_dropped=packets,
            bps_dropped=bps,
            pps_dropped=pps,
            bytes_passed=bytes_passed,
            pkts_passed=pkts_passed,
        )

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
            # Talkers rate-limited when we stopped counted their drops in the watch table: those counts go on.
            limited = await self._watch_counters(expected=False) or {}
            for scope in valid:
                if counter_name(scope.key) not in carried and limited_counter_name(scope.key) in limited:
                    carried[counter_name(scope.key)] = limited[limited_counter_name(scope.key)]
            plan = plan_change(self.table, RulesetState(), put=valid, carried_counters=carried, put_acls=valid_acls)
            # Top-talker policies start again only with a new request: after a restart the whole scope is enforced.
            # The passed counts start again from zero (the rates restart their baseline when a sum goes back).
            counted = {scope.key: scope for scope in valid} if self.count_passed else {}
            rewatch = watch_commands(self.table, {}, {}, {}, counted) or watch_table(self.table).reset_commands()
            # The breakdown counters of a leftover table go on (`add` keeps them).
            broken = complete({scope.key: scope for scope in valid}) if self.count_breakdown else {}
            rebreak = breakdown_commands(self.table, {}, broken) or breakdown_table(self.table).reset_commands()
            await self._commit(plan, rewatch + rebreak)
            self._policies = {}
            self._watched = {}
            self._counted, self._broken = counted, broken
            now = self._clock()
            self._rates = {
                scope.key: DropRates(self._rate_window, now, *carried.get(counter_name(scope.key), (0, 0)))
                for scope in valid
            }
        return refused

    async def cleanup(self) -> None:
        """Remove the table (and with it every rule, map and counter of this mitigator)."""
        async with self._lock:
            commands = self.table.reset_commands() + watch_table(self.table).reset_commands()
            commands += breakdown_table(self.table).reset_commands()
            await self._nft("-j", "-f", "-", stdin=json.dumps(batch(commands)))
            self._state = RulesetState()
            self._rates.clear()
            self._policies = {}
            self._watched = {}
            self._counted, self._broken = {}, {}

    @property
    def active_keys(self) -> list[str]:
        return list(dict.fromkeys([*self._state.scopes, *self._watched]))

    @property
    def active_acls(self) -> list[str]:
        return list(self._state.acls)

    # ---- nft ----

    async def _change(self, policies: dict[str, SourcesFirst] | None = None, **change: Any) -> None:
        """Plan CHANGE on top of the current state and commit it; rebuild the table first if it vanished.

        POLICIES (when given) become the mitigations under the top-talker policy: the watch table follows those in
        their narrow phase in the same batch. A mitigation whose talkers become rate-limited leaves our table (its
        counts seed the watch table's); one that leaves the rate limit gets them back."""
        policies = self._policies if policies is None else policies
        rate = self.top_talkers.rate_limit
        watched = {key: Watch(p.scope, p.limited, rate) for key, p in policies.items() if p.phase is Phase.NARROW}
        limits = {key for key, watch in watched.items() if watch.limited is not None}
        entering = [key for key in limits if not self._watched.get(key) and key in self._state.scopes]
        put_keys = {scope.key for scope in change.get("put", ())}
        leaving = [key for key, limited in self._watched.items() if limited and key in put_keys and key not in limits]
        if entering:
            counts = await self._existing_counters()
            for key in entering:
                watched[key] = replace(watched[key], seed=counts.get(counter_name(key), (0, 0)))
            change["remove"] = [*change.get("remove", ()), *entering]
        if leaving:
            counts = await self._watch_counters() or {}
            change["carried_counters"] = {counter_name(k): counts.get(limited_counter_name(k), (0, 0)) for k in leaving}
        plan = plan_change(self.table, self._state, **change)  # invalid input raises here, nothing sent
        after = {key: key in limits for key in watched}
        counted = self._to_count(plan.state, policies, watched)
        broken = self._to_break(plan.state, policies, watched)
        rebreak = breakdown_commands(self.table, {}, broken)  # after a table vanished: built again, nothing deleted
        more = watch_commands(self.table, self._watched, watched, self._counted, counted)
        try:
            await self._commit(plan, more + breakdown_commands(self.table, self._broken, broken))
            self._policies, self._watched, self._counted, self._broken = policies, after, counted, broken
        except MitigatorError:
            if not self._state.initialized or await self._table_present(self.table):
                watch_gone = bool(self._watched or self._counted) and not await self._table_present(
                    watch_table(self.table)
                )
                breakdown_gone = bool(self._broken) and not await self._table_present(breakdown_table(self.table))
                if not (watch_gone or breakdown_gone):
                    raise
                # Only a counting table is gone (deleted by hand...): build it again whole, with this change (the
                # breakdown table's rebuild keeps whatever counters it holds).
                if watch_gone:
                    more = watch_commands(self.table, {}, watched, {}, counted)
                await self._commit(plan, more + rebreak)
                self._policies, self._watched, self._counted, self._broken = policies, after, counted, broken
                return
            # Our table is gone (someone flushed the ruleset, a firewall reload...): re-install everything we
            # enforce, plus this change, in one batch. Its counters went with the table.
            log.warning(
                "nftables table %s vanished: re-installing %d mitigations", self.table.name, len(self._state.scopes)
            )
            rebuilt = plan_change(
                self.table, RulesetState(), put=self._state.scopes.values(), put_acls=self._state.acls.values()
            )
            changed = plan_change(self.table, rebuilt.state, **change)
            counted = self._to_count(changed.state, policies, watched)
            broken = self._to_break(changed.state, policies, watched)
            rewatch = watch_commands(self.table, {}, watched, {}, counted) or watch_table(self.table).reset_commands()
            rewatch += breakdown_commands(self.table, {}, broken)
            await self._commit(Plan(commands=rebuilt.commands + changed.commands, state=changed.state), rewatch)
            self._policies, self._watched, self._counted, self._broken = policies, after, counted, broken
            now = self._clock()
            self._rates = {key: DropRates(self._rate_window, now) for key in self._state.scopes}

    def _to_count(
        self, state: RulesetState, policies: dict[str, SourcesFirst], watched: dict[str, Watch]
    ) -> dict[str, MitigationScope]:
        return _counted(state, policies, watched) if self.count_passed else {}

    def _to_break(
        self, state: RulesetState, policies: dict[str, SourcesFirst], watched: dict[str, Watch]
    ) -> dict[str, MitigationScope]:
        return complete(_counted(state, policies, watched)) if self.count_breakdown else {}

    async def _table_present(self, table: Table) -> bool:
        try:
            await self._nft("list", "table", table.family, table.name)
        except MitigatorError:
            return False
        return True

    async def _commit(self, plan: Plan, more: list[JsonCommand] | None = None) -> None:
        """Send PLAN's commands, and MORE (the watch table's) in the same atomic batch."""
        commands = plan.commands + (more or [])
        if commands:
            await self._nft("-j", "-f", "-", stdin=json.dumps(batch(commands)))
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
        """`nft ARGUMENTS` (STDIN: what `-f -` reads) in the mitigator's namespace, in-process when possible."""
        if not self.in_process:
            return await self._run([self._nft_binary, *arguments], stdin)
        json_output = arguments[:1] == ("-j",)
        words = arguments[1:] if json_output else arguments
        # The words are nft keywords and names checked against NFT_NAME/INTERFACE_NAME: joining them is safe.
        command = stdin if words == ("-f", "-") and stdin is not None else " ".join(words)
        try:
            return await libnftables.run(self._namespace_path(), command, json_output=json_output, timeout=NFT_TIMEOUT)
        except libnftables.NftError as error:
            raise MitigatorError(f"nft: {str(error)[:MAX_ERROR_CHARS]}") from error
        except TimeoutError as error:
            raise MitigatorError(f"nft did not answer within {NFT_TIMEOUT} s") from error

    def _namespace_path(self) -> str | None:
        if self.netns is None:
            return None
        return self.netns if self.netns.startswith("/") else f"/run/netns/{self.netns}"

    async def _run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        """Run ARGV in the mitigator's network namespace; a failure becomes MitigatorError with the tool's message."""
        command = list(argv)
        path = self._namespace_path()
        if path is not None:
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


def _counted(
    state: RulesetState, policies: dict[str, SourcesFirst], watched: dict[str, Watch]
) -> dict[str, MitigationScope]:
    """Every mitigation enforced after a change (in our table, or rate-limited in the watch table), by key, with the
    scope whose target prefixes it protects (the whole one, not the top-talker policy's narrow form)."""
    keys = [*state.scopes, *(key for key in watched if key not in state.scopes)]
    return {key: policies[key].scope if key in policies else state.scopes[key] for key in keys}


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
