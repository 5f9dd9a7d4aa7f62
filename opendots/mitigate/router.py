"""Several actuators behind one Mitigator: each [[mitigators]] entry of server.toml says which clients and target
prefixes it is responsible for, and every matching actuator acts on a mitigation.

    [[mitigators]]
    type = "nftables"            # or "bgp" (keys of opendots.mitigate.bgp.settings) or "logging"
    interface = "eth1"
    table = "opendots"
    netns = "edge"               # optional
    clients = ["client"]         # optional: names from [[clients]]; default every client
    prefixes = ["203.0.113.0/24"]  # optional: only targets inside these; default every target

An actuator given `prefixes` receives only the part of a scope that lies inside them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from opendots.config import ConfigError, ServerConfig
from opendots.domain import Counters, IPNetwork, MitigationScope
from opendots.mitigate.base import (
    AclActuator,
    Lifecycle,
    LoggingMitigator,
    Mitigator,
    MitigatorError,
    Restorable,
    read_counters,
    refused_by,
)
from opendots.mitigate.top_talkers import PolicyStatus, TopTalkerSettings, top_talker_status

if TYPE_CHECKING:
    from opendots.mitigate.nftables_acl import AclPolicy

log = logging.getLogger(__name__)
M = TypeVar("M", Mitigator, AclActuator)  # whatever is withdrawn from: both have a name

SELECTION_KEYS = ("type", "clients", "prefixes")


@dataclass(frozen=True)
class Assignment:
    """One actuator and the part of the traffic it is responsible for."""

    mitigator: Mitigator
    clients: frozenset[str] = frozenset()  # client names; empty: every client
    prefixes: tuple[IPNetwork, ...] = ()  # empty: every target

    def part_of(self, client: str | None, scope: MitigationScope) -> MitigationScope | None:
        """The piece of SCOPE this actuator handles, or None when it handles none of it."""
        if self.clients and client not in self.clients:
            return None
        if not self.prefixes:
            return scope
        inside = tuple(
            target
            for target in scope.target_prefixes
            if any(target.version == own.version and target.subnet_of(own) for own in self.prefixes)
        )
        return replace(scope, target_prefixes=inside) if inside else None

    def confine(self, domain: Sequence[IPNetwork]) -> tuple[IPNetwork, ...]:
        """The part of DOMAIN (a client's prefixes) this actuator is responsible for."""
        if not self.prefixes:
            return tuple(domain)
        inside: list[IPNetwork] = []
        for prefix in domain:
            for own in self.prefixes:
                if prefix.version != own.version:
                    continue
                if prefix.subnet_of(own):  # type: ignore[arg-type]
                    inside.append(prefix)
                elif own.subnet_of(prefix):  # type: ignore[arg-type]
                    inside.append(own)
        return tuple(dict.fromkeys(inside))


@dataclass
class MitigatorRouter:
    """A Mitigator that hands each scope to every assignment that covers it.

    A scope no actuator covers, or one an actuator refuses, raises MitigatorError (the mitigation is reported as
    beyond capability), but whatever the other actuators enforced stays in place: under attack, partial
    enforcement beats none.
    """

    assignments: Sequence[Assignment]
    client_names: Mapping[str, str] = field(default_factory=dict)  # cuid -> client name, for ACL policies
    name: str = "router"
    _placed: dict[str, dict[int, MitigationScope]] = field(default_factory=dict)
    _acl_placed: dict[str, set[int]] = field(default_factory=dict)

    def _plan(self, scope: MitigationScope) -> dict[int, MitigationScope]:
        plan = {}
        for index, assignment in enumerate(self.assignments):
            part = assignment.part_of(scope.client, scope)
            if part is not None:
                plan[index] = part
        return plan

    async def apply(self, scope: MitigationScope) -> None:
        await self.update(scope)

    async def update(self, scope: MitigationScope) -> None:
        plan = self._plan(scope)
        if not plan:
            raise MitigatorError(f"no mitigator is configured for the targets of {scope.key}")
        before = self._placed.get(scope.key, {})
        placed: dict[int, MitigationScope] = {}
        failures = []
        for index in before.keys() - plan.keys():
            try:
                await self.assignments[index].mitigator.withdraw(scope.key)
            except MitigatorError as error:
                failures.append(f"{self.assignments[index].mitigator.name}: {error}")
                placed[index] = before[index]
        for index, part in plan.items():
            mitigator = self.assignments[index].mitigator
            try:
                if index in before:
                    await mitigator.update(part)
                else:
                    await mitigator.apply(part)
                placed[index] = part
            except MitigatorError as error:
                failures.append(f"{mitigator.name}: {error}")
                if index in before:
                    placed[index] = before[index]
        self._placed[scope.key] = placed
        if failures:
            raise MitigatorError("; ".join(failures))

    def top_talker_status(self, key: str) -> PolicyStatus | None:
        """What the top-talker policy did for mitigation KEY on the first actuator applying it (None: none)."""
        for mitigator in self.placed_on(key):
            status = top_talker_status(mitigator, key)
            if status is not None:
                return status
        return None

    def placed_on(self, key: str) -> list[Mitigator]:
        """The actuators mitigation KEY was handed to (the operator's console shows which one enforces it)."""
        return [self.assignments[index].mitigator for index in self._placed.get(key, {})]

    async def withdraw(self, key: str) -> None:
        mitigators = [self.assignments[index].mitigator for index in self._placed.pop(key, {})]
        await _withdraw_from(mitigators, lambda mitigator: mitigator.withdraw(key))

    # ---- Data-channel ACLs: only actuators with apply_acl/withdraw_acl (nftables) enforce them ----

    def _acl_plan(self, policy: AclPolicy) -> dict[int, AclPolicy]:
        client = None if policy.cuid is None else self.client_names.get(policy.cuid)
        plan = {}
        for index, assignment in enumerate(self.assignments):
            if not isinstance(assignment.mitigator, AclActuator):
                continue
            if assignment.clients and client not in assignment.clients:
                continue
            domain = assignment.confine(policy.domain)
            if domain:
                plan[index] = replace(policy, domain=domain)
        return plan

    def can_enforce_acl(self, policy: AclPolicy) -> bool:
        """True when at least one configured actuator would enforce (part of) this ACL."""
        return bool(self._acl_plan(policy))

    async def apply_acl(self, policy: AclPolicy) -> None:
        """Enforce a client ACL (an AclPolicy) on every ACL-capable actuator responsible for part of its domain.

        Raises MitigatorError when no actuator can enforce it, or one refused it (the others keep theirs)."""
        plan = self._acl_plan(policy)
        before = self._acl_placed.get(policy.key, set())
        failures = []
        placed = set()
        for index in before - plan.keys():
            try:
                await self._acl_enforcer(index).withdraw_acl(policy.key)
            except MitigatorError as error:
                failures.append(f"{self.assignments[index].mitigator.name}: {error}")
                placed.add(index)
        for index, part in plan.items():
            mitigator = self._acl_enforcer(index)
            try:
                await mitigator.apply_acl(part)
                placed.add(index)
            except MitigatorError as error:
                failures.append(f"{mitigator.name}: {error}")
                if index in before:
                    placed.add(index)
        self._acl_placed[policy.key] = placed
        if not plan:
            raise MitigatorError(f"no configured mitigator can enforce ACL {policy.key}")
        if failures:
            raise MitigatorError("; ".join(failures))

    async def withdraw_acl(self, key: str) -> None:
        enforcers = [self._acl_enforcer(index) for index in self._acl_placed.pop(key, set())]
        await _withdraw_from(enforcers, lambda enforcer: enforcer.withdraw_acl(key))

    def _acl_enforcer(self, index: int) -> AclActuator:
        mitigator = self.assignments[index].mitigator
        assert isinstance(mitigator, AclActuator)  # only those are ever placed in _acl_placed or an ACL plan
        return mitigator

    @property
    def active_acls(self) -> list[str]:
        return [key for key, placed in self._acl_placed.items() if placed]

    async def counters(self, key: str) -> Counters:
        """Sum of what the actuators measured; a field stays None when no actuator measures it."""
        measured = []
        for index in self._placed.get(key, {}):
            try:
                measured.append(await self.assignments[index].mitigator.counters(key))
            except MitigatorError as error:
                log.warning("counters of %s from %s: %s", key, self.assignments[index].mitigator.name, error)
        return Counters.summed(measured)

    async def counters_many(self, keys: list[str]) -> dict[str, Counters]:
        """counters() of many keys with one batch read per actuator (read_counters)."""
        per_actuator: dict[int, list[str]] = {}
        for key in keys:
            for index in self._placed.get(key, {}):
                per_actuator.setdefault(index, []).append(key)
        measured: dict[str, list[Counters]] = {}
        for index, placed_keys in per_actuator.items():
            for key, counters in (await read_counters(self.assignments[index].mitigator, placed_keys)).items():
                measured.setdefault(key, []).append(counters)
        return {key: Counters.summed(parts) for key, parts in measured.items()}

    async def health(self) -> bool:
        results = [await assignment.mitigator.health() for assignment in self.assignments]
        return all(results)

    async def restore(self, scopes: Iterable[MitigationScope]) -> dict[str, MitigatorError]:
        """Enforce exactly SCOPES after a restart; returns the keys that could not be enforced, with the reason.

        Actuators with a `restore` of their own replace whatever an earlier run left behind (mitigations that
        ended while the server was down disappear); the others get each of their scopes applied, and what this
        router placed on them earlier and SCOPES no longer hold withdrawn (a cluster node re-applying after a gap
        in its lease checks: what ended meanwhile goes too, opendots.signal.server.shell.lease_fence).
        """
        refused: dict[str, MitigatorError] = {}
        per_actuator: dict[int, list[MitigationScope]] = {index: [] for index in range(len(self.assignments))}
        earlier = self._placed.copy()
        self._placed.clear()
        self._acl_placed.clear()  # an actuator's restore replaces its whole state: ACLs are re-applied after
        for scope in scopes:
            plan = self._plan(scope)
            if not plan:
                refused[scope.key] = MitigatorError(f"no mitigator is configured for the targets of {scope.key}")
            self._placed[scope.key] = plan
            for index, part in plan.items():
                per_actuator[index].append(part)
        for index, parts in per_actuator.items():
            mitigator = self.assignments[index].mitigator
            try:
                if isinstance(mitigator, Restorable):
                    refused.update(refused_by(mitigator, await mitigator.restore(parts)))
                else:
                    kept = {part.key for part in parts}
                    for key in sorted(k for k, placed in earlier.items() if index in placed and k not in kept):
                        try:
                            await mitigator.withdraw(key)
                        except MitigatorError as error:  # the mitigations still active are restored all the same
                            log.error("%s could not withdraw %s, which ended: %s", mitigator.name, key, error)
                    for part in parts:
                        await mitigator.apply(part)
            except MitigatorError as error:
                for part in parts:
                    refused[part.key] = error
        for key in refused:
            log.error("mitigation %s is not enforced after restart: %s", key, refused[key])
        return refused

    async def start(self) -> None:
        for assignment in self.assignments:
            if isinstance(assignment.mitigator, Lifecycle):
                await assignment.mitigator.start()

    async def stop(self) -> None:
        """Stop actuator processes (BGP speakers). Kernel state (nft tables) stays: enforcement outlives us."""
        for assignment in self.assignments:
            if isinstance(assignment.mitigator, Lifecycle):
                await assignment.mitigator.stop()


def build_actuator(
    entry: Mapping[str, Any], top_talkers: TopTalkerSettings | None = None, count_passed: bool = False
) -> Mitigator:
    """One actuator from a [[mitigators]] table (without its selection keys); TOP_TALKERS: the [mitigation]
    policy, which the nftables actuator carries out; COUNT_PASSED: whether nftables counts the traffic it lets
    through toward each mitigation's targets (RFC 9244 total-traffic), unless the entry's `count_passed` says."""
    kind = entry.get("type")
    options = {key: value for key, value in entry.items() if key not in SELECTION_KEYS}
    if kind == "nftables":
        from opendots.mitigate.nftables import NftablesMitigator

        known = {"interface", "table", "netns", "rate_limit_pps", "nat_external", "nat_state", "count_passed"}
        known |= {"count_breakdown", "backend"}
        if set(options) - known or "interface" not in options:
            raise ConfigError(
                "[[mitigators]] type nftables takes interface, table, netns, rate_limit_pps, nat_external,"
                f" nat_state, count_passed, count_breakdown, backend; got {sorted(options)}"
            )
        count_passed = options.get("count_passed", count_passed)
        count_breakdown = options.get("count_breakdown", False)  # RFC 9244 §8.3 per protocol/port: opt-in, it costs
        for name, value in (("count_passed", count_passed), ("count_breakdown", count_breakdown)):
            if not isinstance(value, bool):
                raise ConfigError(f"[[mitigators]] type nftables: {name} must be true or false")
        try:
            nftables = NftablesMitigator(
                options["interface"],
                options.get("table", "opendots"),
                options.get("netns"),
                rate_limit=options.get("rate_limit_pps"),
                top_talkers=top_talkers,
                count_passed=count_passed,
                count_breakdown=count_breakdown,
                backend=options.get("backend", "auto"),
            )
        except ValueError as error:
            raise ConfigError(f"[[mitigators]] type nftables: {error}") from None
        if "nat_external" not in options:
            return nftables
        return _nat_mapping(nftables, options)
    if kind == "bgp":
        from opendots.mitigate.bgp.settings import BgpSettings, BgpSettingsError

        try:
            return BgpSettings.from_mapping(options).build()
        except BgpSettingsError as error:
            raise ConfigError(f"[[mitigators]] type bgp: {error}") from None
    if kind == "logging":
        return LoggingMitigator()
    raise ConfigError(f"[[mitigators]] type must be nftables, bgp or logging, not {kind!r}")


def _nat_mapping(nftables: Any, options: Mapping[str, Any]) -> Mitigator:
    """The nftables mitigator of a NAT CPE: sources in nat_external mapped to internal hosts (RFC 9066 §5.3.2)."""
    from opendots.mitigate.nat import NatMappingMitigator

    external = options["nat_external"]
    if not isinstance(external, list) or not external:
        raise ConfigError("[[mitigators]] nat_external: a list of the CPE's public prefixes")
    try:
        prefixes = [ipaddress.ip_network(str(prefix)) for prefix in external]
    except ValueError as error:
        raise ConfigError(f"[[mitigators]] nat_external: {error}") from None
    state = options.get("nat_state")
    if state is not None and not isinstance(state, str):
        raise ConfigError("[[mitigators]] nat_state: a file path")
    return NatMappingMitigator(nftables, prefixes, Path(state) if state else None)


def explain(mitigator: Mitigator, key: str) -> dict[str, Any] | None:
    """What MITIGATOR (or any actuator behind it) says about how it enforces KEY beyond the scope (the hosts a
    NAT lookup matched), or None."""
    if isinstance(mitigator, MitigatorRouter):
        for assignment in mitigator.assignments:
            found = explain(assignment.mitigator, key)
            if found is not None:
                return found
        return None
    method = getattr(mitigator, "explain", None)
    return method(key) if callable(method) else None


def held_keys(mitigator: Mitigator) -> set[str] | None:
    """The mitigation keys MITIGATOR's actuators hold now, as each knows them (None: one cannot tell)."""
    if isinstance(mitigator, MitigatorRouter):
        found: set[str] = set()
        for assignment in mitigator.assignments:
            held = held_keys(assignment.mitigator)
            if held is None:
                return None
            found |= held
        return found
    if isinstance(mitigator, LoggingMitigator):
        return set(mitigator.active)
    active_keys = getattr(mitigator, "active_keys", None)  # a property of nftables, a method of BGP
    if callable(active_keys):
        active_keys = active_keys()
    return None if active_keys is None else set(active_keys)


def enforces(mitigator: Mitigator) -> bool:
    """False when only the logging mitigator is behind MITIGATOR: nothing is dropped, and operators must be told
    ("not enforced") rather than shown counts of what would be."""
    if isinstance(mitigator, MitigatorRouter):
        return any(enforces(assignment.mitigator) for assignment in mitigator.assignments)
    return not isinstance(mitigator, LoggingMitigator)


def build_router(config: ServerConfig) -> MitigatorRouter:
    """The server's mitigators from its configuration; with none configured, the logging mitigator alone."""
    known_clients = {client.name for client in config.clients}
    top_talkers = TopTalkerSettings.from_table(config.mitigation)
    # Passed traffic is counted only for a server that sends RFC 9244 total-traffic: it costs forwarding capacity.
    count_passed = config.signal.get("telemetry_server_originated") is True
    assignments = []
    for entry in config.mitigators or [{"type": "logging"}]:
        clients = frozenset(entry.get("clients", ()))
        if clients - known_clients:
            raise ConfigError(f"[[mitigators]] names unknown clients {sorted(clients - known_clients)}")
        try:
            prefixes = tuple(ipaddress.ip_network(p) for p in entry.get("prefixes", ()))
        except ValueError as error:
            raise ConfigError(f"[[mitigators]] prefixes: {error}") from None
        assignments.append(Assignment(build_actuator(entry, top_talkers, count_passed), clients, prefixes))
    return MitigatorRouter(assignments, {client.cuid: client.name for client in config.clients})


async def _withdraw_from(mitigators: Sequence[M], withdraw: Callable[[M], Awaitable[None]]) -> None:
    """WITHDRAW from every one of MITIGATORS, even after one failed; then one error naming every failure."""
    failures = []
    for mitigator in mitigators:
        try:
            await withdraw(mitigator)
        except MitigatorError as error:
            failures.append(f"{mitigator.name}: {error}")
    if failures:
        raise MitigatorError("; ".join(failures))
