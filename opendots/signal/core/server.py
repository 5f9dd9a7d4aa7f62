"""The sans-I/O DOTS signal-channel server (RFC 9132): requests in, responses and events out.

    server = SignalServer(settings, store, now=time.time())
    response, events = server.handle(request, now)
    events += server.handle_timer(now)   # whenever now >= server.next_timer()

Every state change is written to the store in one transaction before the response that acknowledges it
is returned; memory is updated only after the write succeeded, so a storage failure (5.03) leaves both
unchanged. Errors are Response values; no exception leaves this object.
"""

from __future__ import annotations

import functools
import heapq
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from opendots.config import ClientAuthorization
from opendots.domain import Counters
from opendots.model import ModelError, decode_signal
from opendots.signal.core import defaults
from opendots.signal.core.announcements import Announcements
from opendots.signal.core.authorization import AliasDirectory, StaticAliasDirectory, check_authorized, resolve_aliases
from opendots.signal.core.events import (
    Event,
    HeartbeatDue,
    MitigationActivated,
    MitigationChanged,
    MitigationExpired,
    MitigationUpdated,
    MitigationWithdrawn,
    PeerBack,
    PeerLost,
    RedirectionChanged,
    SessionConfigChanged,
)
from opendots.signal.core.filtering import AclActivationControl
from opendots.signal.core.heartbeat import PeerLiveness, TimerTable
from opendots.signal.core.index import TargetIndex
from opendots.signal.core.messages import (
    HEARTBEAT,
    MITIGATION_SCOPE,
    REDIRECTED_SIGNAL,
    ConflictCause,
    ConflictStatus,
    Rejected,
    Request,
    Response,
    Status,
    error,
    reject,
)
from opendots.signal.core.mitigations import Mitigation
from opendots.signal.core.paths import ConfigPath, HeartbeatPath, MitigatePath, parse_path
from opendots.signal.core.query import parse_mitigation_query
from opendots.signal.core.scope import (
    ACL_LIST,
    MitigationRequest,
    Targets,
    overlap,
    parse_scope_body,
    parse_scope_entry,
)
from opendots.signal.core.sessionconfig import Limits, ParameterSet, SessionConfig, parse_config_body, render_config
from opendots.store.signal import CuidRecord, MitigationRecord, SessionConfigRecord, SignalChanges, SignalStore

log = logging.getLogger(__name__)

Key = tuple[str, int]
ACL_RETRY_AFTER = 60  # seconds: Max-Age of a 5.03 for a failed RFC 9133 ACL update
STORE_RETRY_DELAY = 1.0  # seconds between attempts to store timer-driven changes after a storage failure


@dataclass
class ServerSettings:
    """Server policy. Defaults follow RFC 9132 Appendix C (opendots.signal.core.defaults)."""

    clients: Sequence[ClientAuthorization]
    max_lifetime: int | None = None
    """Longest lifetime granted, in seconds; None: whatever the client asks."""
    allow_indefinite: bool = True
    """Grant lifetime -1; when False an indefinite request gets max_lifetime (or the default 3600 s)."""
    counters_interval: float = 10.0
    """Seconds between reads of the mitigators' counters; changed counters are notified to observers."""
    active_but_terminating: int = defaults.ACTIVE_BUT_TERMINATING
    max_active_but_terminating: int = defaults.MAX_ACTIVE_BUT_TERMINATING
    session_defaults: SessionConfig = field(default_factory=SessionConfig)
    limits: Limits = field(default_factory=Limits)
    config_max_age: int = 3600
    """Max-Age of GET /config responses (§4.5.3); the RFC leaves the value to deployments."""
    cross_client_conflicts: Literal["reject", "accept"] = "reject"
    """Overlap with another client's active mitigation: refuse with 4.09, or accept with conflict-status 2."""
    indefinite_retry_timer: int = defaults.LIFETIME
    """'retry-timer' when the blocking mitigation has an indefinite lifetime."""
    aliases: AliasDirectory = field(default_factory=StaticAliasDirectory)
    max_mitigations_per_client: int = 1000
    max_cuids_per_client: int = 16
    """Capacity guards: past them new requests get 5.03 (§4.4.1.3 lets a server refuse near capacity)."""
    acl_control: AclActivationControl | None = None
    """The data channel's ACLs, for RFC 9133 'acl-list' in mitigation requests; None: such requests get 4.00."""
    trusted_gateways: frozenset[str] = frozenset()
    """Names of the clients that are server-domain DOTS gateways trusted to supply 'cdid' (§4.4.1: a 'cdid'
    from anyone else is ignored)."""


@dataclass(frozen=True)
class Redirection:
    alt_server: str
    records: tuple[str, ...] = ()
    ttl: int = 2**32 - 1


class SignalServer:
    def __init__(self, settings: ServerSettings, store: SignalStore, now: float) -> None:
        self.settings = settings
        self.store = store
        self._clients = {client.cuid: client for client in settings.clients}
        self._by_name = {client.name: client for client in settings.clients}
        self._mitigations: dict[Key, Mitigation] = {}
        self._index = TargetIndex()
        self._deadlines: list[tuple[float, Key]] = []  # heap; stale entries are skipped when popped
        self._store_retry_at: float | None = None  # after a failed timer write, wait before trying again
        self._enforcing: Counter[str] = Counter()  # enforced mitigations per client (selects the config set)
        self._held: Counter[str] = Counter()  # held mitigations per client: the capacity check without a scan
        self._configs: dict[str, SessionConfig] = {}
        self._cuid_owner: dict[str, str] = {client.cuid: client.name for client in settings.clients}
        self._peers: dict[str, PeerLiveness] = {}
        self._peer_timers = TimerTable()  # each peer's next heartbeat or loss deadline
        self._liveness_dirty: set[str] = set()  # clients whose enforcement changed: parameter set may switch
        self._terminating_period: dict[str, int] = {}
        self._announcements = Announcements()  # Table 3's repeated 3/7 of preconfigured requests before 8
        self.redirection: Redirection | None = None
        self._load(now)

    # --- start-up ------------------------------------------------------------------------------------

    def set_clients(self, clients: Sequence[ClientAuthorization]) -> None:
        """Operator reload: the authorized clients and what each may protect change from the next request on.
        Sessions, peers and stored mitigations stay; a removed client's requests get 4.01, and its mitigations
        run until they end (they are not withdrawn behind its back)."""
        self.settings = replace(self.settings, clients=list(clients))
        self._clients = {client.cuid: client for client in clients}
        self._by_name = {client.name: client for client in clients}
        for client in clients:
            self._cuid_owner.setdefault(client.cuid, client.name)

    def _load(self, now: float) -> None:
        state = self.store.load()
        for cuid in state.cuids:
            self._cuid_owner.setdefault(cuid.cuid, cuid.client)
        for record in state.session_configs:
            self._configs[record.client] = SessionConfig.from_json(record.config)
        for record in state.mitigations:
            client = self._by_name.get(record.client)
            request = parse_scope_entry(record.request)  # validated when it was accepted
            targets = request.targets
            if client is not None:
                try:
                    targets = resolve_aliases(client, request.targets, self.settings.aliases)
                except Rejected as problem:
                    # An alias deleted since: keep the literal targets rather than drop an acknowledged mitigation.
                    log.warning("mitigation %s/%s: %s", record.cuid, record.mid, problem.response.diagnostic)
            self._hold(Mitigation(record, request, targets))
            # A restarted server gives each client with stored mitigations a fresh liveness clock.
            self._peers.setdefault(record.client, PeerLiveness(last_traffic=now))
        self._liveness_dirty.clear()
        for name in self._peers:
            self._sync_liveness(name, now)

    def _hold(self, mitigation: Mitigation) -> None:
        """Put MITIGATION in memory (after it was stored), keeping the overlap index in step."""
        old = self._mitigations.get(mitigation.key)
        same_targets = old is not None and old.targets is mitigation.targets  # a refresh: the index stays right
        if old is not None:
            if not same_targets:
                self._index.remove(old.key, old.targets)
            self._enforcing[old.record.client] -= old.enforcing
        else:
            self._held[mitigation.record.client] += 1
        self._mitigations[mitigation.key] = mitigation
        if not same_targets:
            self._index.add(mitigation.key, mitigation.targets)
        self._enforcing[mitigation.record.client] += mitigation.enforcing
        if (old is not None and old.enforcing) != mitigation.enforcing:
            self._liveness_dirty.add(mitigation.record.client)
        deadline = mitigation.deadline()
        if deadline is not None and (old is None or old.deadline() != deadline):  # no duplicate heap entries
            heapq.heappush(self._deadlines, (deadline, mitigation.key))

    def _release(self, key: Key) -> None:
        old = self._mitigations.pop(key)
        self._index.remove(key, old.targets)
        self._enforcing[old.record.client] -= old.enforcing
        self._held[old.record.client] -= 1
        if old.enforcing:
            self._liveness_dirty.add(old.record.client)

    def _next_deadline(self) -> float | None:
        """Earliest mitigation deadline, dropping heap entries that no longer match a held mitigation."""
        while self._deadlines:
            deadline, key = self._deadlines[0]
            held = self._mitigations.get(key)
            if held is not None and held.deadline() == deadline:
                return deadline
            heapq.heappop(self._deadlines)
        return None

    def _overlapping(self, targets: Targets) -> list[tuple[Mitigation, Targets]]:
        """Held mitigations overlapping TARGETS, with the common part, in 'mid' order."""
        found = []
        for key in self._index.candidates(targets):
            mitigation = self._mitigations[key]  # type: ignore[index]
            common = overlap(targets, mitigation.targets)
            if common is not None:
                found.append((mitigation, common))
        return sorted(found, key=lambda pair: pair[0].key)

    def restore_events(self) -> list[Event]:
        """MitigationActivated for every mitigation that must be enforced: call once after start-up, since
        actuators (BGP speakers, nftables) do not keep state across our restart."""
        return [self._activated(m) for m in self._mitigations.values() if m.enforcing]

    # --- requests ------------------------------------------------------------------------------------

    def handle(self, request: Request, now: float) -> tuple[Response, list[Event]]:
        events: list[Event] = []
        client: ClientAuthorization | None = None
        try:
            client = self._authenticate(request)
            events += self._saw_traffic(client, now)
            path = parse_path(request.path)
            if self.redirection is not None and not isinstance(path, HeartbeatPath):
                return self._redirect_response(), events
            if not (isinstance(path, MitigatePath) and request.method == "PUT"):
                request = _decoded(request)  # a mitigation PUT decodes its own: it may repeat the stored request
            if isinstance(path, MitigatePath):
                response = self._mitigate(client, path, request, now, events)
            elif isinstance(path, ConfigPath):
                response = self._config(client, path, request, now, events)
            else:
                response = self._heartbeat(client, request, now, events)
        except Rejected as refused:
            if client is not None:
                self._liveness_dirty.add(client.name)
            self._flush_liveness(now)
            return refused.response, events
        self._liveness_dirty.add(client.name)  # its traffic, and perhaps its parameters or activity, changed
        self._flush_liveness(now)
        return response, events

    def _authenticate(self, request: Request) -> ClientAuthorization:
        client = self._clients.get(request.peer) if request.peer else None
        if client is None:
            raise reject("4.01", "this DOTS client is not authorized to use this DOTS server")
        return client

    def _redirect_response(self) -> Response:
        assert self.redirection is not None
        return Response("5.03", body=self.redirect_body(), max_age=self.redirection.ttl)

    def redirect_body(self) -> dict[str, Any] | None:
        if self.redirection is None:
            return None
        body: dict[str, Any] = {"alt-server": self.redirection.alt_server}
        if self.redirection.records:
            body["alt-server-record"] = list(self.redirection.records)
        return {REDIRECTED_SIGNAL: body}

    # --- mitigate ------------------------------------------------------------------------------------

    def _mitigate(
        self, client: ClientAuthorization, path: MitigatePath, request: Request, now: float, events: list[Event]
    ) -> Response:
        if request.method == "GET":
            return self._get_mitigations(client, path, request, now)
        if request.method == "PUT":
            return self._put_mitigation(client, path, request, now, events)
        if request.method == "DELETE":
            return self._delete_mitigation(client, path, now, events)
        raise reject("4.05", f"{request.method} is not allowed on mitigate")

    def _owns_cuid(self, client: ClientAuthorization, cuid: str) -> bool:
        return self._cuid_owner.get(cuid, client.name) == client.name

    def _get_mitigations(
        self, client: ClientAuthorization, path: MitigatePath, request: Request, now: float
    ) -> Response:
        query = parse_mitigation_query(request.query)
        not_found = "no such mitigation for this DOTS client"
        if not self._owns_cuid(client, path.cuid):
            raise reject("4.04", not_found)
        if path.mid is not None:
            found = self._mitigations.get((path.cuid, path.mid))
            selected = [found] if found is not None and found.record.client == client.name else []
        else:
            selected = sorted(
                (
                    m
                    for m in self._mitigations.values()
                    if m.record.cuid == path.cuid and m.record.client == client.name
                ),
                key=lambda m: m.record.mid,
            )
        selected = [m for m in selected if query.matches(m.targets, m.record.mid)]
        if not selected:
            raise reject("4.04", not_found)
        body = {
            MITIGATION_SCOPE: {"scope": [self._current_acls(m, m.render(now, query.content), now) for m in selected]}
        }
        return Response("2.05", body=body, observable=request.observe == 0)

    def render_mitigations(
        self, client_name: str, cuid: str, mid: int | None, query: Iterable[str], now: float
    ) -> Response:
        """Re-render an observed GET (notifications for observers of all of a client's mitigations)."""
        client = self._by_name.get(client_name)
        if client is None:
            return Response("4.04", diagnostic="unknown client")
        path = ("mitigate", f"cuid={cuid}", *((f"mid={mid}",) if mid is not None else ()))
        response, _ = self.handle(Request("GET", path, peer=client.cuid, query=tuple(query)), now)
        return response

    def _put_mitigation(
        self, client: ClientAuthorization, path: MitigatePath, request: Request, now: float, events: list[Event]
    ) -> Response:
        if path.mid is None:
            raise reject("4.00", "the mandatory 'mid' Uri-Path is missing")
        if not self._owns_cuid(client, path.cuid):
            body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": {"conflict-cause": "cuid-collision"}}]}}
            raise reject("4.09", "this 'cuid' is already used by another DOTS client", body)
        key = (path.cuid, path.mid)
        existing = self._mitigations.get(key)
        payload = request.payload
        if existing is not None and payload is not None and payload == existing.payload:
            # The very bytes accepted last time for this mid (a refresh, a retransmission): decoding, validating
            # and parsing them again would give the same request. Aliases and authorization are checked anew below.
            parsed = existing.request
        else:
            body = _body(request)
            if body is None:
                raise reject("4.00", "a mitigation request needs a body")
            parsed = parse_scope_body(body)
        if request.if_match_empty:
            return self._efficacy_update(existing, parsed, now, events)
        if parsed.lifetime is None:
            raise reject("4.00", "'lifetime' is mandatory in a mitigation request")
        targets = resolve_aliases(client, parsed.targets, self.settings.aliases)
        check_authorized(client, targets)
        granted = self._grant(parsed.lifetime)
        if parsed.acl_controls and (existing is None or existing.request.same_parameters(parsed)):
            self._control_acls(client, path, parsed, now)
        if existing is not None:
            return self._refresh(client, existing, parsed, payload, targets, granted, now, events)
        return self._create(client, path, parsed, payload, targets, granted, now, events)

    def _control_acls(
        self, client: ClientAuthorization, path: MitigatePath, parsed: MitigationRequest, now: float
    ) -> None:
        """RFC 9133 §3.2.1: change the activation type of the client's data-channel ACLs named in 'acl-list'.

        Every name is checked before anything changes; the changes are stored before the mitigation, so a
        client told 5.03 can resend the request without 'acl-list' exactly as the RFC asks."""
        control = self.settings.acl_control
        if control is None:
            raise reject("4.00", f"'{ACL_LIST}' is not supported by this DOTS server (no data channel)")
        if not parsed.trigger_mitigation:
            raise reject("4.00", f"'{ACL_LIST}' is for attack time, not in a preconfigured (idle) request")
        owners: list[tuple[str, str, str]] = []
        for item in parsed.acl_controls:
            cuid = next((c for c in (path.cuid, client.cuid) if control.acl_exists(c, item.acl_name, now)), None)
            if cuid is None:
                raise reject("4.04", f"this DOTS client has no ACL named {item.acl_name!r}")
            if item.activation_type is not None:
                owners.append((cuid, item.acl_name, item.activation_type))
        refused = [(o, p) for o in owners if (p := control.enforcement_problem(*o, now)) is not None]
        if refused:
            self._acl_update_failed(path, [owner for owner, _ in refused], "; ".join(p for _, p in refused))
        for owner in owners:
            try:
                control.set_activation(*owner, now)
            except Exception as problem:  # the store is outside the core: any failure is "could not apply"
                self._acl_update_failed(path, [owner], str(problem))

    @staticmethod
    def _acl_update_failed(path: MitigatePath, failed: list[tuple[str, str, str]], reason: str) -> None:
        """5.03 naming the ACL updates that failed (RFC 9133 Figure 1); Max-Age says when to retry them."""
        log.error("RFC 9133 ACL update for %s failed: %s", path.cuid, reason)
        entries = [{"acl-name": name, "activation-type": activation} for _, name, activation in failed]
        body = {MITIGATION_SCOPE: {"scope": [{"mid": path.mid, ACL_LIST: entries}]}}
        diagnostic = f"ACL update failed: {reason}"
        raise Rejected(error("5.03", diagnostic, body, max_age=ACL_RETRY_AFTER))

    def _current_acls(self, mitigation: Mitigation, entry: dict[str, Any], now: float) -> dict[str, Any]:
        """ENTRY with the activation types its 'acl-list' names as they are now (RFC 9133 §3.2.1: a change made
        elsewhere, e.g. over the data channel, is shown in responses and notifications)."""
        control = self.settings.acl_control
        if control is None or ACL_LIST not in entry:
            return entry
        owner = self._by_name.get(mitigation.record.client)
        cuids = (mitigation.record.cuid, *((owner.cuid,) if owner else ()))
        current = []
        for item in entry[ACL_LIST]:
            name = item["acl-name"]
            found = next((t for c in cuids if (t := control.activation_type(c, name, now)) is not None), None)
            current.append({**item, "activation-type": found} if found else item)
        return {**entry, ACL_LIST: current}

    def acl_activation_changed(self, cuid: str, now: float) -> list[Event]:
        """The data channel changed CUID's ACLs: observers of its active mitigations that name ACLs are notified
        with the current activation types (RFC 9133 §3.2.1)."""
        owner = self._clients.get(cuid)
        events: list[Event] = []
        for m in self._mitigations.values():
            if not (m.enforcing and m.request.acl_controls):
                continue
            if m.record.cuid != cuid and (owner is None or m.record.client != owner.name):
                continue
            snapshot = {MITIGATION_SCOPE: {"scope": [self._current_acls(m, m.render(now), now)]}}
            events.append(
                MitigationChanged(m.record.client, m.record.cuid, m.record.mid, functools.partial(dict, snapshot))
            )
        return events

    def _grant(self, requested: int) -> int:
        cap = self.settings.max_lifetime
        if requested == defaults.INDEFINITE_LIFETIME:
            if self.settings.allow_indefinite:
                return requested
            return cap or defaults.LIFETIME
        return min(requested, cap) if cap else requested

    @staticmethod
    def _expiry(granted: int, now: float) -> float | None:
        return None if granted == defaults.INDEFINITE_LIFETIME else now + granted

    def _efficacy_update(
        self, existing: Mitigation | None, parsed: MitigationRequest, now: float, events: list[Event]
    ) -> Response:
        if existing is None:
            # §4.4.3: out-of-order efficacy update after a withdrawal is silently ignored.
            return Response("4.04", diagnostic="no such mitigation; efficacy update ignored", silent=True)
        if parsed.attack_status is None:
            raise reject("4.00", "'attack-status' is mandatory in an efficacy update")
        if not existing.request.same_parameters(parsed):
            raise reject("4.00", "an efficacy update must repeat the mitigation request's parameters unchanged")
        changes: dict[str, Any] = {"attack_status": int(parsed.attack_status)}
        if parsed.lifetime is not None:
            granted = self._grant(parsed.lifetime)
            changes.update(lifetime=granted, expires_at=self._expiry(granted, now), request=parsed.document)
        updated = existing.with_record(**changes)
        self._commit(SignalChanges(put_mitigations=[updated.record]))
        self._hold(updated)
        return Response("2.04", body=self._ack_body(updated, now))

    def _refresh(
        self,
        client: ClientAuthorization,
        existing: Mitigation,
        parsed: MitigationRequest,
        payload: bytes | None,
        targets: Targets,
        granted: int,
        now: float,
        events: list[Event],
    ) -> Response:
        if not existing.request.same_parameters(parsed):
            raise reject("4.00", "a refresh must repeat the mitigation request's parameters; use a new 'mid'")
        stored_request = existing.record.request
        # Nearly every refresh repeats the stored request: the store then rewrites only the lifetime and times.
        renewal = parsed.document is stored_request or parsed.document == stored_request
        changes: dict[str, Any] = {
            "lifetime": granted,
            "expires_at": self._expiry(granted, now),
            "request": stored_request if renewal else parsed.document,
            "terminating_until": None,
        }
        if parsed.attack_status is not None:
            changes["attack_status"] = int(parsed.attack_status)
        revived = existing.terminating
        if revived:
            # Asked again during active-but-terminating: back to active, and a longer period next time.
            changes["status"] = int(Status.ATTACK_MITIGATION_IN_PROGRESS)
            self._lengthen_terminating_period(client)
        updated = existing.with_record(**changes)
        updated.request, updated.payload = parsed, payload
        if targets != existing.targets:
            updated.targets = targets
        if renewal:
            self._commit(SignalChanges(renewed_mitigations=[updated.record]))
        else:
            self._commit(SignalChanges(put_mitigations=[updated.record]))
        self._hold(updated)
        if targets != existing.targets and updated.enforcing:
            # Same request, but an alias it names now resolves differently (data channel change).
            events.append(self._updated(updated))
        if revived:
            events.append(
                MitigationChanged(client.name, updated.record.cuid, updated.record.mid, updated.snapshot_later(now))
            )
        return Response("2.04", body=self._ack_body(updated, now))

    def _create(
        self,
        client: ClientAuthorization,
        path: MitigatePath,
        parsed: MitigationRequest,
        payload: bytes | None,
        targets: Targets,
        granted: int,
        now: float,
        events: list[Event],
    ) -> Response:
        assert path.mid is not None
        self._check_capacity(client, path.cuid)
        superseded: list[Mitigation] = []
        deactivated: list[Mitigation] = []
        overlapping = self._overlapping(targets)
        for other, common in overlapping:
            if other.record.client != client.name or other.record.cuid != path.cuid:
                continue
            if other.request.trigger_mitigation == parsed.trigger_mitigation:
                if other.record.mid > path.mid:
                    scope = {**_targets_json(common), "mid": other.record.mid}
                    info = {"conflict-cause": ConflictCause.OVERLAPPING_TARGETS.label, "conflict-scope": scope}
                    body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": info}]}}
                    raise reject("4.09", f"overlaps mitigation mid={other.record.mid}, which has a higher 'mid'", body)
                superseded.append(other)
                if other.terminating:
                    self._lengthen_terminating_period(client)
            elif parsed.trigger_mitigation and other.enforcing:
                # §4.4.1.3: an immediate request deactivates an overlapping, triggered preconfigured one.
                deactivated.append(other)
        conflict = self._cross_client_conflict(client, overlapping, parsed, now)
        status = (
            Status.ATTACK_MITIGATION_IN_PROGRESS if parsed.trigger_mitigation else Status.ATTACK_MITIGATION_SIGNAL_LOSS
        )
        record = MitigationRecord(
            client=client.name,
            cuid=path.cuid,
            mid=path.mid,
            request=parsed.document,
            lifetime=granted,
            status=int(status),
            started_at=now,
            expires_at=self._expiry(granted, now),
            attack_status=int(parsed.attack_status) if parsed.attack_status else None,
            cdid=self._trusted_cdid(client, path),
        )
        created = Mitigation(record, parsed, targets, conflict=conflict, payload=payload)
        signal_loss = int(Status.ATTACK_MITIGATION_SIGNAL_LOSS)
        parked = [m.with_record(status=signal_loss) for m in deactivated]
        changes = SignalChanges(
            put_mitigations=[record, *(m.record for m in parked)],
            delete_mitigations=[m.key for m in superseded],
        )
        if path.cuid not in self._cuid_owner:
            changes.put_cuids.append(CuidRecord(path.cuid, client.name, now))
        self._commit(changes)
        self._cuid_owner[path.cuid] = client.name
        self._hold(created)
        if created.enforcing:
            events.append(self._activated(created))
        for old in superseded:
            self._release(old.key)
            if old.enforcing:
                events.append(self._withdrawn(old, "superseded"))
            terminated = Status.ATTACK_MITIGATION_TERMINATED
            events.append(
                MitigationChanged(client.name, old.record.cuid, old.record.mid, old.snapshot_later(now, terminated))
            )
        for before, after in zip(deactivated, parked, strict=True):
            self._hold(after)
            events.append(self._withdrawn(before, "server"))
            withdrawn = Status.ATTACK_MITIGATION_WITHDRAWN
            events.append(
                MitigationChanged(
                    client.name, after.record.cuid, after.record.mid, after.snapshot_later(now, withdrawn)
                )
            )
            self._announcements.start(after.key, int(withdrawn), now)
        events.append(MitigationChanged(client.name, record.cuid, record.mid, created.snapshot_later(now)))
        return Response("2.01", body=self._ack_body(created, now))

    def _trusted_cdid(self, client: ClientAuthorization, path: MitigatePath) -> str | None:
        """§4.4.1: a server MUST ignore a 'cdid' sent directly by a DOTS client; only a configured gateway's counts."""
        if path.cdid is None or client.gateway or client.name in self.settings.trusted_gateways:
            return path.cdid
        log.info("ignoring cdid=%s from %s: not a trusted DOTS gateway", path.cdid, client.name)
        return None

    def _check_capacity(self, client: ClientAuthorization, cuid: str) -> None:
        owned = self._held[client.name]
        if owned >= self.settings.max_mitigations_per_client:
            raise reject("5.03", f"this DOTS client already has {owned} mitigation requests (the server's limit)")
        if cuid not in self._cuid_owner:
            cuids = sum(1 for owner in self._cuid_owner.values() if owner == client.name)
            if cuids >= self.settings.max_cuids_per_client:
                raise reject("5.03", f"this DOTS client already uses {cuids} 'cuid' values (the server's limit)")

    def _cross_client_conflict(
        self,
        client: ClientAuthorization,
        overlapping: list[tuple[Mitigation, Targets]],
        parsed: MitigationRequest,
        now: float,
    ) -> dict[str, Any] | None:
        """Overlap (OVERLAPPING: `_overlapping` of the request's targets) with other clients' enforced mitigations
        (§4.4.1.3). Only the overlap, expressed in the requester's own targets, is revealed, never the other
        client's identity or 'mid'."""
        if not parsed.trigger_mitigation:
            return None
        blocking = [(m, common) for m, common in overlapping if m.record.client != client.name and m.enforcing]
        if not blocking:
            return None
        common_targets = blocking[0][1]
        for _, more in blocking[1:]:
            common_targets = common_targets.merged(more)
        info: dict[str, Any] = {"conflict-cause": ConflictCause.OVERLAPPING_TARGETS.label}
        if self.settings.cross_client_conflicts == "accept":
            info = {"conflict-status": ConflictStatus.REQUEST_ACTIVE.label, **info}
            info["conflict-scope"] = _targets_json(common_targets)
            return info
        lifetimes = [m.remaining_lifetime(now) for m, _ in blocking]
        retry = self.settings.indefinite_retry_timer if -1 in lifetimes else max(lifetimes)
        info = {
            "conflict-status": ConflictStatus.REQUEST_INACTIVE_OTHER_ACTIVE.label,
            **info,
            "retry-timer": retry,
            "conflict-scope": _targets_json(common_targets),
        }
        body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": info}]}}
        raise reject("4.09", "the request overlaps a mitigation that is already active for another DOTS client", body)

    def _ack_body(self, mitigation: Mitigation, now: float) -> dict[str, Any]:
        entry: dict[str, Any] = {"mid": mitigation.record.mid, "lifetime": mitigation.remaining_lifetime(now)}
        if mitigation.conflict:
            entry["conflict-information"] = mitigation.conflict
        return {MITIGATION_SCOPE: {"scope": [entry]}}

    def _delete_mitigation(
        self, client: ClientAuthorization, path: MitigatePath, now: float, events: list[Event]
    ) -> Response:
        if path.mid is None:
            raise reject("4.00", "the mandatory 'mid' Uri-Path is missing")
        found = self._mitigations.get((path.cuid, path.mid))
        # §4.4.4: 2.02 even when the mid does not exist; another client's mitigation "does not exist".
        if found is None or found.record.client != client.name or found.terminating:
            return Response("2.02")
        if found.enforcing:
            period = self._terminating_period.get(client.name, self.settings.active_but_terminating)
            updated = found.with_record(
                status=int(Status.DOTS_CLIENT_WITHDRAWN_MITIGATION), terminating_until=now + period
            )
            self._commit(SignalChanges(put_mitigations=[updated.record]))
            self._hold(updated)
            events.append(MitigationChanged(client.name, path.cuid, path.mid, updated.snapshot_later(now)))
        else:
            self._commit(SignalChanges(delete_mitigations=[found.key]))
            self._release(found.key)
            terminated = Status.ATTACK_MITIGATION_TERMINATED
            events.append(MitigationChanged(client.name, path.cuid, path.mid, found.snapshot_later(now, terminated)))
        return Response("2.02")

    def _lengthen_terminating_period(self, client: ClientAuthorization) -> None:
        current = self._terminating_period.get(client.name, self.settings.active_but_terminating)
        self._terminating_period[client.name] = min(2 * current, self.settings.max_active_but_terminating)

    # --- config --------------------------------------------------------------------------------------

    def session_config(self, client_name: str) -> SessionConfig:
        return self._configs.get(client_name, self.settings.session_defaults)

    def _config(
        self, client: ClientAuthorization, path: ConfigPath, request: Request, now: float, events: list[Event]
    ) -> Response:
        current = self._configs.get(client.name)
        if request.method == "GET":
            if path.sid is not None and (current is None or current.sid != path.sid):
                raise reject("4.04", f"no session configuration with sid={path.sid}")
            body = render_config(self.session_config(client.name), self.settings.limits)
            return Response("2.05", body=body, max_age=self.settings.config_max_age, observable=request.observe == 0)
        if request.method == "PUT":
            if path.sid is None:
                raise reject("4.00", "the mandatory 'sid' Uri-Path is missing")
            if current is not None and current.sid is not None and path.sid < current.sid:
                raise reject("4.00", f"'sid' must increase: sid={current.sid} is already installed")
            config = parse_config_body(request.body, self.settings.session_defaults, self.settings.limits, path.sid)
            self._commit(SignalChanges(put_session_configs=[SessionConfigRecord(client.name, config.to_json())]))
            self._configs[client.name] = config
            self._config_changed(client.name, now, events)
            return Response("2.04" if current is not None and current.sid == path.sid else "2.01")
        if request.method == "DELETE":
            if path.sid is not None and (current is None or current.sid != path.sid):
                raise reject("4.04", f"no session configuration with sid={path.sid}")
            if current is not None:
                self._commit(SignalChanges(delete_session_configs=[client.name]))
                del self._configs[client.name]
                self._config_changed(client.name, now, events)
            return Response("2.02")
        raise reject("4.05", f"{request.method} is not allowed on config")

    def _config_changed(self, client_name: str, now: float, events: list[Event]) -> None:
        peer = self._peers.get(client_name)
        if peer is not None:
            peer.rearm(now, self._parameters(client_name))
        events.append(SessionConfigChanged(client_name))

    # --- heartbeat -----------------------------------------------------------------------------------

    def _heartbeat(self, client: ClientAuthorization, request: Request, now: float, events: list[Event]) -> Response:
        if request.method != "PUT":
            raise reject("4.05", f"{request.method} is not allowed on hb")
        body = request.body
        content = body.get(HEARTBEAT) if isinstance(body, dict) and set(body) == {HEARTBEAT} else None
        if not isinstance(content, dict) or set(content) != {"peer-hb-status"}:
            raise reject("4.00", f"a heartbeat body is {{'{HEARTBEAT}': {{'peer-hb-status': true|false}}}}")
        if not isinstance(content["peer-hb-status"], bool):
            raise reject("4.00", "'peer-hb-status' must be true or false")
        peer = self._peers[client.name]
        peer.last_client_heartbeat = now
        if not content["peer-hb-status"]:
            # The client does not hear our heartbeats: send one right away (§4.7).
            parameters = self._parameters(client.name)
            events.append(HeartbeatDue(client.name, peer.peer_hb_status(now, parameters)))
            peer.rearm(now, parameters)
        return Response("2.04")

    def note_traffic(self, client_name: str, now: float) -> list[Event]:
        """Anything else received from a client: a heartbeat response, a new session (§4.7)."""
        client = self._by_name.get(client_name)
        if client is None:
            return []
        events = self._saw_traffic(client, now)
        self._flush_liveness(now)
        return events

    def client_name(self, peer: str | None) -> str | None:
        client = self._clients.get(peer) if peer else None
        return client.name if client else None

    def _sync_liveness(self, client_name: str, now: float) -> None:
        """Arm CLIENT_NAME's heartbeat clock for the parameter set in force, and (re)schedule its timers."""
        peer = self._peers.get(client_name)
        if peer is None:
            return
        parameters = self._parameters(client_name)
        peer.sync(now, parameters)
        deadlines = [d for d in (peer.loss_deadline(parameters), peer.heartbeat_deadline(parameters)) if d is not None]
        self._peer_timers.set(client_name, min(deadlines, default=None))

    def _flush_liveness(self, now: float) -> None:
        while self._liveness_dirty:
            self._sync_liveness(self._liveness_dirty.pop(), now)

    def _next_peer_due(self) -> float | None:
        earliest = self._peer_timers.earliest()
        return earliest[0] if earliest is not None else None

    def _parameters(self, client_name: str) -> ParameterSet:
        return self.session_config(client_name).for_activity(self._enforcing[client_name] > 0)

    def _saw_traffic(self, client: ClientAuthorization, now: float) -> list[Event]:
        parameters = self._parameters(client.name)
        peer = self._peers.get(client.name)
        if peer is None:
            self._peers[client.name] = peer = PeerLiveness(last_traffic=now)
        revived = peer.saw_traffic(now, parameters)
        self._liveness_dirty.add(client.name)  # synced once the request is handled (handle, note_traffic)
        return [PeerBack(client.name)] if revived else []

    # --- timers --------------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """When handle_timer() next has something to do (absolute time), None when nothing is pending."""
        first = self._next_deadline()
        deadlines = [first] if first is not None else []
        if (announcement_due := self._announcements.next_due()) is not None:
            deadlines.append(announcement_due)
        peer_due = self._next_peer_due()
        if peer_due is not None:
            deadlines.append(peer_due)
        earliest = min(deadlines, default=None)
        if earliest is not None and self._store_retry_at is not None:
            return max(earliest, self._store_retry_at)
        return earliest

    def handle_timer(self, now: float) -> list[Event]:
        if self._store_retry_at is not None and now < self._store_retry_at:
            return []
        events: list[Event] = []
        events += self._repeat_announcements(now)
        try:
            events += self._expire(now)
            self._flush_liveness(now)
            self._check_peers(now, events)
            self._flush_liveness(now)
        except Rejected as problem:  # storage failed: memory untouched, retried shortly (not in a busy loop)
            log.error("signal timer: %s", problem.response.diagnostic)
            self._store_retry_at = now + STORE_RETRY_DELAY
        else:
            self._store_retry_at = None
        return events

    def _repeat_announcements(self, now: float) -> list[Event]:
        signal_loss = Status.ATTACK_MITIGATION_SIGNAL_LOSS

        def still_parked(key: Any) -> bool:
            mitigation = self._mitigations.get(key)
            return mitigation is not None and mitigation.status == signal_loss

        events: list[Event] = []
        for key, status, last in self._announcements.due(now, still_parked):
            mitigation = self._mitigations[key]
            record = mitigation.record
            announced = mitigation.snapshot_later(now, Status(status))
            events.append(MitigationChanged(record.client, record.cuid, record.mid, announced))
            if last:  # the transition to 8 itself
                events.append(MitigationChanged(record.client, record.cuid, record.mid, mitigation.snapshot_later(now)))
        return events

    def _expire(self, now: float) -> list[Event]:
        due: dict[Key, Mitigation] = {}  # a key can sit in the heap twice (same deadline, re-held)
        while (deadline := self._next_deadline()) is not None and deadline <= now:
            _, key = heapq.heappop(self._deadlines)
            due[key] = self._mitigations[key]
        ended = list(due.values())
        if not ended:
            return []
        try:
            self._commit(SignalChanges(delete_mitigations=[m.key for m in ended]))
        except Rejected:
            for mitigation in ended:  # keep the timers armed: retried a little later
                heapq.heappush(self._deadlines, (mitigation.deadline(), mitigation.key))
            raise
        events: list[Event] = []
        for mitigation in ended:
            self._release(mitigation.key)
            record = mitigation.record
            if mitigation.terminating:
                events.append(self._withdrawn(mitigation, "client"))
            else:
                events.append(
                    MitigationExpired(
                        record.client, record.cuid, record.mid, mitigation.mitigator_key, mitigation.enforcing
                    )
                )
            final = mitigation.snapshot_later(now, Status.ATTACK_MITIGATION_TERMINATED)
            events.append(MitigationChanged(record.client, record.cuid, record.mid, final))
        return events

    def _check_peers(self, now: float, events: list[Event]) -> None:
        """The peers whose timers are due. Appends to EVENTS as it goes, so events of changes already stored
        survive a later failure (the peer then stays scheduled, and is looked at again on the retry)."""
        while (earliest := self._peer_timers.earliest()) is not None and earliest[0] <= now:
            name = earliest[1]
            peer = self._peers[name]
            parameters = self._parameters(name)
            loss = peer.loss_deadline(parameters)
            if loss is not None and loss <= now:
                events += self._session_lost(name, now)
                peer.lost = True
            else:
                heartbeat = peer.heartbeat_deadline(parameters)
                if heartbeat is not None and heartbeat <= now:
                    events.append(HeartbeatDue(name, peer.peer_hb_status(now, parameters)))
                    peer.next_heartbeat = max(heartbeat + parameters.heartbeat_interval, now)
            self._peer_timers.set(name, None)  # looked at: rescheduled from its new state just below
            self._sync_liveness(name, now)

    def _session_lost(self, client_name: str, now: float) -> list[Event]:
        """§4.4.1.3/§4.7: activate the client's preconfigured requests; withdraw its overlapping immediate
        ones (no active-but-terminating period for server-initiated withdrawals)."""
        own = [m for m in self._mitigations.values() if m.record.client == client_name]
        preconfigured = [m for m in own if not m.request.trigger_mitigation and not m.enforcing]
        if not preconfigured:
            return [PeerLost(client_name)]
        activated = [
            m.with_record(status=int(Status.ATTACK_MITIGATION_IN_PROGRESS), started_at=now) for m in preconfigured
        ]
        replaced = [
            m
            for m in own
            if m.request.trigger_mitigation
            and m.enforcing
            and any(overlap(m.targets, p.targets) for p in preconfigured)
        ]
        self._commit(
            SignalChanges(put_mitigations=[m.record for m in activated], delete_mitigations=[m.key for m in replaced])
        )
        events: list[Event] = [PeerLost(client_name)]
        for mitigation in activated:
            self._hold(mitigation)
            events.append(self._activated(mitigation))
            events.append(
                MitigationChanged(
                    client_name, mitigation.record.cuid, mitigation.record.mid, mitigation.snapshot_later(now)
                )
            )
        for mitigation in replaced:
            self._release(mitigation.key)
            events.append(self._withdrawn(mitigation, "server"))
            final = mitigation.snapshot_later(now, Status.ATTACK_MITIGATION_WITHDRAWN)
            events.append(MitigationChanged(client_name, mitigation.record.cuid, mitigation.record.mid, final))
        return events

    # --- feedback from mitigators and the operator ---------------------------------------------------

    def report_status(self, key: str, status: Status, now: float) -> list[Event]:
        """A mitigator (or operator) reports progress for mitigation KEY ("<cuid>/<mid>"): statuses 1-4."""
        mitigation = self._by_mitigator_key(key)
        if mitigation is None or not mitigation.enforcing or mitigation.terminating or status == mitigation.status:
            return []
        if status not in (
            Status.ATTACK_MITIGATION_IN_PROGRESS,
            Status.ATTACK_SUCCESSFULLY_MITIGATED,
            Status.ATTACK_STOPPED,
            Status.ATTACK_EXCEEDED_CAPABILITY,
        ):
            return []
        preconfigured_done = status == Status.ATTACK_STOPPED and not mitigation.request.trigger_mitigation
        # Table 3: a preconfigured request whose attack stopped goes back to waiting for a signal loss (8).
        stored = Status.ATTACK_MITIGATION_SIGNAL_LOSS if preconfigured_done else status
        updated = mitigation.with_record(status=int(stored))
        try:
            self._commit(SignalChanges(put_mitigations=[updated.record]))
        except Rejected:
            return []
        self._hold(updated)
        record = updated.record
        events: list[Event] = [
            MitigationChanged(record.client, record.cuid, record.mid, updated.snapshot_later(now, status))
        ]
        if preconfigured_done:
            events.append(self._withdrawn(mitigation, "server"))
            self._announcements.start(updated.key, int(status), now)
        self._flush_liveness(now)  # no longer enforcing: the client may be back on its idle parameters
        return events

    def report_counters(self, key: str, counters: Counters, now: float) -> list[Event]:
        """Latest counters measured by the mitigator (kept in memory; never invented).

        A change is notified to the client's observers (§4.4.2.1), so how often counters are polled
        (`ServerSettings.counters_interval`) is how often an attack's progress reaches the client at most.
        """
        mitigation = self._by_mitigator_key(key)
        if mitigation is None or mitigation.counters == counters:
            return []
        mitigation.counters = counters
        record = mitigation.record
        return [MitigationChanged(record.client, record.cuid, record.mid, mitigation.snapshot_later(now))]

    def set_redirection(self, redirection: Redirection | None) -> list[Event]:
        """Operator: send clients to an alternate server (5.03, §4.6), or stop (None)."""
        self.redirection = redirection
        return [RedirectionChanged(self.redirect_body(), redirection.ttl if redirection else None)]

    def is_enforcing(self, client_name: str) -> bool:
        """Whether CLIENT_NAME has a mitigation being enforced now (O(1): counted as mitigations are held)."""
        return self._enforcing[client_name] > 0

    def mitigations(self) -> list[Mitigation]:
        return list(self._mitigations.values())

    def liveness(self, client_name: str) -> PeerLiveness | None:
        """What the server knows of CLIENT_NAME's session (None: no traffic since start-up)."""
        return self._peers.get(client_name)

    def _by_mitigator_key(self, key: str) -> Mitigation | None:
        cuid, _, mid = key.rpartition("/")
        return self._mitigations.get((cuid, int(mid))) if mid.isdigit() else None

    # --- helpers -------------------------------------------------------------------------------------

    def _commit(self, changes: SignalChanges) -> None:
        try:
            self.store.apply(changes)
        except (sqlite3.Error, OSError) as problem:
            log.error("signal store: %s", problem)
            raise reject("5.03", "the DOTS server could not store the request; retry later") from None

    def _activated(self, mitigation: Mitigation) -> MitigationActivated:
        record = mitigation.record
        return MitigationActivated(
            record.client, record.cuid, record.mid, mitigation.mitigation_scope(), mitigation.names()
        )

    def _updated(self, mitigation: Mitigation) -> MitigationUpdated:
        record = mitigation.record
        return MitigationUpdated(
            record.client, record.cuid, record.mid, mitigation.mitigation_scope(), mitigation.names()
        )

    def _withdrawn(self, mitigation: Mitigation, reason: str) -> MitigationWithdrawn:
        record = mitigation.record
        return MitigationWithdrawn(record.client, record.cuid, record.mid, mitigation.mitigator_key, reason)


def _body(request: Request) -> Any:
    """REQUEST's body as validated YANG-JSON: its CBOR payload decoded and validated against the YANG module (a
    malformed one is refused with the code the data model gives: 4.00, 4.13, ...), or the body it came with."""
    if request.payload is None:
        return request.body
    try:
        return decode_signal(request.payload)
    except ModelError as problem:
        raise reject(problem.code, problem.diagnostic) from None


def _decoded(request: Request) -> Request:
    """REQUEST with `body` decoded from its payload (for the handlers that read `request.body`)."""
    return request if request.payload is None else replace(request, body=_body(request), payload=None)


def _targets_json(targets: Targets) -> dict[str, Any]:
    return targets.to_yang()
