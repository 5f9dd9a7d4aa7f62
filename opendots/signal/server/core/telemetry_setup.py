"""DOTS telemetry setup (RFC 9244 §7): GET, PUT and DELETE on /tm-setup/cuid=…[/tsid=…].

A client installs, under increasing 'tsid's, its telemetry configuration (§7.1), its domain's pipe capacity (§7.2)
and its normal-traffic baselines (§7.3); one kind per request. A newer 'tsid' replaces the older ones it overlaps:
any older configuration, an older pipe sharing a (link-id, unit), an older baseline sharing a target or an 'id'
(addresses, FQDNs, URIs, aliases: §7.3.1; ports and protocols are not looked at).
Setups are kept per 'cuid' and owned by the client that sent them: a client sees and changes only its own, and a
setup of one of its cuids that overlaps another of its cuids' pipe or baselines is a conflict (4.09, §7.5).
They are stored like mitigations (the decision's `SignalChanges`) and are not tied to a session (§7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from opendots.config import ClientAuthorization
from opendots.domain import Targets
from opendots.signal.server.core.authorization import resolve_aliases
from opendots.signal.server.core.bodies import telemetry_body
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import TelemetrySetupChanged
from opendots.signal.server.core.messages import Rejected, Request, Response, reject
from opendots.signal.server.core.owned import OwnedIndex
from opendots.signal.server.core.paths import TelemetrySetupPath
from opendots.signal.server.core.telemetry_config import TelemetryPolicy, baseline_targets
from opendots.store.records import CuidRecord, TelemetrySetupRecord

if TYPE_CHECKING:
    from opendots.signal.server.core.policy import ServerSettings

TELEMETRY_SETUP = "ietf-dots-telemetry:telemetry-setup"
CONFIG, PIPE, BASELINE = "current-config", "total-pipe-capacity", "baseline"
KINDS = (CONFIG, PIPE, BASELINE)
WHOLE_DOMAIN = Targets()  # a baseline without target members (§7.3.1)


def kind_of(setup: dict[str, Any]) -> str:
    return next(kind for kind in KINDS if kind in setup)


@dataclass(frozen=True)
class Footprint:
    """What a setup holds, for the override rules (§7.2.1, §7.3.1) and the conflicts of one domain (§7.5): its
    (link-id, unit) pairs, or its baselines' ids and targets (addresses as sorted integer ranges, names as sets)."""

    links: frozenset[tuple[str, str]] = frozenset()
    ids: frozenset[int] = frozenset()
    whole_domain: bool = False
    """A baseline without target members: the client domain as a whole, which overlaps only itself."""
    ranges: tuple[tuple[int, int], ...] = ()
    names: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of_links(cls, links: Iterable[dict[str, Any]]) -> Footprint:
        return cls(links=frozenset((link["link-id"], link["unit"]) for link in links))

    @classmethod
    def of_baselines(cls, entries: list[dict[str, Any]], targets: list[Targets]) -> Footprint:
        return replace(cls.of_targets(targets), ids=frozenset(entry["id"] for entry in entries))

    @classmethod
    def of_targets(cls, targets: list[Targets]) -> Footprint:
        """What TARGETS cover, for the overlap rules of baselines (§7.3.1) and pre-or-ongoing telemetry (§8.2)."""
        ranges = sorted(
            ((version << 128) + first, (version << 128) + last)  # v4 and v6 on one line, never meeting
            for t in targets
            for version, first, last in t.prefix_ranges
        )
        names = {("fqdn", n) for t in targets for n in t.target_fqdns}
        names |= {("uri", u) for t in targets for u in t.target_uris}
        names |= {("alias", a) for t in targets for a in t.alias_names}
        return cls(
            whole_domain=any(t == WHOLE_DOMAIN for t in targets),
            ranges=tuple(ranges),
            names=frozenset(names),
        )

    def overlaps(self, other: Footprint) -> bool:
        if self.links & other.links or self.ids & other.ids or self.names & other.names:
            return True
        return (self.whole_domain and other.whole_domain) or _ranges_meet(self.ranges, other.ranges)


def _ranges_meet(first: tuple[tuple[int, int], ...], second: tuple[tuple[int, int], ...]) -> bool:
    """Whether two lists of address ranges, each sorted by start, share an address: one linear sweep, so that
    thousands of prefixes cost thousands of steps, not millions."""
    i = j = 0
    while i < len(first) and j < len(second):
        (low, high), (other_low, other_high) = first[i], second[j]
        if low <= other_high and other_low <= high:
            return True
        if high < other_high:  # FIRST[i] lies wholly before SECOND[j], hence before every later one
            i += 1
        else:
            j += 1
    return False


class _Installed(NamedTuple):
    record: TelemetrySetupRecord
    footprint: Footprint


class TelemetrySetups:
    def __init__(
        self,
        settings: Callable[[], ServerSettings],
        cuid_owner: dict[str, str],
        client_named: Callable[[str], ClientAuthorization | None],
    ) -> None:
        self._settings = settings
        self._cuid_owner = cuid_owner  # shared with the mitigations: a cuid belongs to one client (RFC 9132 §4.4.1)
        self._client_named = client_named
        self._index: OwnedIndex[_Installed] = OwnedIndex()
        """By client name, cuid, then tsid: every rule looks only at the requesting client's own setups."""

    @property
    def policy(self) -> TelemetryPolicy:
        return self._settings().telemetry

    def restored(self, records: Iterable[TelemetrySetupRecord]) -> None:
        for record in records:
            self._index.install(_Installed(record, self._footprint(record)))

    def replace_for(self, client: str, records: Iterable[TelemetrySetupRecord]) -> list[str]:
        """What another node stored for CLIENT (all its setups, every cuid) held instead of what this one held; the
        cuids whose setups changed (none: an echo, or a second read)."""
        old = {r.key: r for held in self._index.all_of(client) for r in (held.record,)}
        new = {r.key: r for r in records if r.client == client}
        if old == new:
            return []
        changed = {key[0] for key in old.keys() ^ new.keys()} | {
            k[0] for k in old.keys() & new.keys() if old[k] != new[k]
        }
        self._index.remove(list(old.values()))
        for record in new.values():
            self._cuid_owner.setdefault(record.cuid, client)
            self._index.install(_Installed(record, self._footprint(record)))
        return sorted(changed)

    def cuids(self, client: str) -> list[str]:
        """The cuids under which CLIENT holds setups (the operator's views)."""
        return sorted(self._index.own(client))

    def of(self, client: str, cuid: str) -> list[TelemetrySetupRecord]:
        """CLIENT's setups under CUID, by increasing tsid."""
        own = self._index.under(client, cuid)
        return [own[tsid].record for tsid in sorted(own)]

    def config_of(self, client: str, cuid: str) -> dict[str, Any]:
        """The telemetry configuration in force for CLIENT's CUID: the server's defaults, with the newest installed
        'current-config' over them (§7.1.2: attributes not conveyed keep their defaults)."""
        config = self.policy.default_config()
        own = self._index.under(client, cuid)
        for tsid in sorted(own, reverse=True):
            setup = own[tsid].record.setup
            if CONFIG in setup:
                units = {item["unit"]: item for item in config["unit-config"]}
                units.update({item["unit"]: item for item in setup[CONFIG].get("unit-config", ())})
                config.update(setup[CONFIG])
                config["unit-config"] = list(units.values())  # per unit class: one not conveyed keeps its default
                break
        return config

    def handle(
        self, client: ClientAuthorization, path: TelemetrySetupPath, request: Request, now: float, decision: Decision
    ) -> Response:
        if request.method == "GET":
            return self._get(client, path, request.query)
        if request.method == "PUT":
            return self._put(client, path, request, now, decision)
        if request.method == "DELETE":
            return self._delete(client, path, decision)
        raise reject("4.05", f"{request.method} is not allowed on tm-setup")

    def _owned(self, client: ClientAuthorization, cuid: str) -> bool:
        return self._cuid_owner.get(cuid, client.name) == client.name

    # --- GET (§7.1.1, §7.1.3, §7.2.2, §7.3.2) -------------------------------------------------------

    def _get(self, client: ClientAuthorization, path: TelemetrySetupPath, query: tuple[str, ...]) -> Response:
        content = _content(query)
        installed = self.of(client.name, path.cuid) if self._owned(client, path.cuid) else []
        max_age = self._settings().config_max_age  # §5.4: freshness as for RFC 9132 §4.5.3
        if path.tsid is not None:
            found = [r for r in installed if r.tsid == path.tsid]
            if not found:
                raise reject("4.04", f"no telemetry setup with tsid={path.tsid} for this DOTS client")
            return Response("2.05", body={TELEMETRY_SETUP: {"telemetry": [_entry(found[0])]}}, max_age=max_age)
        body: dict[str, Any] = {}
        if content in ("a", "n"):
            body.update(self.policy.announced())
        if content in ("a", "c"):
            entries = [_entry(r) for r in installed]
            if not any(CONFIG in r.setup for r in installed):
                entries.insert(0, {CONFIG: self.policy.default_config()})  # what is in force: the defaults
            body["telemetry"] = entries
        return Response("2.05", body={TELEMETRY_SETUP: body}, max_age=max_age)

    # --- PUT (§7.1.2, §7.2.1, §7.3.1) -------------------------------------------------------------

    def _put(
        self, client: ClientAuthorization, path: TelemetrySetupPath, request: Request, now: float, decision: Decision
    ) -> Response:
        if path.tsid is None:
            raise reject("4.00", "the mandatory 'tsid' Uri-Path is missing")
        if not self._owned(client, path.cuid):
            raise reject("4.09", "this 'cuid' is already used by another DOTS client (cuid-collision)")
        setup = _setup_of(request)
        kind = kind_of(setup)
        own = self._index.own(client.name)
        installed = own.get(path.cuid, {})
        existing = installed.get(path.tsid)
        newest = max(installed, default=None)
        if existing is None and newest is not None and newest > path.tsid:
            raise reject("4.00", f"'tsid' must increase: tsid={newest} is already installed")
        policy = self.policy
        if kind == CONFIG:
            policy.check_config(setup[CONFIG])
            footprint = Footprint()
        elif kind == PIPE:
            footprint = Footprint.of_links(setup[PIPE])  # "0" links too: they delete (§7.2.1)
            setup = {PIPE: policy.check_pipe(setup[PIPE])}
        else:
            targets = policy.check_baselines(client, setup[BASELINE], self._settings().aliases)
            footprint = Footprint.of_baselines(setup[BASELINE], targets)
        if kind != CONFIG:
            self._check_domain(own, path.cuid, kind, footprint)
        replaced = [
            held.record
            for tsid, held in installed.items()
            if tsid < path.tsid and kind in held.record.setup and (kind == CONFIG or footprint.overlaps(held.footprint))
        ]
        count = sum(len(setups) for setups in own.values())
        if existing is None and count - len(replaced) >= policy.max_setups_per_client:
            raise reject("5.03", f"this DOTS client already has {policy.max_setups_per_client} telemetry setups")
        self.check_new_cuid(client, path.cuid)
        record = TelemetrySetupRecord(client.name, path.cuid, path.tsid, setup)
        changes = decision.changes
        changes.put_telemetry_setups.append(record)
        changes.delete_telemetry_setups += [r.key for r in replaced]
        if path.cuid not in self._cuid_owner:
            changes.put_cuids.append(CuidRecord(path.cuid, client.name, now))

        def apply() -> None:
            self._cuid_owner.setdefault(path.cuid, client.name)
            self._index.remove(replaced)
            self._index.install(_Installed(record, footprint))

        decision.then(apply)
        decision.events.append(TelemetrySetupChanged(client.name, path.cuid))
        return Response("2.04" if existing is not None else "2.01")

    def check_new_cuid(self, client: ClientAuthorization, cuid: str) -> None:
        """The mitigations' guard (RFC 9132 §4.4.1.3 lets a server refuse near capacity): cuids are kept for good."""
        if cuid not in self._cuid_owner:
            cuids = sum(1 for owner in self._cuid_owner.values() if owner == client.name)
            if cuids >= self._settings().max_cuids_per_client:
                raise reject("5.03", f"this DOTS client already uses {cuids} 'cuid' values (the server's limit)")

    @staticmethod
    def _check_domain(own: dict[str, dict[int, _Installed]], cuid: str, kind: str, footprint: Footprint) -> None:
        """§7.5: the client's other cuids (other DOTS clients of its domain) must not hold what this one sets."""
        for other, setups in own.items():
            if other == cuid:
                continue
            for held in setups.values():
                if kind in held.record.setup and footprint.overlaps(held.footprint):
                    what = "overlapping-targets (1)" if kind == BASELINE else "overlapping-pipe-scope (5)"
                    raise reject("4.09", f"conflict-cause {what} with tsid={held.record.tsid} of another DOTS client")

    # --- DELETE (§7.1.4, §7.2.3, §7.3.3, §7.4) ----------------------------------------------------

    def _delete(self, client: ClientAuthorization, path: TelemetrySetupPath, decision: Decision) -> Response:
        """2.02 whether or not the tsid exists (§7.1.4); no tsid: every setup of the cuid (§7.4)."""
        installed = self.of(client.name, path.cuid) if self._owned(client, path.cuid) else []
        gone = [r for r in installed if path.tsid is None or r.tsid == path.tsid]
        if gone:
            decision.changes.delete_telemetry_setups += [r.key for r in gone]
            decision.then(lambda: self._index.remove(gone))
            decision.events.append(TelemetrySetupChanged(client.name, path.cuid))
        return Response("2.02")

    def _footprint(self, record: TelemetrySetupRecord) -> Footprint:
        """A stored setup's footprint at start-up: its aliases resolved if they still are (else their names)."""
        setup = record.setup
        if PIPE in setup:
            return Footprint.of_links(setup[PIPE])
        if BASELINE not in setup:
            return Footprint()
        client = self._client_named(record.client)
        targets = []
        for entry in setup[BASELINE]:
            literal = baseline_targets(entry)
            try:
                targets.append(resolve_aliases(client, literal, self._settings().aliases) if client else literal)
            except Rejected:
                targets.append(literal)
        return Footprint.of_baselines(setup[BASELINE], targets)


def _setup_of(request: Request) -> dict[str, Any]:
    """The one 'telemetry' entry a PUT may carry, decoded and validated against ietf-dots-telemetry, else 4.00."""
    body = telemetry_body(request, "telemetry setup")
    if list(body) != [TELEMETRY_SETUP]:
        raise reject("4.00", f"the body must be '{TELEMETRY_SETUP}'")
    setup = body[TELEMETRY_SETUP]
    extra = sorted(set(setup) - {"telemetry"})
    if extra:
        raise reject("4.00", f"{extra} are sent by DOTS servers only (RFC 9244 §7.1.1)")
    entries = setup.get("telemetry", [])
    kinds = [kind for entry in entries for kind in KINDS if kind in entry]
    if len(set(kinds)) > 1:
        raise reject("4.00", "a telemetry setup carries configuration, pipe capacity or baselines, not a mix (§7)")
    if len(entries) != 1 or len(kinds) != 1:
        raise reject("4.00", "a telemetry setup request carries exactly one 'telemetry' entry with one setup")
    (entry,) = entries
    if "tsid" in entry:
        raise reject("4.00", "'tsid' must not appear in the request body (RFC 9244 §7.1.2)")
    return entry


def _content(query: tuple[str, ...]) -> str:
    """The 'c' Uri-Query (RFC 9132 §4.4.2, RFC 9244 §5.4): c (configuration), n (non-configuration), a (all)."""
    content = "a"
    for item in query:
        name, _, value = item.partition("=")
        if name != "c" or value not in ("c", "n", "a"):
            raise reject("4.00", f"unsupported Uri-Query {item!r} on tm-setup (only c=c|n|a)")
        content = value
    return content


def _entry(record: TelemetrySetupRecord) -> dict[str, Any]:
    return {"tsid": record.tsid, **record.setup}
