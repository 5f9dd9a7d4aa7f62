"""DOTS telemetry setup (RFC 9244 §7): GET, PUT and DELETE on /tm-setup/cuid=…[/tsid=…].

A client installs, under increasing 'tsid's, its telemetry configuration (§7.1), its domain's pipe capacity (§7.2)
and its normal-traffic baselines (§7.3); one kind per request. A newer 'tsid' replaces the older ones it overlaps:
any older configuration, an older pipe sharing a (link-id, unit), an older baseline sharing a target or an 'id'.
Setups are kept per 'cuid' and owned by the client that sent them: a client sees and changes only its own, and a
setup of one of its cuids that overlaps another of its cuids' pipe or baselines is a conflict (4.09, §7.5).
They are stored like mitigations (the decision's `SignalChanges`) and are not tied to a session (§7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opendots.config import ClientAuthorization
from opendots.domain import Targets
from opendots.model import ModelError, decode_telemetry
from opendots.signal.server.core.authorization import resolve_aliases
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.messages import Rejected, Request, Response, reject
from opendots.signal.server.core.paths import TelemetrySetupPath
from opendots.signal.server.core.scope import overlap
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


class TelemetrySetups:
    def __init__(self, settings: Callable[[], ServerSettings], cuid_owner: dict[str, str]) -> None:
        self._settings = settings
        self._cuid_owner = cuid_owner  # shared with the mitigations: a cuid belongs to one client (RFC 9132 §4.4.1)
        self._setups: dict[str, dict[int, TelemetrySetupRecord]] = {}
        """By cuid, then tsid."""

    @property
    def policy(self) -> TelemetryPolicy:
        return self._settings().telemetry

    def restored(self, records: Iterable[TelemetrySetupRecord]) -> None:
        for record in records:
            self._setups.setdefault(record.cuid, {})[record.tsid] = record

    def of(self, client: str, cuid: str) -> list[TelemetrySetupRecord]:
        """CLIENT's setups under CUID, by increasing tsid."""
        return sorted((r for r in self._setups.get(cuid, {}).values() if r.client == client), key=lambda r: r.tsid)

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
        if path.tsid is not None:
            found = [r for r in installed if r.tsid == path.tsid]
            if not found:
                raise reject("4.04", f"no telemetry setup with tsid={path.tsid} for this DOTS client")
            return Response("2.05", body={TELEMETRY_SETUP: {"telemetry": [_entry(found[0])]}})
        body: dict[str, Any] = {}
        if content in ("a", "n"):
            body.update(self.policy.announced())
        if content in ("a", "c"):
            entries = [_entry(r) for r in installed]
            if not any(CONFIG in r.setup for r in installed):
                entries.insert(0, {CONFIG: self.policy.default_config()})  # what is in force: the defaults
            body["telemetry"] = entries
        return Response("2.05", body={TELEMETRY_SETUP: body})

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
        installed = self.of(client.name, path.cuid)
        existing = next((r for r in installed if r.tsid == path.tsid), None)
        if existing is None and installed and installed[-1].tsid > path.tsid:
            raise reject("4.00", f"'tsid' must increase: tsid={installed[-1].tsid} is already installed")
        policy = self.policy
        replaced: list[TelemetrySetupRecord]
        if kind == CONFIG:
            policy.check_config(setup[CONFIG])
            replaced = [r for r in installed if r.tsid < path.tsid and CONFIG in r.setup]
        elif kind == PIPE:
            links = {(link["link-id"], link["unit"]) for link in setup[PIPE]}  # "0" links too: they delete
            setup = {PIPE: policy.check_pipe(setup[PIPE])}
            self._check_domain(client, path.cuid, lambda r: PIPE in r.setup and bool(links & _links(r)), 5)
            replaced = [r for r in installed if r.tsid < path.tsid and PIPE in r.setup and links & _links(r)]
        else:
            settings = self._settings()
            targets = policy.check_baselines(client, setup[BASELINE], settings.aliases)
            ids = {entry["id"] for entry in setup[BASELINE]}

            def overlaps(record: TelemetrySetupRecord) -> bool:
                return BASELINE in record.setup and _baselines_overlap(client, record, ids, targets, settings)

            self._check_domain(client, path.cuid, overlaps, 1)
            replaced = [r for r in installed if r.tsid < path.tsid and overlaps(r)]
        if existing is None and self._count(client.name) - len(replaced) >= policy.max_setups_per_client:
            raise reject("5.03", f"this DOTS client already has {policy.max_setups_per_client} telemetry setups")
        record = TelemetrySetupRecord(client.name, path.cuid, path.tsid, setup)
        changes = decision.changes
        changes.put_telemetry_setups.append(record)
        changes.delete_telemetry_setups += [r.key for r in replaced]
        if path.cuid not in self._cuid_owner:
            changes.put_cuids.append(CuidRecord(path.cuid, client.name, now))

        def apply() -> None:
            self._cuid_owner.setdefault(path.cuid, client.name)
            own = self._setups.setdefault(path.cuid, {})
            for old in replaced:
                del own[old.tsid]
            own[path.tsid] = record

        decision.then(apply)
        return Response("2.04" if existing is not None else "2.01")

    def _check_domain(
        self, client: ClientAuthorization, cuid: str, conflicts: Callable[[TelemetrySetupRecord], bool], cause: int
    ) -> None:
        """§7.5: the client's other cuids (other DOTS clients of its domain) must not hold what this one sets."""
        for other, setups in self._setups.items():
            if other == cuid:
                continue
            for record in setups.values():
                if record.client == client.name and conflicts(record):
                    what = "overlapping-targets (1)" if cause == 1 else "overlapping-pipe-scope (5)"
                    raise reject("4.09", f"conflict-cause {what} with tsid={record.tsid} of another DOTS client")

    def _count(self, client: str) -> int:
        return sum(1 for setups in self._setups.values() for r in setups.values() if r.client == client)

    # --- DELETE (§7.1.4, §7.2.3, §7.3.3, §7.4) ----------------------------------------------------

    def _delete(self, client: ClientAuthorization, path: TelemetrySetupPath, decision: Decision) -> Response:
        """2.02 whether or not the tsid exists (§7.1.4); no tsid: every setup of the cuid (§7.4)."""
        installed = self.of(client.name, path.cuid) if self._owned(client, path.cuid) else []
        gone = [r for r in installed if path.tsid is None or r.tsid == path.tsid]
        if gone:
            decision.changes.delete_telemetry_setups += [r.key for r in gone]

            def apply() -> None:
                own = self._setups[path.cuid]
                for record in gone:
                    del own[record.tsid]
                if not own:
                    del self._setups[path.cuid]

            decision.then(apply)
        return Response("2.02")


def _setup_of(request: Request) -> dict[str, Any]:
    """The one 'telemetry' entry a PUT may carry, decoded and validated against ietf-dots-telemetry, else 4.00."""
    if request.payload is None and request.body is None:
        raise reject("4.00", "a telemetry setup request needs a body")
    body = request.body
    if request.payload is not None:
        try:
            body = decode_telemetry(request.payload)
        except ModelError as problem:
            raise reject(problem.code, problem.diagnostic) from None
    if not isinstance(body, dict) or list(body) != [TELEMETRY_SETUP]:
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


def _links(record: TelemetrySetupRecord) -> set[tuple[str, str]]:
    return {(link["link-id"], link["unit"]) for link in record.setup[PIPE]}


def _baselines_overlap(
    client: ClientAuthorization,
    record: TelemetrySetupRecord,
    ids: set[int],
    targets: list[Targets],
    settings: ServerSettings,
) -> bool:
    """§7.3.1: a common 'id', or overlapping targets (a common address, prefix, FQDN, URI or alias; the whole
    domain, no target, overlaps only the whole domain)."""
    for entry in record.setup[BASELINE]:
        if entry["id"] in ids:
            return True
        theirs = _resolved(client, entry, settings)
        for mine in targets:
            if theirs == mine or (WHOLE_DOMAIN not in (theirs, mine) and overlap(theirs, mine) is not None):
                return True
    return False


def _resolved(client: ClientAuthorization, entry: dict[str, Any], settings: ServerSettings) -> Targets:
    targets = baseline_targets(entry)
    try:
        return resolve_aliases(client, targets, settings.aliases)
    except Rejected:
        return targets  # an alias deleted since: its literal name still overlaps
