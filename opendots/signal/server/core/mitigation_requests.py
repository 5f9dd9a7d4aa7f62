"""Mitigation requests (RFC 9132 §4.4): PUT, GET and DELETE on /mitigate, and what timers, a lost session and the
mitigators do to held mitigations. Every status change goes through the table in `transitions`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opendots.config import ClientAuthorization
from opendots.domain import Counters, Targets, defaults
from opendots.signal.server.core.acl_requests import AclRequests
from opendots.signal.server.core.announcements import Announcements
from opendots.signal.server.core.authorization import check_authorized, check_call_home_authorized, resolve_aliases
from opendots.signal.server.core.bodies import body_of
from opendots.signal.server.core.decision import Decision
from opendots.signal.server.core.events import (
    Event,
    MitigationExpired,
    MitigationUpdated,
)
from opendots.signal.server.core.messages import (
    MITIGATION_SCOPE,
    ConflictCause,
    ConflictStatus,
    Request,
    Response,
    Status,
)
from opendots.signal.server.core.messages import reject as refuse
from opendots.signal.server.core.mitigation_answers import RenderedAnswers, acknowledged
from opendots.signal.server.core.mitigation_events import (
    activated_event,
    changed_event,
    updated_event,
    withdrawn_event,
)
from opendots.signal.server.core.mitigation_table import MitigationTable
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.paths import MitigatePath
from opendots.signal.server.core.policy import ServerSettings
from opendots.signal.server.core.query import parse_mitigation_query
from opendots.signal.server.core.renewals import (
    refreshed_status,
    renewable,
    renewed_at,
    stored_covers,
    written_ahead,
)
from opendots.signal.server.core.scope import (
    CLIENT_TELEMETRY,
    MitigationRequest,
    legitimate_overlap,
    overlap,
    parse_scope_body,
    sources_overlap,
)
from opendots.signal.server.core.telemetry_config import SCOPE_ATTACK_DETAIL
from opendots.signal.server.core.transitions import REPORT_TRIGGERS, Trigger, allowed, kind_of, next_status
from opendots.store.records import CuidRecord, MitigationRecord, SignalChanges

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Put:
    """An accepted mitigation PUT (RFC 9132 §4.4.1) on its way to a refresh or a new mitigation."""

    client: ClientAuthorization
    path: MitigatePath
    parsed: MitigationRequest
    payload: bytes | None
    targets: Targets
    """The request's targets with its aliases resolved."""
    granted: int
    """The lifetime granted, in seconds (-1: indefinite)."""


class MitigationRequests:
    def __init__(
        self,
        settings: Callable[[], ServerSettings],
        table: MitigationTable,
        client_named: Callable[[str], ClientAuthorization | None],
    ) -> None:
        self._settings = settings
        self.table = table
        self._client_named = client_named
        self.cuid_owner: dict[str, str] = {}
        self._terminating_period: dict[str, int] = {}
        self.announcements = Announcements()  # Table 3's repeated 3/7 of preconfigured requests before 8
        self.acls = AclRequests(settings, client_named)
        self._rendered = RenderedAnswers()  # GET answers of single mitigations, kept encoded
        self.renewal_shortcut = True
        """Answer pure renewals by `renewals.renewed_at` (off only in the test comparing it with the general
        refresh)."""
        self.reported_details: Callable[[str, Targets], list[dict[str, Any]]] = lambda client, targets: []
        """The 'attack-detail' entries of the client's telemetry reports (§8.2) on targets overlapping these: their
        top talkers go with the mitigation to the actuators (opendots.signal.server.core.talkers)."""

    @property
    def settings(self) -> ServerSettings:
        return self._settings()

    def handle(
        self, client: ClientAuthorization, path: MitigatePath, request: Request, now: float, decision: Decision
    ) -> Response:
        if request.method == "GET":
            return self.get(client, path, request.query, request.observe == 0, now)
        if request.method == "PUT":
            return self._put(client, path, request, now, decision)
        if request.method == "DELETE":
            return self._delete(client, path, now, decision)
        raise refuse("4.05", f"{request.method} is not allowed on mitigate")

    def owns_cuid(self, client: ClientAuthorization, cuid: str) -> bool:
        return self.cuid_owner.get(cuid, client.name) == client.name

    # --- GET ---------------------------------------------------------------------------------------

    def get(
        self, client: ClientAuthorization, path: MitigatePath, query_text: Iterable[str], observe: bool, now: float
    ) -> Response:
        query = parse_mitigation_query(tuple(query_text))
        not_found = "no such mitigation for this DOTS client"
        if not self.owns_cuid(client, path.cuid):
            raise refuse("4.04", not_found)
        if path.mid is not None:
            found = self.table.get((path.cuid, path.mid))
            if found is None or found.record.client != client.name or not query.matches(found.targets, path.mid):
                raise refuse("4.04", not_found)
            answer = self._rendered.answer(client.name, path, query_text, query.content, found, now)
            if answer is not None:
                return Response("2.05", body=answer.body, observable=True) if observe else answer
            selected = [found]
        else:
            selected = sorted(
                (m for m in self.table if m.record.cuid == path.cuid and m.record.client == client.name),
                key=lambda m: m.record.mid,
            )
            selected = [m for m in selected if query.matches(m.targets, m.record.mid)]
            if not selected:
                raise refuse("4.04", not_found)
        entries = [self.acls.current(m, m.render(now, query.content), now) for m in selected]
        return Response("2.05", body={MITIGATION_SCOPE: {"scope": entries}}, observable=observe)

    # --- PUT ---------------------------------------------------------------------------------------

    def _put(
        self, client: ClientAuthorization, path: MitigatePath, request: Request, now: float, decision: Decision
    ) -> Response:
        if path.mid is None:
            raise refuse("4.00", "the mandatory 'mid' Uri-Path is missing")
        if self.cuid_owner.get(path.cuid, client.name) != client.name:  # owns_cuid, written out (every PUT)
            body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": {"conflict-cause": "cuid-collision"}}]}}
            raise refuse("4.09", "this 'cuid' is already used by another DOTS client", body)
        existing = self.table.get((path.cuid, path.mid))
        payload = request.payload
        settings = self._settings()  # read once: a call through the server's settings each time
        if existing is not None and payload is not None and payload == existing.payload:
            # The very bytes accepted last time for this mid (a refresh, a retransmission): decoding, validating
            # and parsing them again would give the same request. Aliases and authorization are checked anew below,
            # unless this is a pure renewal by the very client object the targets were checked for (renewals).
            if (
                existing.renewable is settings
                and existing.authorized_for is client
                and not request.if_match_empty
                and self.renewal_shortcut
            ):
                renewed = renewed_at(existing, now)
                if renewed is not None:  # a pure renewal (opendots.signal.server.core.renewals): the expiry moves
                    decision.effects.append(functools.partial(self.table.hold, renewed))
                    return acknowledged("2.04", renewed, now, renewed.record.lifetime)
            parsed = existing.request
        else:
            body = body_of(request)
            if body is None:
                raise refuse("4.00", "a mitigation request needs a body")
            parsed = parse_scope_body(body, call_home=settings.call_home)
            if SCOPE_ATTACK_DETAIL in parsed.document:  # RFC 9244 §9.1 top talkers: bounded as in a /tm report
                settings.telemetry.check_top_talkers([parsed.document])
        if request.if_match_empty:
            return self._efficacy_update(existing, parsed, now, decision)
        if parsed.lifetime is None:
            raise refuse("4.00", "'lifetime' is mandatory in a mitigation request")
        targets = resolve_aliases(client, parsed.targets, settings.aliases)
        if settings.call_home:
            check_call_home_authorized(client, targets)
            self._check_legitimate(targets)
        elif existing is None or existing.authorized_for is not client or existing.targets is not targets:
            check_authorized(client, targets)
        granted = self._grant(parsed.lifetime, settings)
        activations = []
        if parsed.acl_controls and (existing is None or existing.request.same_parameters(parsed)):
            activations = self.acls.control(client, path, parsed, now)
        put = _Put(client, path, parsed, payload, targets, granted)
        if existing is not None:
            response = self._refresh(put, existing, now, decision, settings)
        else:
            response = self._create(put, now, decision)
        decision.acl_activations = activations  # only an accepted request changes ACLs
        return response

    def talkers_event(self, mitigation: Mitigation) -> MitigationUpdated | None:
        """MitigationUpdated carrying the top talkers now known for MITIGATION (its request's and its client's
        telemetry reports'), None when there are none: the actuators skip a scope they already enforce."""
        event = updated_event(mitigation, self.reported_details(mitigation.record.client, mitigation.targets))
        return event if event.scope.top_talkers else None

    def talkers_reported(self, client: str, targets: Iterable[Targets]) -> list[Event]:
        """CLIENT reported telemetry (§8.2) on TARGETS: its enforced mitigations overlapping them, with the top
        talkers now known (see talkers_event)."""
        found: dict[tuple[str, int], Mitigation] = {}
        for target in targets:
            for mitigation, _ in self.table.overlapping(target):
                if mitigation.record.client == client and mitigation.enforcing:
                    found.setdefault(mitigation.key, mitigation)
        events: list[Event] = []
        for mitigation in found.values():
            event = self.talkers_event(mitigation)
            if event is not None:
                events.append(event)
        return events

    def _grant(self, requested: int, settings: ServerSettings | None = None) -> int:
        settings = settings or self.settings
        cap = settings.max_lifetime
        if requested == defaults.INDEFINITE_LIFETIME:
            if settings.allow_indefinite:
                return requested
            return cap or defaults.LIFETIME
        return min(requested, cap) if cap else requested

    @staticmethod
    def _expiry(granted: int, now: float) -> float | None:
        return None if granted == defaults.INDEFINITE_LIFETIME else now + granted

    def _efficacy_update(
        self, existing: Mitigation | None, parsed: MitigationRequest, now: float, decision: Decision
    ) -> Response:
        if existing is None:
            # §4.4.3: out-of-order efficacy update after a withdrawal is silently ignored.
            return Response("4.04", diagnostic="no such mitigation; efficacy update ignored", silent=True)
        if parsed.attack_status is None:
            raise refuse("4.00", "'attack-status' is mandatory in an efficacy update")
        if not existing.request.same_parameters(parsed):
            raise refuse("4.00", "an efficacy update must repeat the mitigation request's parameters unchanged")
        changes: dict[str, Any] = {"attack_status": int(parsed.attack_status)}
        if parsed.lifetime is not None:
            granted = self._grant(parsed.lifetime)
            changes.update(lifetime=granted, expires_at=self._expiry(granted, now), request=parsed.document)
        elif CLIENT_TELEMETRY & parsed.document.keys():
            # RFC 9244 §9.1: the update's telemetry replaces what the request held; its parameters stay as stored.
            kept = {k: v for k, v in existing.record.request.items() if k not in CLIENT_TELEMETRY}
            changes["request"] = {**kept, **{k: v for k, v in parsed.document.items() if k in CLIENT_TELEMETRY}}
        updated = existing.with_record(**changes)
        decision.changes = SignalChanges(put_mitigations=[updated.record])
        decision.then(lambda: self.table.hold(updated))
        if updated.enforcing and SCOPE_ATTACK_DETAIL in parsed.document:
            # §9.1: the attack details changed; their top talkers go to the actuators (the top-talker policy).
            event = self.talkers_event(updated)
            if event is not None:
                decision.events.append(event)
        return acknowledged("2.04", updated, now)

    def _refresh(
        self, put: _Put, existing: Mitigation, now: float, decision: Decision, settings: ServerSettings
    ) -> Response:
        client, parsed, targets = put.client, put.parsed, put.targets
        call_home = settings.call_home
        held_request = existing.request
        if parsed is not held_request and not held_request.same_parameters(parsed):  # the same bytes: the same
            raise refuse("4.00", "a refresh must repeat the mitigation request's parameters; use a new 'mid'")
        record = existing.record
        stored_request = record.request
        # Nearly every refresh repeats the stored request: the store then rewrites only the lifetime and times.
        renewal = parsed.document is stored_request or parsed.document == stored_request
        status = refreshed_status(held_request.trigger_mitigation, record.status)  # or raises IllegalTransition
        granted = put.granted
        changes: dict[str, Any] = {
            "lifetime": granted,
            "expires_at": self._expiry(granted, now),
            "request": stored_request if renewal else parsed.document,
            "terminating_until": None,
        }
        if parsed.attack_status is not None:
            changes["attack_status"] = int(parsed.attack_status)
        revived = existing.terminating
        if status != record.status:
            changes["status"] = int(status)
        updated = existing.with_changes(changes)
        updated.request, updated.payload = parsed, put.payload
        # The same object nearly always (no alias, the stored request reused): no field-by-field comparison then.
        retargeted = targets is not existing.targets and targets != existing.targets
        if retargeted:
            updated.targets = targets
        # What _put checked (or found checked) for this client object: TARGETS, held from now on.
        updated.authorized_for = None if call_home else client
        if not renewal:
            decision.changes = SignalChanges(put_mitigations=[updated.record])
        elif not stored_covers(existing, updated.record):
            slack = min(settings.renewal_slack, updated.record.lifetime / 4)
            decision.changes = SignalChanges(renewed_mitigations=[written_ahead(updated, slack)])
        else:
            # Written behind: the store already holds this row with an expiry at or after the renewed one (see
            # renewals.written_ahead), so a crash loses nothing; memory keeps the exact expiry.
            updated.stored_expiry = existing.expiry_stored()
        decision.then(functools.partial(self.table.hold, updated))
        if not (revived or retargeted or call_home):
            updated.renewable = renewable(updated, settings)
        if revived:
            # Asked again during active-but-terminating: back to active, and a longer period next time.
            decision.then(lambda: self._lengthen_terminating_period(client))
        if retargeted and updated.enforcing:
            # Same request, but an alias it names now resolves differently (data channel change).
            decision.events.append(updated_event(updated, self.reported_details(client.name, targets)))
        if revived:
            decision.events.append(changed_event(updated, now))
        return acknowledged("2.04", updated, now, put.granted)  # renewed now: all of the granted lifetime remains

    def _create(self, put: _Put, now: float, decision: Decision) -> Response:
        client, path, parsed, targets = put.client, put.path, put.parsed, put.targets
        assert path.mid is not None
        self._check_capacity(client, path.cuid)
        superseded: list[Mitigation] = []
        deactivated: list[Mitigation] = []
        overlapping = self.table.overlapping(targets)
        if self.settings.call_home:  # RFC 9066: the same target attacked from other sources is another mitigation
            overlapping = [(other, common) for other, common in overlapping if sources_overlap(targets, other.targets)]
        lengthen = False
        for other, common in overlapping:
            if other.record.client != client.name or other.record.cuid != path.cuid:
                continue
            if other.request.trigger_mitigation == parsed.trigger_mitigation:
                if other.record.mid > path.mid:
                    scope = {**common.to_yang(), "mid": other.record.mid}
                    info = {"conflict-cause": ConflictCause.OVERLAPPING_TARGETS.label, "conflict-scope": scope}
                    body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": info}]}}
                    raise refuse("4.09", f"overlaps mitigation mid={other.record.mid}, which has a higher 'mid'", body)
                superseded.append(other)
                lengthen = lengthen or other.terminating
            elif parsed.trigger_mitigation and other.enforcing:
                # §4.4.1.3: an immediate request deactivates an overlapping, triggered preconfigured one.
                deactivated.append(other)
        conflict = self._cross_client_conflict(client, overlapping, parsed, now)
        status = next_status(kind_of(parsed.trigger_mitigation), None, Trigger.CREATED)
        record = MitigationRecord(
            client=client.name,
            cuid=path.cuid,
            mid=path.mid,
            request=parsed.document,
            lifetime=put.granted,
            status=int(status),
            started_at=now,
            expires_at=self._expiry(put.granted, now),
            attack_status=int(parsed.attack_status) if parsed.attack_status else None,
            cdid=self._trusted_cdid(client, path),
        )
        created = Mitigation(record, parsed, targets, conflict=conflict, payload=put.payload)
        parked = [
            m.with_record(status=int(next_status("preconfigured", m.status, Trigger.DEACTIVATED))) for m in deactivated
        ]
        decision.changes = SignalChanges(
            put_mitigations=[record, *(m.record for m in parked)],
            delete_mitigations=[m.key for m in superseded],
        )
        new_cuid = path.cuid not in self.cuid_owner
        if new_cuid:
            decision.changes.put_cuids.append(CuidRecord(path.cuid, client.name, now))

        def apply() -> None:
            if lengthen:
                self._lengthen_terminating_period(client)
            self.cuid_owner[path.cuid] = client.name
            self.table.hold(created)
            for old in superseded:
                self.table.release(old.key)
            for after in parked:
                self.table.hold(after)
                self.announcements.start(after.key, int(Status.ATTACK_MITIGATION_WITHDRAWN), now)

        decision.then(apply)
        events = decision.events
        if created.enforcing:
            events.append(activated_event(created, self.reported_details(client.name, targets)))
        for old in superseded:
            ended = next_status(kind_of(old.request.trigger_mitigation), old.status, Trigger.SUPERSEDED)
            if old.enforcing:
                events.append(withdrawn_event(old, "superseded"))
            events.append(changed_event(old, now, ended))
        for before, after in zip(deactivated, parked, strict=True):
            events.append(withdrawn_event(before, "server"))
            events.append(changed_event(after, now, Status.ATTACK_MITIGATION_WITHDRAWN))  # announced 7, stored 8
        events.append(changed_event(created, now))
        return acknowledged("2.01", created, now)

    def _check_legitimate(self, targets: Targets) -> None:
        """RFC 9066 §5.3.1: traffic the CPE's administrator classified as legitimate is not blocked; the request is
        refused with 4.09 and conflict-cause 4 (§7.2)."""
        found = legitimate_overlap(targets, self.settings.legitimate_sources)
        if found:
            source, own = found[0]
            info = {"conflict-cause": ConflictCause.REQUEST_REJECTED_LEGITIMATE_TRAFFIC.label}
            body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": info}]}}
            raise refuse("4.09", f"source-prefix {source} covers {own}, classified as legitimate traffic", body)

    def _trusted_cdid(self, client: ClientAuthorization, path: MitigatePath) -> str | None:
        """§4.4.1: a server MUST ignore a 'cdid' sent directly by a DOTS client; only a configured gateway's counts."""
        if path.cdid is None or client.gateway or client.name in self.settings.trusted_gateways:
            return path.cdid
        log.info("ignoring cdid=%s from %s: not a trusted DOTS gateway", path.cdid, client.name)
        return None

    def _check_capacity(self, client: ClientAuthorization, cuid: str) -> None:
        owned = self.table.count(client.name)
        if owned >= self.settings.max_mitigations_per_client:
            raise refuse("5.03", f"this DOTS client already has {owned} mitigation requests (the server's limit)")
        if cuid not in self.cuid_owner:
            cuids = sum(1 for owner in self.cuid_owner.values() if owner == client.name)
            if cuids >= self.settings.max_cuids_per_client:
                raise refuse("5.03", f"this DOTS client already uses {cuids} 'cuid' values (the server's limit)")

    def _cross_client_conflict(
        self,
        client: ClientAuthorization,
        overlapping: list[tuple[Mitigation, Targets]],
        parsed: MitigationRequest,
        now: float,
    ) -> dict[str, Any] | None:
        """Overlap (OVERLAPPING: the table's overlap of the request's targets) with other clients' enforced
        mitigations (§4.4.1.3). Only the overlap, expressed in the requester's own targets, is revealed, never the
        other client's identity or 'mid'."""
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
            info["conflict-scope"] = common_targets.to_yang()
            return info
        lifetimes = [m.remaining_lifetime(now) for m, _ in blocking]
        retry = self.settings.indefinite_retry_timer if -1 in lifetimes else max(lifetimes)
        info = {
            "conflict-status": ConflictStatus.REQUEST_INACTIVE_OTHER_ACTIVE.label,
            **info,
            "retry-timer": retry,
            "conflict-scope": common_targets.to_yang(),
        }
        body = {MITIGATION_SCOPE: {"scope": [{"conflict-information": info}]}}
        raise refuse("4.09", "the request overlaps a mitigation that is already active for another DOTS client", body)

    # --- DELETE ------------------------------------------------------------------------------------

    def _delete(self, client: ClientAuthorization, path: MitigatePath, now: float, decision: Decision) -> Response:
        if path.mid is None:
            raise refuse("4.00", "the mandatory 'mid' Uri-Path is missing")
        found = self.table.get((path.cuid, path.mid))
        # §4.4.4: 2.02 even when the mid does not exist; another client's mitigation "does not exist".
        if found is None or found.record.client != client.name or found.terminating:
            return Response("2.02")
        status = next_status(kind_of(found.request.trigger_mitigation), found.status, Trigger.WITHDRAWN_BY_CLIENT)
        if status == Status.DOTS_CLIENT_WITHDRAWN_MITIGATION:
            period = self._terminating_period.get(client.name, self.settings.active_but_terminating)
            updated = found.with_record(status=int(status), terminating_until=now + period)
            decision.changes = SignalChanges(put_mitigations=[updated.record])
            decision.then(lambda: self.table.hold(updated))
            decision.events.append(changed_event(updated, now))
        else:
            decision.changes = SignalChanges(delete_mitigations=[found.key])
            decision.then(lambda: self.table.release(found.key))
            decision.events.append(changed_event(found, now, status))
        return Response("2.02")

    def _lengthen_terminating_period(self, client: ClientAuthorization) -> None:
        current = self._terminating_period.get(client.name, self.settings.active_but_terminating)
        self._terminating_period[client.name] = min(2 * current, self.settings.max_active_but_terminating)

    # --- timers, session loss, mitigators ----------------------------------------------------------

    def expire(self, now: float, decision: Decision) -> None:
        """End every mitigation whose lifetime (or active-but-terminating period) is over."""
        ended = self.table.due(now)
        if not ended:
            return
        decision.changes = SignalChanges(delete_mitigations=[m.key for m in ended])

        def release() -> None:
            for mitigation in ended:
                self.table.release(mitigation.key)

        decision.then(release)
        for mitigation in ended:
            final = next_status(
                kind_of(mitigation.request.trigger_mitigation), mitigation.status, Trigger.LIFETIME_ENDED
            )
            record = mitigation.record
            if mitigation.terminating:
                decision.events.append(withdrawn_event(mitigation, "client"))
            else:
                decision.events.append(
                    MitigationExpired(
                        record.client, record.cuid, record.mid, mitigation.mitigator_key, mitigation.enforcing
                    )
                )
            decision.events.append(changed_event(mitigation, now, final))

    def session_lost(self, client_name: str, now: float, decision: Decision) -> None:
        """§4.4.1.3/§4.7: activate the client's preconfigured requests; withdraw its overlapping immediate ones
        (no active-but-terminating period for server-initiated withdrawals)."""
        own = [m for m in self.table if m.record.client == client_name]
        preconfigured = [m for m in own if not m.request.trigger_mitigation and not m.enforcing]
        if not preconfigured:
            return
        activated = [
            m.with_record(status=int(next_status("preconfigured", m.status, Trigger.SIGNAL_LOST)), started_at=now)
            for m in preconfigured
        ]
        replaced = [
            m
            for m in own
            if m.request.trigger_mitigation
            and m.enforcing
            and any(overlap(m.targets, p.targets) for p in preconfigured)
        ]
        decision.changes = SignalChanges(
            put_mitigations=[m.record for m in activated], delete_mitigations=[m.key for m in replaced]
        )

        def apply() -> None:
            for mitigation in activated:
                self.table.hold(mitigation)
            for mitigation in replaced:
                self.table.release(mitigation.key)

        decision.then(apply)
        for mitigation in activated:
            reported = self.reported_details(mitigation.record.client, mitigation.targets)
            decision.events.append(activated_event(mitigation, reported))
            decision.events.append(changed_event(mitigation, now))
        for mitigation in replaced:
            final = next_status("immediate", mitigation.status, Trigger.SIGNAL_LOST)
            decision.events.append(withdrawn_event(mitigation, "server"))
            decision.events.append(changed_event(mitigation, now, final))

    def report_status(self, key: str, status: Status, now: float, decision: Decision) -> None:
        """A mitigator (or operator) reports progress for mitigation KEY ("<cuid>/<mid>"): statuses 1-4."""
        mitigation = self.table.by_mitigator_key(key)
        trigger = REPORT_TRIGGERS.get(status)
        if mitigation is None or trigger is None or status == mitigation.status:
            return
        kind = kind_of(mitigation.request.trigger_mitigation)
        if mitigation.terminating or not allowed(kind, mitigation.status, trigger):
            return
        stored = next_status(kind, mitigation.status, trigger)
        updated = mitigation.with_record(status=int(stored))
        decision.changes = SignalChanges(put_mitigations=[updated.record])
        decision.then(lambda: self.table.hold(updated))
        decision.events.append(changed_event(updated, now, status))
        if stored != status:  # Table 3: a preconfigured request whose attack stopped waits for a signal loss again
            decision.events.append(withdrawn_event(mitigation, "server"))
            decision.then(lambda: self.announcements.start(updated.key, int(status), now))

    def terminate(self, key: str, now: float, decision: Decision) -> bool:
        """The server ends mitigation KEY itself (status 6, "attack-mitigation-terminated", RFC 9132 §4.4.2): it is
        deleted at once (no active-but-terminating period: that courtesy is for a client's own DELETE), the
        actuator withdraws it if it was enforced or still enforced while terminating, and the owner's observers
        get the final status. False when there is no such mitigation."""
        mitigation = self.table.by_mitigator_key(key)
        if mitigation is None:
            return False
        final = next_status(
            kind_of(mitigation.request.trigger_mitigation), mitigation.status, Trigger.TERMINATED_BY_OPERATOR
        )
        decision.changes = SignalChanges(delete_mitigations=[mitigation.key])
        decision.then(lambda: self.table.release(mitigation.key))
        if mitigation.enforcing or mitigation.terminating:
            decision.events.append(withdrawn_event(mitigation, "operator"))
        decision.events.append(changed_event(mitigation, now, final))
        return True

    def report_counters(
        self,
        key: str,
        counters: Counters,
        now: float,
        decision: Decision,
        telemetry: Callable[[Mitigation], dict[str, Any] | None] = lambda mitigation: None,
    ) -> None:
        """Latest counters measured by the mitigator (kept in memory; never invented), and the RFC 9244 §9.2
        attributes TELEMETRY computes from them.

        A change is notified to the client's observers (§4.4.2.1), so how often counters are polled
        (`ServerSettings.counters_interval`) is how often an attack's progress reaches the client at most.
        """
        mitigation = self.table.by_mitigator_key(key)
        if mitigation is None:
            return
        attributes = telemetry(mitigation)
        if mitigation.counters == counters and mitigation.telemetry == attributes:
            return

        def record() -> None:
            mitigation.counters = counters
            mitigation.telemetry = attributes

        decision.then(record)
        if mitigation.counters.dropped() == counters.dropped() and mitigation.telemetry == attributes:
            return  # only the passed counts moved: kept (for §8.3 sums), nothing shown changed, nothing notified
        measured = Mitigation(
            mitigation.record, mitigation.request, mitigation.targets, counters, mitigation.conflict, None, attributes
        )
        decision.events.append(changed_event(measured, now))

    def repeat_announcements(self, now: float) -> list[Event]:
        signal_loss = Status.ATTACK_MITIGATION_SIGNAL_LOSS

        def still_parked(key: Any) -> bool:
            mitigation = self.table.get(key)
            return mitigation is not None and mitigation.status == signal_loss

        events: list[Event] = []
        for key, status, last in self.announcements.due(now, still_parked):
            mitigation = self.table.get(key)
            assert mitigation is not None
            events.append(changed_event(mitigation, now, Status(status)))
            if last:  # the transition to 8 itself
                events.append(changed_event(mitigation, now))
        return events
