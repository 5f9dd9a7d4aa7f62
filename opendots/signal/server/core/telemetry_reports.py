"""DOTS pre-or-ongoing-mitigation telemetry from clients (RFC 9244 §8.2): PUT, GET and DELETE on
/tm/cuid=…[/tmid=…].

A client reports, under increasing 'tmid's, what it sees of an attack on its targets: total (attack) traffic,
attack connections, attack details with top talkers. A newer 'tmid' replaces the older ones whose targets overlap
its own (§8.2); a new 'tmid' below the newest one installed is refused (4.00), as for 'tsid' (§7). A body carrying
only targets asks for server-originated telemetry (§8.3): it is kept the same way, and its GET (and the
notifications of its observers) carries what `ServerTelemetry` measured for it. Reports are kept per 'cuid' and
owned by the client that sent them; GET takes the Uri-Query filters of RFC 9244 §8.2 (the same parser and
matching as GET /mitigate). They are stored like mitigations (the decision's `SignalChanges`); how long a server
keeps them is left to it (§8.2): here until the client deletes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from opendots.config import ClientAuthorization
from opendots.domain import ScopeError, Targets
from opendots.domain.targets import parse_targets
from opendots.signal.server.core.authorization import check_authorized, resolve_aliases
from opendots.signal.server.core.bodies import telemetry_body
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import TelemetryChanged
from opendots.signal.server.core.messages import Rejected, Request, Response, error, reject
from opendots.signal.server.core.owned import OwnedIndex
from opendots.signal.server.core.paths import TelemetryPath
from opendots.signal.server.core.query import MitigationQuery, parse_mitigation_query
from opendots.signal.server.core.server_telemetry import TelemetryRequest
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.signal.server.core.telemetry_setup import Footprint
from opendots.store.records import CuidRecord, TelemetryReportRecord

if TYPE_CHECKING:
    from opendots.signal.server.core.policy import ServerSettings

TELEMETRY = "ietf-dots-telemetry:telemetry"
PRE_OR_ONGOING = "pre-or-ongoing-mitigation"
TARGET_NAMES = ("target-prefix", "target-fqdn", "target-uri", "alias-name")
RETRY_AFTER = 60  # Max-Age of a 5.03 (§8.2): a slot frees only when the client deletes a report, so not soon

ServerView = Callable[[TelemetryRequest, MitigationQuery], dict[str, Any]]
MitigationTargets = Callable[[str, str, int], Targets | None]
"""(client name, cuid, mid) → the targets of that client's mitigation, None when it has none by that 'mid'."""


@dataclass(frozen=True)
class _Held:
    record: TelemetryReportRecord
    footprint: Footprint
    targets: tuple[tuple[Targets, ...], ...]
    """Per entry: its targets (aliases resolved), or those of the mitigations its 'mid-list' names."""

    def entry_matches(self, index: int, query: MitigationQuery) -> bool:
        """RFC 9244 §8.2: every filter given matches; 'mid' against the entry's 'mid-list'."""
        if not query.present:
            return True
        targets = self.targets[index]
        if "mid" in query.present:
            mids = self.record.entries[index]["target"].get("mid-list", ())
            only_mid = replace(query, present=frozenset({"mid"}))
            if not any(only_mid.matches(Targets(), mid) for mid in mids):
                return False
        rest = replace(query, present=query.present - {"mid"})
        return not rest.present or any(rest.matches(t, 0) for t in targets)


class TelemetryReports:
    def __init__(
        self,
        settings: Callable[[], ServerSettings],
        cuid_owner: dict[str, str],
        client_named: Callable[[str], ClientAuthorization | None],
        mitigation_targets: MitigationTargets,
        check_new_cuid: Callable[[ClientAuthorization, str], None],
        server_view: ServerView = lambda request, query: {},
    ) -> None:
        self._server_view = server_view
        """(§8.3 request entry, the GET's Uri-Query) → the server-originated attributes to render in it."""
        self._settings = settings
        self._cuid_owner = cuid_owner  # shared with the mitigations: a cuid belongs to one client (RFC 9132 §4.4.1)
        self._client_named = client_named
        self._mitigation_targets = mitigation_targets
        self._check_new_cuid = check_new_cuid
        self._index: OwnedIndex[_Held] = OwnedIndex()
        """By client name, cuid, then tmid: every rule looks only at the requesting client's own reports."""

    @property
    def policy(self) -> TelemetryPolicy:
        return self._settings().telemetry

    def restored(self, records: Iterable[TelemetryReportRecord]) -> None:
        for record in records:
            client = self._client_named(record.client)
            targets = []
            for entry in record.entries:
                try:
                    targets.append(self._targets(client, record.client, record.cuid, entry["target"], False))
                except Rejected:  # an alias deleted since: its literal name still overlaps itself
                    targets.append((_literal(entry["target"]),))
            self._index.install(_Held(record, _footprint(targets), tuple(targets)))

    def cuids(self, client: str) -> list[str]:
        """The cuids under which CLIENT holds reports (the operator's views)."""
        return sorted(self._index.own(client))

    def of(self, client: str, cuid: str) -> list[TelemetryReportRecord]:
        """CLIENT's reports under CUID, by increasing tmid."""
        own = self._index.under(client, cuid)
        return [own[tmid].record for tmid in sorted(own)]

    def requests(self) -> Iterator[TelemetryRequest]:
        """Every entry asking for server-originated telemetry (§8.3: a target and nothing else), all clients."""
        for held in self._index.all():
            record = held.record
            for index, entry in enumerate(record.entries):
                if list(entry) == ["target"]:
                    yield TelemetryRequest(record.client, record.cuid, record.tmid, index, held.targets[index])

    def attack_details(self, client: str, targets: Targets) -> list[dict[str, Any]]:
        """The 'attack-detail' entries of CLIENT's reports (any cuid) whose entry targets overlap TARGETS: what the
        top-talker policy of the mitigators draws on (opendots.signal.server.core.talkers)."""
        own = self._index.own(client)
        if not own:
            return []
        wanted = _footprint([(targets,)])
        found: list[dict[str, Any]] = []
        for reports in own.values():
            for held in reports.values():
                if not held.footprint.overlaps(wanted):
                    continue
                for index, entry in enumerate(held.record.entries):
                    if entry.get("attack-detail") and _footprint([held.targets[index]]).overlaps(wanted):
                        found += entry["attack-detail"]
        return found

    def targets_of(self, record: TelemetryReportRecord) -> list[Targets]:
        """The targets of an installed report's entries (aliases resolved, 'mid-list's expanded)."""
        held = self._index.under(record.client, record.cuid).get(record.tmid)
        return [] if held is None else [t for per_entry in held.targets for t in per_entry]

    def handle(
        self, client: ClientAuthorization, path: TelemetryPath, request: Request, now: float, decision: Decision
    ) -> Response:
        if request.method == "GET":
            return self.get(client, path, request.query, request.observe == 0)
        if request.method == "PUT":
            return self._put(client, path, request, now, decision)
        if request.method == "DELETE":
            return self._delete(client, path, decision)
        raise reject("4.05", f"{request.method} is not allowed on tm")

    def _owned(self, client: ClientAuthorization, cuid: str) -> bool:
        return self._cuid_owner.get(cuid, client.name) == client.name

    # --- GET (§8.2, with the Uri-Query filters and 'c' of §8.3 and §5.4) --------------------------------

    def get(
        self, client: ClientAuthorization, path: TelemetryPath, query_text: Iterable[str], observe: bool
    ) -> Response:
        query = parse_mitigation_query(tuple(query_text))  # invalid or unsupported query types: 4.00 (§8.3)
        own = self._index.under(client.name, path.cuid) if self._owned(client, path.cuid) else {}
        tmids = sorted(own) if path.tmid is None else [path.tmid] if path.tmid in own else []
        entries = [
            self._render(own[tmid], index, query)
            for tmid in tmids
            for index in range(len(own[tmid].record.entries))
            if own[tmid].entry_matches(index, query)
        ]
        if not entries:
            raise reject("4.04", "no such pre-or-ongoing-mitigation telemetry for this DOTS client")
        return Response("2.05", body={TELEMETRY: {PRE_OR_ONGOING: entries}}, observable=observe)

    def _render(self, held: _Held, index: int, query: MitigationQuery) -> dict[str, Any]:
        """One entry of a GET response, 'tmid' first as in RFC 9244 Figure 43. Everything a client sent is
        configuration data (RFC 9132 §4.4.2): 'c=n' leaves the identifying 'tmid' and 'target', with what the
        server measured for a §8.3 request (non-configuration data: left out by 'c=c')."""
        record = held.record
        entry = record.entries[index]
        rendered = {"tmid": record.tmid, **entry}
        if query.content == "n":
            rendered = {"tmid": record.tmid, "target": entry["target"]}
        if query.content != "c" and list(entry) == ["target"]:
            request = TelemetryRequest(record.client, record.cuid, record.tmid, index, held.targets[index])
            rendered.update(self._server_view(request, query))
        return rendered

    # --- PUT (§8.2) --------------------------------------------------------------------------------

    def _put(
        self, client: ClientAuthorization, path: TelemetryPath, request: Request, now: float, decision: Decision
    ) -> Response:
        if path.tmid is None:
            raise reject("4.00", "the mandatory 'tmid' Uri-Path is missing")
        if not self._owned(client, path.cuid):
            raise reject("4.09", "this 'cuid' is already used by another DOTS client (cuid-collision)")
        entries = _entries_of(request)
        policy = self.policy
        policy.check_top_talkers(entries)
        own = self._index.own(client.name)
        installed = own.get(path.cuid, {})
        existing = installed.get(path.tmid)
        newest = max(installed, default=None)
        if existing is None and newest is not None and newest > path.tmid:
            raise reject("4.00", f"'tmid' must increase: tmid={newest} is already installed")
        targets = tuple(self._targets(client, client.name, path.cuid, entry["target"], True) for entry in entries)
        footprint = _footprint(targets)
        replaced = [
            held.record for tmid, held in installed.items() if tmid < path.tmid and footprint.overlaps(held.footprint)
        ]
        count = sum(len(reports) for reports in own.values())
        if existing is None and count - len(replaced) >= policy.max_reports_per_client:
            raise Rejected(
                error(
                    "5.03",
                    f"this DOTS client already has {policy.max_reports_per_client} telemetry reports (tmids)",
                    max_age=RETRY_AFTER,
                )
            )
        self._check_new_cuid(client, path.cuid)
        record = TelemetryReportRecord(client.name, path.cuid, path.tmid, entries)
        changes = decision.changes
        changes.put_telemetry_reports.append(record)
        changes.delete_telemetry_reports += [r.key for r in replaced]
        if path.cuid not in self._cuid_owner:
            changes.put_cuids.append(CuidRecord(path.cuid, client.name, now))

        def apply() -> None:
            self._cuid_owner.setdefault(path.cuid, client.name)
            self._index.remove(replaced)
            self._index.install(_Held(record, footprint, targets))

        decision.then(apply)
        decision.events.append(TelemetryChanged(client.name, path.cuid))
        return Response("2.04")  # §8.2: 2.04 whenever the telemetry is accepted, new 'tmid' or not

    def _targets(
        self, client: ClientAuthorization | None, name: str, cuid: str, target: dict[str, Any], strict: bool
    ) -> tuple[Targets, ...]:
        """What TARGET designates: its own members (aliases resolved, inside the client's domain when STRICT), or,
        with only a 'mid-list', the targets of those mitigations of the client (an unknown 'mid' is refused when
        STRICT: the report would be about nothing)."""
        if any(member in target for member in TARGET_NAMES):
            literal = _literal(target)
            if client is None:
                return (literal,)
            resolved = resolve_aliases(client, literal, self._settings().aliases)
            if strict:
                check_authorized(client, resolved)
            return (resolved,)
        found = []
        for mid in dict.fromkeys(target.get("mid-list", ())):
            targets = self._mitigation_targets(name, cuid, mid)
            if targets is None:
                if strict:
                    raise reject("4.00", f"'mid-list' names mid={mid}, which is not a mitigation of this DOTS client")
                continue
            found.append(targets)
        return tuple(found)

    # --- DELETE (§8.2 Figures 37, 38) ----------------------------------------------------------------

    def _delete(self, client: ClientAuthorization, path: TelemetryPath, decision: Decision) -> Response:
        """2.02 whether or not the tmid exists (as for tm-setup, §7.1.4); no tmid: every report of the cuid."""
        installed = self.of(client.name, path.cuid) if self._owned(client, path.cuid) else []
        gone = [r for r in installed if path.tmid is None or r.tmid == path.tmid]
        if gone:
            decision.changes.delete_telemetry_reports += [r.key for r in gone]
            decision.then(lambda: self._index.remove(gone))
            decision.events.append(TelemetryChanged(client.name, path.cuid))
        return Response("2.02")


def _literal(target: dict[str, Any]) -> Targets:
    try:
        return parse_targets(target)
    except ScopeError as problem:
        raise reject("4.00", f"'target': {problem}") from None


def _footprint(targets: Iterable[tuple[Targets, ...]]) -> Footprint:
    return Footprint.of_targets([t for per_entry in targets for t in per_entry])


def _entries_of(request: Request) -> list[dict[str, Any]]:
    """The 'pre-or-ongoing-mitigation' entries of a PUT, decoded and validated against ietf-dots-telemetry, checked
    against §8.2's rules (4.00)."""
    body = telemetry_body(request, "pre-or-ongoing-mitigation telemetry")
    if list(body) != [TELEMETRY] or list(body[TELEMETRY]) != [PRE_OR_ONGOING]:
        raise reject("4.00", f"the body must be '{TELEMETRY}' with a '{PRE_OR_ONGOING}' list")
    entries = body[TELEMETRY][PRE_OR_ONGOING]
    if not entries:
        raise reject("4.00", f"'{PRE_OR_ONGOING}' is empty")
    for entry in entries:
        if "tmid" in entry:
            raise reject("4.00", "'tmid' must not appear in the request body (RFC 9244 §8.2)")
        target = entry.get("target")
        if not target or not any(name in target for name in (*TARGET_NAMES, "mid-list")):
            raise reject(
                "4.00",
                "each entry needs a 'target' with a target-prefix, target-fqdn, target-uri, alias-name or mid-list",
            )
    return entries
