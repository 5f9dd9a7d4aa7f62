"""The DOTS client core (RFC 9132, client side), sans-I/O in the style of aioquic.

The core builds requests (`mitigate`, `efficacy`, `withdraw`, `status`, `config_*`), learns from responses and
notifications (`handle_response`), answers the server's heartbeats (`handle_peer_heartbeat`), and runs the session
clocks (`next_timer` / `handle_timer(now)`): heartbeats from the current session configuration, configuration
refresh from Max-Age, lifetimes, redirection TTLs. What the shell must do is queued as events (`next_event()`).
`now` is wall-clock seconds (time.time()) because lifetimes are persisted across restarts.

After every (re)connection `connected(now)` queues what the server may have lost (it may have restarted): the
session configuration we set, the telemetry setups we installed (RFC 9244 §7), a refresh PUT for each of our
active mitigations (same mid and scope, remaining lifetime) and an Observe registration for each.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opendots.signal.client.core import requests as requests
from opendots.signal.client.core.events import (
    ConfigRejected,
    ConfigUpdated,
    CuidCollision,
    Event,
    MitigationConflict,
    MitigationGone,
    MitigationUpdated,
    Redirected,
    RedirectExpired,
    RedirectIgnored,
    SendRequest,
    SessionDegraded,
    SessionLost,
)
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.client.core.scope import MODULE, MitigationScope, ScopeError, scopes_overlap
from opendots.signal.client.core.state import ClientState, StoredMitigation
from opendots.signal.client.core.telemetry import TelemetryClient
from opendots.signal.client.core.timing import (
    DEFAULT_CONFIG_REFRESH,
    INFINITE_MAX_AGE,
    RobustTransmission,
    SessionParameters,
    SignalConfig,
    config_put_body,
)

# Statuses after which a mitigation no longer counts as active (RFC 9132 Table 3).
INACTIVE_STATUSES = frozenset(
    {"attack-mitigation-terminated", "attack-mitigation-withdrawn", "attack-mitigation-signal-loss"}
)
FINAL_STATUSES = frozenset({"attack-mitigation-terminated"})
REDIRECT_LOOP_WINDOW = 300.0  # §4.6: a server contacted within the last five minutes


@dataclass
class MitigationRecord:
    """What the client knows about one of its mitigations."""

    mid: int
    scope: MitigationScope
    expires_at: float | None = None
    """Wall-clock end of the granted lifetime; None: indefinite, or not granted yet."""
    granted: bool = False
    status: str | None = None
    last_entry: dict[str, Any] = field(default_factory=dict)
    updated_at: float | None = None
    withdrawing: bool = False

    def active(self) -> bool:
        if not self.granted or self.withdrawing or self.status in INACTIVE_STATUSES:
            return False
        # A preconfigured request (trigger-mitigation false) mitigates only once the server says it does.
        return self.scope.trigger_mitigation or self.status is not None

    def to_json(self) -> dict[str, Any]:
        """A summary for the local control API and the CLI."""
        return {
            "mid": self.mid,
            "scope": self.scope.to_yang(),
            "granted": self.granted,
            "status": self.status,
            "expires-at": self.expires_at,
            "updated-at": self.updated_at,
            "withdrawing": self.withdrawing,
            "last-entry": self.last_entry,
        }


@dataclass
class _Session:
    reliable: bool
    started: float
    next_heartbeat: float | None
    heartbeat_outstanding: bool = False
    missed: int = 0
    degraded_reported: bool = False
    last_peer_heartbeat: float = 0.0
    config_refresh_at: float | None = None


@dataclass
class _Redirect:
    alt_server: str
    expires_at: float | None


class DotsClientCore:
    def __init__(self, cuid: str, store: ClientState, *, now: float) -> None:
        self.cuid = cuid
        self.store = store
        self.config = SignalConfig()
        self.config_body: dict[str, Any] | None = None
        self.mitigations: dict[int, MitigationRecord] = {}
        for stored in store.load_mitigations():
            if stored.expires_at is not None and stored.expires_at <= now:
                store.delete_mitigation(stored.mid)
                continue
            self.mitigations[stored.mid] = MitigationRecord(
                stored.mid, stored.scope, stored.expires_at, granted=True, updated_at=None
            )
        self._own_config = store.load_session_config()
        self._session: _Session | None = None
        self._events: deque[Event] = deque()
        self.telemetry = TelemetryClient(cuid, store, self._events)
        """RFC 9244: telemetry setups and reports (their requests are built there, answered through here)."""
        self._redirect: _Redirect | None = None
        self._contacted: dict[str, float] = {}
        self.exchange_listeners: list[Callable[[DotsRequest, DotsResponse], None]] = []
        """Called with every answer the core learns from (notifications included): tracing, the demo, metrics."""
        self.relaying: Callable[[], bool] = lambda: False
        """True while mitigations this client relays for others are active (a DOTS gateway's upstream leg,
        opendots.gateway): they count as its own for mitigating-config and §4.7's session-loss rules."""

    # ---------------------------------------------------------------- queries
    @property
    def connected_session(self) -> bool:
        return self._session is not None

    @property
    def mitigating(self) -> bool:
        """RFC 9132 §4.5: a mitigation is active, so mitigating-config applies (and attack-time rules)."""
        return self.relaying() or any(record.active() for record in self.mitigations.values())

    @property
    def parameters(self) -> SessionParameters:
        return self.config.active(self.mitigating)

    @property
    def robust_transmission(self) -> RobustTransmission:
        """RFC 9362: the Q-Block parameters in force on this session now (mitigating-config while a mitigation is
        active, idle-config otherwise), as the server last reported them."""
        return self.config.robust(self.mitigating)

    @property
    def last_peer_heartbeat(self) -> float | None:
        """When the server's last heartbeat arrived on the current session (session start until the first)."""
        return self._session.last_peer_heartbeat if self._session is not None else None

    @property
    def heartbeats_failing(self) -> bool:
        """missing-hb-allowed heartbeats in a row went unanswered on the current session."""
        session = self._session
        return session is not None and session.missed >= self.parameters.missing_hb_allowed

    def peer_hb_status(self, now: float) -> bool:
        """True if the server's heartbeats reached us within the last 2 * heartbeat-interval (§4.7)."""
        session = self._session
        if session is None:
            return False
        interval = self.parameters.heartbeat_interval or 30
        return now - session.last_peer_heartbeat <= 2 * interval

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # ---------------------------------------------------------------- request builders
    def mitigate(self, scope: MitigationScope, now: float, mid: int | None = None) -> DotsRequest:
        """A new mitigation request (mid allocated and persisted first) or, with an active mid, its refresh."""
        existing = self.mitigations.get(mid) if mid is not None else None
        if existing is not None and existing.granted and existing.scope.with_lifetime(scope.lifetime) != scope:
            raise ScopeError(
                f"mid {mid} is active with another scope; a refresh must repeat the scope (RFC 9132 §4.4.1.3)"
            )
        # "No attack detected" is the condition for a mid rollover; an active mitigation means an attack.
        mid = self.store.allocate_mid(mid, rollover_allowed=not self.mitigating)
        if mid not in self.mitigations:
            self.mitigations[mid] = MitigationRecord(mid, scope)
        return requests.mitigation_request(self.cuid, mid, scope)

    def efficacy(self, mid: int, attack_status: str) -> DotsRequest:
        return requests.efficacy_request(self.cuid, mid, self._known(mid).scope, attack_status)

    def withdraw(self, mid: int) -> DotsRequest:
        record = self.mitigations.get(mid)
        if record is not None:
            record.withdrawing = True
        return requests.withdraw_request(self.cuid, mid)

    def status(self, mid: int | None = None, *, content: str | None = None, observe: int | None = None) -> DotsRequest:
        return requests.status_request(self.cuid, mid, content=content, observe=observe)

    def config_get(self, *, current_sid: bool = True) -> DotsRequest:
        """GET /config/sid=N for the negotiated values when we set some, else GET /config (§4.5.1)."""
        sid = self._own_config[0] if current_sid and self._own_config else None
        return requests.config_get_request(sid)

    def config_set(
        self, *, idle: dict[str, Any] | None = None, mitigating: dict[str, Any] | None = None
    ) -> DotsRequest:
        body = config_put_body(idle=idle, mitigating=mitigating)
        return requests.config_put_request(self.store.allocate_sid(), body)

    def config_delete(self) -> DotsRequest:
        return requests.config_delete_request(self._own_config[0] if self._own_config else None)

    def _known(self, mid: int) -> MitigationRecord:
        record = self.mitigations.get(mid)
        if record is None:
            raise ScopeError(f"mid {mid} is not one of this client's mitigations")
        return record

    # ---------------------------------------------------------------- session life
    def connected(self, now: float, *, reliable: bool, server: str | None = None) -> None:
        """A (D)TLS session is up: start heartbeats and re-create what the server may have lost."""
        self._session = _Session(reliable=reliable, started=now, next_heartbeat=None, last_peer_heartbeat=now)
        if server is not None:
            self._contacted[server] = now
        self._schedule_heartbeat(now)
        if self._own_config is not None:
            sid, body = self._own_config
            self._events.append(SendRequest(requests.config_put_request(sid, body), "recreate"))
        self._events.append(SendRequest(self.config_get(), "config"))
        self._events.extend(self.telemetry.recreate_events())  # RFC 9244 §7: setups are not tied to a session
        for record in sorted(self.mitigations.values(), key=lambda r: r.mid):
            if not record.granted or record.withdrawing:
                continue
            lifetime = self._remaining_lifetime(record, now)
            if lifetime is None:
                continue
            scope = record.scope.with_lifetime(lifetime)
            self._events.append(SendRequest(requests.mitigation_request(self.cuid, record.mid, scope), "recreate"))
            self._events.append(SendRequest(self.status(record.mid, observe=0), "observe"))

    def disconnected(self) -> None:
        self._session = None

    def redirection(self, now: float) -> dict[str, Any] | None:
        """The redirection in force (§4.6), for status displays: alternate server and seconds left of its TTL."""
        redirect = self._redirect
        if redirect is None:
            return None
        left = None if redirect.expires_at is None else max(0, math.ceil(redirect.expires_at - now))
        return {"alt-server": redirect.alt_server, "ttl-left": left}

    def server_contacted(self, server: str, now: float) -> None:
        self._contacted[server] = now

    def _remaining_lifetime(self, record: MitigationRecord, now: float) -> int | None:
        if record.expires_at is None:
            return record.scope.lifetime
        remaining = math.ceil(record.expires_at - now)
        return remaining if remaining > 0 else None

    # ---------------------------------------------------------------- timers
    def next_timer(self) -> float | None:
        deadlines = [record.expires_at for record in self.mitigations.values() if record.expires_at is not None]
        if self._session is not None:
            deadlines += [t for t in (self._session.next_heartbeat, self._session.config_refresh_at) if t is not None]
        if self._redirect is not None and self._redirect.expires_at is not None:
            deadlines.append(self._redirect.expires_at)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        for record in list(self.mitigations.values()):
            if record.expires_at is not None and record.expires_at <= now:
                self._forget(record.mid, "lifetime expired")
        redirect = self._redirect
        if redirect is not None and redirect.expires_at is not None and redirect.expires_at <= now:
            # §4.6: no fallback while an attack is active, look again later; but an alternate server that cannot
            # be reached serves no attack: without a session to it, fall back as soon as the TTL has passed.
            if self.mitigating and self._session is not None:
                redirect.expires_at = now + max(self.parameters.heartbeat_interval, DEFAULT_CONFIG_REFRESH)
            else:
                self._redirect = None
                self._events.append(RedirectExpired(redirect.alt_server))
        session = self._session
        if session is None:
            return
        if session.config_refresh_at is not None and session.config_refresh_at <= now:
            if self.mitigating:  # §4.5.3: refresh requests MUST NOT be sent during an attack
                session.config_refresh_at = now + DEFAULT_CONFIG_REFRESH
            else:
                session.config_refresh_at = None
                self._events.append(SendRequest(self.config_get(), "config-refresh"))
        if session.next_heartbeat is not None and session.next_heartbeat <= now:
            self._heartbeat_due(session, now)

    def _schedule_heartbeat(self, now: float) -> None:
        session = self._session
        if session is None:
            return
        interval = self.parameters.heartbeat_interval
        session.next_heartbeat = None if interval == 0 else now + interval  # 0 disables heartbeats (§4.5.1)

    def _heartbeat_due(self, session: _Session, now: float) -> None:
        if session.heartbeat_outstanding:
            session.missed += 1
        allowed = self.parameters.missing_hb_allowed
        if session.missed >= allowed:
            if not self.mitigating:
                self._session = None
                self._events.append(SessionLost(session.missed))
                return
            if not session.degraded_reported:  # §4.7: under attack keep the session and try a new one alongside
                session.degraded_reported = True
                self._events.append(SessionDegraded(session.missed))
        session.heartbeat_outstanding = True
        self._events.append(SendRequest(requests.heartbeat_request(self.peer_hb_status(now)), "heartbeat"))
        self._schedule_heartbeat(now)

    def _peer_alive(self, now: float) -> None:
        session = self._session
        if session is not None:
            session.heartbeat_outstanding = False
            session.missed = 0
            session.degraded_reported = False

    # ---------------------------------------------------------------- incoming
    def handle_peer_heartbeat(self, body: dict[str, Any] | None, now: float) -> tuple[str, str | None]:
        """The server's PUT /hb (§4.7): (CoAP code, diagnostic) to answer with."""
        heartbeat = (body or {}).get(f"{MODULE}:heartbeat")
        if not isinstance(heartbeat, dict) or not isinstance(heartbeat.get("peer-hb-status"), bool):
            return "4.00", "heartbeat needs ietf-dots-signal-channel:heartbeat with a boolean peer-hb-status"
        if self._session is not None:
            self._session.last_peer_heartbeat = now
        self._peer_alive(now)
        return "2.04", None

    def handle_response(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        """Learn from the answer to REQUEST (also every Observe notification of a status request)."""
        for listener in self.exchange_listeners:
            listener(request, response)
        self._peer_alive(now)
        if response.code == "5.03" and response.body and f"{MODULE}:redirected-signal" in response.body:
            self._handle_redirect(request, response, now)
            return
        handler = {
            RequestKind.MITIGATE: self._mitigate_answered,
            RequestKind.EFFICACY: self._mitigate_answered,
            RequestKind.WITHDRAW: self._withdraw_answered,
            RequestKind.STATUS: self._status_answered,
            RequestKind.CONFIG_GET: self._config_answered,
            RequestKind.CONFIG_PUT: self._config_put_answered,
            RequestKind.CONFIG_DELETE: self._config_delete_answered,
            RequestKind.HEARTBEAT: lambda request, response, now: None,
        }.get(request.kind)
        if handler is None:  # RFC 9244 requests
            self.telemetry.handle_response(request, response)
            return
        handler(request, response, now)

    def request_failed(self, request: DotsRequest) -> None:
        """No answer at all (retransmissions exhausted or the session broke)."""
        if request.kind is RequestKind.MITIGATE and request.mid is not None:
            record = self.mitigations.get(request.mid)
            if record is not None and not record.granted:
                del self.mitigations[request.mid]  # the mid stays burnt: the server may have seen it
        if request.kind is RequestKind.WITHDRAW and request.mid in self.mitigations:
            self.mitigations[request.mid].withdrawing = False

    def _mitigate_answered(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        assert request.mid is not None and request.scope is not None
        record = self.mitigations.get(request.mid)
        was_mitigating = self.mitigating
        if response.success:
            if record is None:
                record = self.mitigations[request.mid] = MitigationRecord(request.mid, request.scope)
            entry = response.scopes[0] if response.scopes else {}
            lifetime = entry.get("lifetime", request.scope.lifetime)
            record.granted = True
            record.withdrawing = False
            record.scope = request.scope  # a refresh may have changed the requested lifetime
            record.expires_at = None if int(lifetime) < 0 else now + int(lifetime)
            record.updated_at = now
            record.last_entry = {**record.last_entry, **entry}
            # Keep the originally requested lifetime in the stored scope; the grant is in expires_at.
            self.store.save_mitigation(StoredMitigation(record.mid, record.scope, record.expires_at))
            # §4.4.1: the server deleted this client's overlapping requests with lower mids; kept here, they would
            # be re-sent after a restart (and refused 4.09) and listed as if still held.
            for other in [m for m in self.mitigations.values() if m.mid < record.mid]:
                if scopes_overlap(other.scope, record.scope):
                    self._forget(other.mid, f"replaced by mid {record.mid} (RFC 9132 §4.4.1)")
            self._config_set_may_have_switched(was_mitigating, now)
            self._events.append(MitigationUpdated(record.mid, record.status, record.last_entry))
            return
        if response.code == "4.09":
            entry = response.scopes[0] if response.scopes else {}
            conflict = entry.get("conflict-information", {})
            if conflict.get("conflict-cause") == "cuid-collision":
                self._events.append(CuidCollision(request.mid))
            else:
                self._events.append(MitigationConflict(request.mid, conflict, conflict.get("retry-timer")))
        if record is not None and not record.granted and request.kind is RequestKind.MITIGATE:
            del self.mitigations[request.mid]
            self._events.append(MitigationGone(request.mid, f"refused with {response.code}"))

    def _withdraw_answered(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        assert request.mid is not None
        if response.success:
            # The record stopped counting as active when the DELETE was built; the config set may switch now.
            self._forget(request.mid, "withdrawn")
            if not self.mitigating:
                self._schedule_heartbeat(now)
        elif request.mid in self.mitigations:
            self.mitigations[request.mid].withdrawing = False

    def _status_answered(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        if response.code == "4.04" and request.mid is not None:
            record = self.mitigations.get(request.mid)
            if record is not None and record.granted and not record.withdrawing:
                # The server lost it (restart without state?): re-create it with what remains of its lifetime.
                lifetime = self._remaining_lifetime(record, now)
                if lifetime is not None:
                    scope = record.scope.with_lifetime(lifetime)
                    self._events.append(
                        SendRequest(requests.mitigation_request(self.cuid, record.mid, scope), "recreate")
                    )
            return
        if not response.success:
            return
        was_mitigating = self.mitigating
        for entry in response.scopes:
            mid = entry.get("mid")
            record = self.mitigations.get(mid) if isinstance(mid, int) else None
            if record is None:
                continue  # not ours to track (e.g. created by an earlier client installation)
            record.status = entry.get("status", record.status)
            record.last_entry = {**record.last_entry, **entry}
            record.updated_at = now
            if "lifetime" in entry:
                lifetime = int(entry["lifetime"])
                record.expires_at = None if lifetime < 0 else now + lifetime
            self._events.append(MitigationUpdated(record.mid, record.status, record.last_entry))
            if record.status in FINAL_STATUSES:
                self._forget(record.mid, record.status or "terminated")
        self._config_set_may_have_switched(was_mitigating, now)

    def _config_answered(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        if not response.success or response.body is None:
            return
        previous = self.parameters
        self.config = SignalConfig.from_body(response.body)
        self.config_body = response.body
        session = self._session
        if session is not None:
            max_age = DEFAULT_CONFIG_REFRESH if response.max_age is None else response.max_age
            # Refresh before Max-Age runs out (§4.5.3): at 90 %, and never in a tight loop.
            session.config_refresh_at = None if max_age >= INFINITE_MAX_AGE else now + max(1.0, 0.9 * max_age)
            if self.parameters != previous:
                self._schedule_heartbeat(now)
        self._events.append(ConfigUpdated(response.body))

    def _config_put_answered(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        assert request.sid is not None and request.body is not None
        if response.success:
            self._own_config = (request.sid, request.body)
            self.store.save_session_config(request.sid, request.body)
            self._events.append(SendRequest(self.config_get(), "config"))  # learn the negotiated values
        elif response.code == "4.22":
            self._events.append(ConfigRejected(response.code, response.diagnostic))

    def _config_delete_answered(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        if response.success:
            self._own_config = None
            self.store.delete_session_config()
            self._events.append(SendRequest(self.config_get(), "config"))

    def _config_set_may_have_switched(self, was_mitigating: bool, now: float) -> None:
        # idle-config <-> mitigating-config may change the heartbeat interval (§4.5): restart its clock.
        if was_mitigating != self.mitigating:
            self._schedule_heartbeat(now)

    def _forget(self, mid: int, reason: str) -> None:
        if self.mitigations.pop(mid, None) is not None:
            self.store.delete_mitigation(mid)
            self._events.append(MitigationGone(mid, reason))

    def _handle_redirect(self, request: DotsRequest, response: DotsResponse, now: float) -> None:
        signal = (response.body or {})[f"{MODULE}:redirected-signal"]
        alt_server = str(signal.get("alt-server", ""))
        records = tuple(str(r) for r in signal.get("alt-server-record", ()))
        last = self._contacted.get(alt_server)
        if not alt_server or (last is not None and now - last < REDIRECT_LOOP_WINDOW):
            self._events.append(RedirectIgnored(alt_server))
            return
        if response.max_age is None:
            ttl: int | None = int(DEFAULT_CONFIG_REFRESH)
        elif response.max_age >= INFINITE_MAX_AGE:
            ttl = None
        else:
            ttl = response.max_age
        # TTL 0: the redirection applies to the failed request only, nothing to remember.
        self._redirect = None if ttl == 0 else _Redirect(alt_server, None if ttl is None else now + ttl)
        self._events.append(Redirected(alt_server, records, ttl, request))
