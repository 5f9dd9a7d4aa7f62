"""The sans-I/O DOTS signal-channel server (RFC 9132): requests in, decisions out.

    server = SignalServer(settings, store.load(), now=time.time())
    decision = server.handle(request, now)        # or handle_timer(now), report_status(...), ...
    store.apply(decision.changes)                 # durable first (a failure: server.write_failed(decision, now))
    server.apply(decision)                        # then memory
    send(decision.response); act_on(decision.observed + decision.events)

`opendots.signal.server.shell.durable.settle` does those steps. The core never writes: each decision carries the changes
to store and the in-memory changes to make once they are stored, so nothing is acknowledged before it is durable,
and a failed write (5.03) changes nothing. Errors are Response values; no exception leaves this object.

The work is split by concern: `MitigationRequests` (/mitigate, its timers, mitigators' reports; status changes in
`transitions`), `SessionConfigs` (/config), `Peers` (heartbeats and liveness), `TelemetrySetups` (/tm-setup,
RFC 9244 §7), `TelemetryReports` (/tm, RFC 9244 §8.2). This class authenticates, dispatches by path type, and
keeps the order of timers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from opendots.config import ClientAuthorization
from opendots.domain import Counters, Targets
from opendots.signal.server.core.acl_requests import update_failed
from opendots.signal.server.core.authorization import resolve_aliases
from opendots.signal.server.core.bodies import decoded
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import (
    Event,
    PeerLost,
    RedirectionChanged,
    SessionConfigChanged,
    TelemetryChanged,
    TelemetrySetupChanged,
)
from opendots.signal.server.core.external import changed_elsewhere
from opendots.signal.server.core.filtering import AclActivation
from opendots.signal.server.core.heartbeat import PeerLiveness
from opendots.signal.server.core.messages import REDIRECTED_SIGNAL, Rejected, Request, Response, Status, error, reject
from opendots.signal.server.core.mitigation_events import activated_event
from opendots.signal.server.core.mitigation_requests import MitigationRequests
from opendots.signal.server.core.mitigation_table import MitigationTable
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.paths import (
    ConfigPath,
    HeartbeatPath,
    MitigatePath,
    TelemetryPath,
    TelemetrySetupPath,
    parse_path,
)
from opendots.signal.server.core.peers import Peers
from opendots.signal.server.core.policy import Redirection, ServerSettings
from opendots.signal.server.core.query import MitigationQuery
from opendots.signal.server.core.robust import RobustTransmission
from opendots.signal.server.core.scope import parse_scope_entry
from opendots.signal.server.core.server_telemetry import ServerTelemetry, TelemetryRequest
from opendots.signal.server.core.session_configs import SessionConfigs
from opendots.signal.server.core.sessionconfig import ParameterSet, SessionConfig
from opendots.signal.server.core.telemetry_reports import TelemetryReports
from opendots.signal.server.core.telemetry_setup import TelemetrySetups
from opendots.store.records import MitigationRecord, SessionConfigRecord, SignalState, TelemetrySetupRecord

log = logging.getLogger(__name__)

UNAUTHORIZED = "this DOTS client is not authorized to use this DOTS server"
_OWN_DECODERS = frozenset({TelemetrySetupPath, TelemetryPath, HeartbeatPath})
"""Paths whose handlers decode the payload themselves (besides a mitigation PUT)."""
STORE_RETRY_DELAY = 1.0  # seconds between attempts to store timer-driven changes after a storage failure
UNSTORED = "the DOTS server could not store the request; retry later"

Handler = Callable[[ClientAuthorization, Any, Request, float, Decision], Response]


class SignalServer:
    def __init__(self, settings: ServerSettings, state: SignalState, now: float) -> None:
        self.settings = settings
        self._now = now
        self._clients = {client.cuid: client for client in settings.clients}
        self._by_name = {client.name: client for client in settings.clients}
        self.peers = Peers(self._parameters)
        self.table = MitigationTable(on_enforcing_changed=self.peers.changed)
        self.mitigation_requests = MitigationRequests(
            functools.partial(getattr, self, "settings"),  # read on every PUT: no Python frame, unlike a lambda
            self.table,
            lambda name: self._by_name.get(name),
        )
        self.configs = SessionConfigs(
            settings.session_defaults, settings.limits, settings.config_max_age, self.peers.config_changed
        )
        self.telemetry_setups = TelemetrySetups(
            lambda: self.settings, self.mitigation_requests.cuid_owner, lambda name: self._by_name.get(name)
        )
        self.server_telemetry = ServerTelemetry(
            self.telemetry_setups.config_of, lambda: self.settings.telemetry.server_originated
        )
        self.telemetry_reports = TelemetryReports(
            lambda: self.settings,
            self.mitigation_requests.cuid_owner,
            lambda name: self._by_name.get(name),
            self._mitigation_targets,
            self.telemetry_setups.check_new_cuid,
            lambda request, query: self.server_telemetry.request_view(request, self._narrowed(request, query)),
        )
        self.mitigation_requests.reported_details = self.telemetry_reports.attack_details
        self._handlers: dict[type, Handler] = {
            MitigatePath: self.mitigation_requests.handle,
            ConfigPath: lambda client, path, request, now, decision: self.configs.handle(
                client.name, path, request, now, decision
            ),
            HeartbeatPath: lambda client, path, request, now, decision: self.peers.heartbeat(
                client.name, request, now, decision.events
            ),
            TelemetrySetupPath: self.telemetry_setups.handle,
            TelemetryPath: self._telemetry,
        }
        self._store_retry_at: float | None = None  # after a failed timer write, wait before trying again
        self._pending: Decision | None = None
        self.redirection: Redirection | None = None
        self.relaying: Callable[[str], bool] = lambda client_name: False
        """A DOTS gateway's downstream leg (opendots.gateway): True while mitigations it relays for CLIENT_NAME are
        held upstream; they count as the client's own for its mitigating-config (§4.5)."""
        self._restore(state, now)

    # --- start-up ------------------------------------------------------------------------------------

    def set_clients(self, clients: Sequence[ClientAuthorization]) -> None:
        """Operator reload: the authorized clients and what each may protect change from the next request on.
        Sessions, peers and stored mitigations stay; a removed client's requests get 4.01, and its mitigations
        run until they end (they are not withdrawn behind its back)."""
        self.settings = replace(self.settings, clients=list(clients))
        self._clients = {client.cuid: client for client in clients}
        self._by_name = {client.name: client for client in clients}
        for client in clients:
            self.mitigation_requests.cuid_owner.setdefault(client.cuid, client.name)

    def _restore(self, state: SignalState, now: float) -> None:
        owners = self.mitigation_requests.cuid_owner
        for client in self.settings.clients:
            owners[client.cuid] = client.name
        for cuid in state.cuids:
            owners.setdefault(cuid.cuid, cuid.client)
        self.configs.restored(state.session_configs)
        for record in state.mitigations:
            self.table.hold(self._held_from(record))
        self.telemetry_setups.restored(state.telemetry_setups)
        self.telemetry_reports.restored(state.telemetry_reports)  # after the mitigations their 'mid-list' names
        # A restarted server gives each client with stored mitigations a fresh liveness clock.
        self.peers.restored(dict.fromkeys(record.client for record in state.mitigations), now)

    def _held_from(self, record: MitigationRecord) -> Mitigation:
        """A stored record as a held mitigation (validated when it was accepted, here or on another node)."""
        client = self._by_name.get(record.client)
        request = parse_scope_entry(record.request, call_home=self.settings.call_home)
        targets = request.targets
        if client is not None:
            try:
                targets = resolve_aliases(client, request.targets, self.settings.aliases)
            except Rejected as problem:
                # An alias deleted since: keep the literal targets rather than drop an acknowledged mitigation.
                log.warning("mitigation %s/%s: %s", record.cuid, record.mid, problem.response.diagnostic)
        return Mitigation(record, request, targets)

    def changed_elsewhere(self, key: tuple[str, int], record: MitigationRecord | None, now: float) -> list[Event]:
        """Another node changed mitigation KEY in the shared database: hold RECORD, what the database holds now
        (None: the row is gone), and return what follows (observers' notifications, mitigator actions). Not
        while a decision is pending: the shell feeds these between decisions."""
        if self._pending is not None:
            raise RuntimeError("a decision is pending: external changes come between decisions")
        self._now = now
        if record is not None:
            self.mitigation_requests.cuid_owner.setdefault(record.cuid, record.client)
        events = changed_elsewhere(self.table, key, record, now, self._held_from)
        self.peers.flush(now)
        return events

    def client_state_elsewhere(
        self,
        client: str,
        config: SessionConfigRecord | None,
        setups: Sequence[TelemetrySetupRecord],
        now: float,
    ) -> list[Event]:
        """Another node changed what CLIENT installed in the shared database: its session configuration (RFC 9132
        §4.5; None: none, the defaults) and its telemetry setups (RFC 9244 §7, all of them). This core holds what
        the database holds from now on, as if set here: the client's heartbeat clock runs on the new parameters,
        telemetry follows the new configuration, and observers of /config are notified. Between decisions only."""
        if self._pending is not None:
            raise RuntimeError("a decision is pending: external changes come between decisions")
        self._now = now
        events: list[Event] = []
        if self.configs.replace_for(client, config, now):
            events.append(SessionConfigChanged(client))
        events += [TelemetrySetupChanged(client, cuid) for cuid in self.telemetry_setups.replace_for(client, setups)]
        self.peers.flush(now)
        return events

    def set_aside(self, decision: Decision) -> None:
        """The shell will not settle DECISION (it decides again on fresher state): memory stays as it was."""
        if self._pending is decision:
            self._pending = None

    def peer_elsewhere(self, client_name: str) -> None:
        """CLIENT_NAME's session is on another node now: this one stops judging its liveness (§4.7), which would
        declare it lost for the heartbeats it sends there."""
        self.peers.forget(client_name)

    def held_keys(self) -> list[tuple[str, int]]:
        """The keys of every held mitigation (a node comparing its table with the database's)."""
        return [m.key for m in self.table]

    def _telemetry(
        self, client: ClientAuthorization, path: TelemetryPath, request: Request, now: float, decision: Decision
    ) -> Response:
        response = self.telemetry_reports.handle(client, path, request, now, decision)
        reports = list(decision.changes.put_telemetry_reports)
        if reports:
            # Top talkers of the new report reach the client's enforced mitigations on those targets (the
            # top-talker policy of the actuators). Decided once the report is installed, which resolves its
            # targets: the events join the decision's, which the shell reads after applying it.
            def talkers() -> None:
                targets = [t for record in reports for t in self.telemetry_reports.targets_of(record)]
                decision.events += self.mitigation_requests.talkers_reported(client.name, targets)

            decision.then(talkers)
        return response

    def restore_events(self) -> list[Event]:
        """MitigationActivated for every mitigation that must be enforced: call once after start-up, since
        actuators (BGP speakers, nftables) do not keep state across our restart."""
        return [activated_event(m) for m in self.table if m.enforcing]

    # --- decisions: every entry point returns one; the shell stores it, then applies it ----------------

    def apply(self, decision: Decision) -> None:
        """DECISION's changes are durable: make its in-memory changes."""
        self._pending = None
        for effect in decision.effects:
            effect()
        self._store_retry_at = None
        self.peers.flush(self._now)

    def write_failed(self, decision: Decision, now: float) -> Response | None:
        """DECISION's changes could not be stored: memory stays as it was; a request is answered 5.03, a timer's
        work is tried again in STORE_RETRY_DELAY seconds (not in a busy loop)."""
        self._pending = None
        self.peers.flush(now)  # the request was traffic from its client all the same
        if decision.response is None:
            self._store_retry_at = now + STORE_RETRY_DELAY
            return None
        return error("5.03", UNSTORED)

    def acl_write_failed(self, decision: Decision, failed: AclActivation, reason: str, now: float) -> Response:
        """An RFC 9133 activation change of DECISION could not be stored: memory stays as it was, and the request
        is answered 5.03 naming the ACL update that failed (RFC 9133 Figure 1)."""
        self._pending = None
        self.peers.flush(now)
        return update_failed([failed], reason).response

    def _decide(self, now: float) -> Decision:
        if self._pending is not None:
            raise RuntimeError("the last decision was neither applied nor refused: deciding now would use stale state")
        self._now = now
        return Decision()

    def _decided(self, decision: Decision) -> Decision:
        if decision.pending:
            self._pending = decision
        else:
            self.peers.flush(self._now)
        return decision

    # --- requests ------------------------------------------------------------------------------------

    def handle(self, request: Request, now: float) -> Decision:
        # Every message comes through here: _decide and _authenticate written out, no list built for nothing.
        if self._pending is not None:
            raise RuntimeError("the last decision was neither applied nor refused: deciding now would use stale state")
        self._now = now
        decision = Decision()
        client = self._clients.get(request.peer) if request.peer else None
        if client is None:
            decision.response = reject("4.01", UNAUTHORIZED).response
            return self._decided(decision)
        seen = self.peers.saw_traffic(client.name, now)
        if seen:
            decision.observed += seen
        try:
            path = parse_path(request.path)
            kind = type(path)
            if self.redirection is not None and kind is not HeartbeatPath:
                decision.response = self._redirect_response()
                return self._decided(decision)
            # A mitigation PUT decodes its own (it may repeat the stored request), tm-setup as ietf-dots-telemetry, a
            # heartbeat only when its body is not the usual bytes.
            if request.payload is not None and not (
                kind in _OWN_DECODERS or (kind is MitigatePath and request.method == "PUT")
            ):
                request = decoded(request)
            decision.response = self._handlers[kind](client, path, request, now, decision)
        except Rejected as refused:
            decision = Decision(response=refused.response, observed=decision.observed)
        return self._decided(decision)

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

    def render_mitigations(
        self, client_name: str, cuid: str, mid: int | None, query: Iterable[str], now: float
    ) -> Response:
        """Re-render an observed GET (notifications for observers of all of a client's mitigations). Not traffic
        from the client: a server re-rendering on its own must not keep a silent client's session alive (§4.7)."""
        client = self._by_name.get(client_name)
        if client is None:
            return Response("4.04", diagnostic="unknown client")
        if self.redirection is not None:
            return self._redirect_response()
        try:
            return self.mitigation_requests.get(client, MitigatePath(cuid=cuid, mid=mid), query, False, now)
        except Rejected as refused:
            return refused.response

    def render_telemetry(self, client_name: str, cuid: str, tmid: int | None, query: Iterable[str]) -> Response:
        """Re-render an observed GET /tm for a notification (RFC 9244 §8.2), as `render_mitigations`: not traffic."""
        client = self._by_name.get(client_name)
        if client is None:
            return Response("4.04", diagnostic="unknown client")
        try:
            return self.telemetry_reports.get(client, TelemetryPath(cuid=cuid, tmid=tmid), query, False)
        except Rejected as refused:
            return refused.response

    def _mitigation_targets(self, client_name: str, cuid: str, mid: int) -> Targets | None:
        mitigation = self.table.get((cuid, mid))
        return mitigation.targets if mitigation is not None and mitigation.record.client == client_name else None

    def note_traffic(self, client_name: str, now: float) -> list[Event]:
        """Anything else received from a client: a heartbeat response, a new session (§4.7)."""
        if client_name not in self._by_name:
            return []
        events = self.peers.saw_traffic(client_name, now)
        self.peers.flush(now)
        return events

    def client_name(self, peer: str | None) -> str | None:
        client = self._clients.get(peer) if peer else None
        return client.name if client else None

    # --- timers --------------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """When handle_timer() next has something to do (absolute time), None when nothing is pending."""
        deadlines = [
            due
            for due in (
                self.table.next_deadline(),
                self.mitigation_requests.announcements.next_due(),
                self.peers.next_due(),
            )
            if due is not None
        ]
        earliest = min(deadlines, default=None)
        if earliest is not None and self._store_retry_at is not None:
            return max(earliest, self._store_retry_at)
        return earliest

    def timer_mark(self) -> tuple[int, float | None]:
        """What next_timer() depends on that can move it earlier: while the mark stays the same, next_timer() is no
        earlier than when the mark was taken (deadlines that move later, as every request's do, push nothing onto
        the timer heaps). O(1), for the shell to skip next_timer() after nearly every request."""
        return (
            self.table.deadlines.pushes + self.peers.timers.pushes + self.mitigation_requests.announcements.pushes,
            self._store_retry_at,
        )

    def handle_timer(self, now: float) -> Decision:
        """One step of what is due at NOW: repeated announcements, then the mitigations whose time is up, then the
        peers (heartbeats; a lost session's preconfigured requests, one client per step). Call again while
        next_timer() <= now: each step's changes are stored before the next step is decided."""
        decision = self._decide(now)
        if self._store_retry_at is not None and now < self._store_retry_at:
            return decision
        # Announcements and heartbeats store nothing: they go out whatever happens to this step's writes.
        decision.observed += self.mitigation_requests.repeat_announcements(now)
        self.mitigation_requests.expire(now, decision)
        if decision.pending:
            return self._decided(decision)
        while (lost := self.peers.due(now, decision.observed)) is not None:
            decision.events.append(PeerLost(lost))
            self.mitigation_requests.session_lost(lost, now, decision)
            if decision.changes:  # stored first; the next step looks at the other peers
                decision.then(functools.partial(self.peers.lost, lost, now))
                break
            self.peers.lost(lost, now)  # nothing to store: the session is lost now
        return self._decided(decision)

    # --- feedback from mitigators and the operator ---------------------------------------------------

    def report_status(self, key: str, status: Status, now: float) -> Decision:
        """A mitigator (or operator) reports progress for mitigation KEY ("<cuid>/<mid>"): statuses 1-4."""
        decision = self._decide(now)
        self.mitigation_requests.report_status(key, status, now, decision)
        return self._decided(decision)

    def terminate(self, key: str, now: float) -> Decision:
        """The operator ends mitigation KEY ("<cuid>/<mid>") as RFC 9132 lets a server: status 6, deleted, withdrawn
        from the actuator, observers told. A decision with nothing in it when KEY is not held."""
        decision = self._decide(now)
        self.mitigation_requests.terminate(key, now, decision)
        return self._decided(decision)

    def report_counters(self, key: str, counters: Counters, now: float) -> Decision:
        decision = self._decide(now)
        self.mitigation_requests.report_counters(
            key, counters, now, decision, lambda mitigation: self.server_telemetry.measured(mitigation, counters, now)
        )
        return self._decided(decision)

    def counters_read(self, now: float) -> list[Event]:
        """A batch of counter readings is done (`report_counters` for each): RFC 9244 §8.3 requests get the traffic
        of their client's overlapping mitigations; their /tm observers are notified when it changed."""
        changed = self.server_telemetry.counters_read(
            now, self.table, self.telemetry_reports.requests(), self._overlapping_own, self.table.by_mitigator_key
        )
        return [TelemetryChanged(client, cuid) for client, cuid in sorted(changed)]

    def _narrowed(self, request: TelemetryRequest, query: MitigationQuery) -> frozenset[str] | None:
        """RFC 9244 §8.3: the aggregate of a GET with target (or mid) filters covers the mitigations they match: their
        mitigator keys (None: no filter, the request's whole sum)."""
        if not query.present:
            return None
        return frozenset(
            m.mitigator_key for m in self._overlapping_own(request) if query.matches(m.targets, m.record.mid)
        )

    def _overlapping_own(self, request: TelemetryRequest) -> list[Mitigation]:
        """REQUEST's client's enforced mitigations overlapping its targets (no other client's)."""
        found: dict[tuple[str, int], Mitigation] = {}
        for targets in request.targets:
            for mitigation, _ in self.table.overlapping(targets):
                if mitigation.record.client == request.client and mitigation.enforcing:
                    found[mitigation.key] = mitigation
        return list(found.values())

    def acl_activation_changed(self, cuid: str, now: float) -> list[Event]:
        """The data channel changed CUID's ACLs: observers of mitigations naming them are notified (RFC 9133)."""
        return self.mitigation_requests.acls.activation_changed(self._clients.get(cuid), cuid, self.table, now)

    def acls_shown(self, client_name: str, cuid: str) -> set[tuple[str, str]]:
        """(cuid, ACL name) of the data-channel ACLs a notification about CLIENT_NAME's mitigations of CUID reads
        (RFC 9133 §3.2.1: it shows their activation types as they are now)."""
        held = [m for m in self.table if m.record.cuid == cuid and m.record.client == client_name]
        return self.mitigation_requests.acls.shown(client_name, held)

    def set_redirection(self, redirection: Redirection | None) -> list[Event]:
        """Operator: send clients to an alternate server (5.03, §4.6), or stop (None)."""
        self.redirection = redirection
        return [RedirectionChanged(self.redirect_body(), redirection.ttl if redirection else None)]

    # --- what the shell, the metrics and the operator read --------------------------------------------

    def session_config(self, client_name: str) -> SessionConfig:
        return self.configs.of(client_name)

    def robust_transmission(self, client_name: str) -> RobustTransmission:
        """RFC 9362: the Q-Block parameters in force on CLIENT_NAME's session now — its mitigating-config set while
        the server enforces one of its mitigations, its idle-config set otherwise (the set can change with time)."""
        return self.configs.robust(client_name, self.is_enforcing(client_name))

    def is_enforcing(self, client_name: str) -> bool:
        return self.table.is_enforcing(client_name) or self.relaying(client_name)

    def mitigations(self) -> list[Mitigation]:
        return list(self.table)

    def liveness(self, client_name: str) -> PeerLiveness | None:
        """What the server knows of CLIENT_NAME's session (None: no traffic since start-up)."""
        return self.peers.get(client_name)

    def _parameters(self, client_name: str) -> ParameterSet:
        return self.configs.parameters(client_name, self.is_enforcing(client_name))
