"""The gateway's relay core (sans-I/O): a downstream mitigation request in, what to send upstream (or the answer
now) out; the upstream answer in, the downstream answer out.

    core = RelayCore(settings, state, now)
    step = core.request(inbound, now)             # Reply (answer now) or Outbound (send it upstream)
    reply = core.answered(step, code, payload, max_age, now)   # or core.failed(step, reason)

Two kinds (RFC 9132 §4.4.1, RFC 8811 §2.3):
- client-domain: every downstream client's requests leave under the gateway's own 'cuid' on its one upstream
  session; each downstream (client, cuid, mid) gets an upstream 'mid' of its own (allocated durably before the
  request leaves, as a client's 'mid' must be, §4.4.1.1), and the 'mid's in the answers are mapped back. A client
  sees only its own mitigations: a GET of all is filtered to them.
- server-domain: the request keeps its 'cuid' and 'mid'; the 'cdid' Uri-Path (§4.4.1.2) is the downstream
  client's certificate SPKI hash, any 'cdid' the client sent is stripped.
Both add Hop-Limit (RFC 8768, `hoplimit`). While the upstream session is down, requests get 5.03 (Service
Unavailable, RFC 9132 §4.4.1: the server side is "currently unavailable") with a Max-Age saying when to retry
(RFC 7252 §5.9.3.4); the accepted mitigations are kept (`RelayState`) and `reestablish` re-sends them when the
session is back.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from opendots.config import ClientAuthorization
from opendots.gateway.data_names import renamed_inbound, signal_down
from opendots.gateway.hoplimit import HOP_LIMIT_REACHED, forward_value, relayed_diagnostic
from opendots.model import ModelError, decode_signal, encode_signal
from opendots.signal.server.core.authorization import check_authorized
from opendots.signal.server.core.messages import Rejected
from opendots.signal.server.core.paths import MitigatePath, parse_path
from opendots.signal.server.core.scope import parse_scope_body

log = logging.getLogger(__name__)

Kind = Literal["client-domain", "server-domain"]
KINDS = ("client-domain", "server-domain")
SCOPE = "ietf-dots-signal-channel:mitigation-scope"
DOTS_CBOR, TEXT_PLAIN = 271, 0
ENDED = frozenset({"attack-mitigation-terminated", "attack-mitigation-withdrawn"})
LOOP_ALERT_INTERVAL = 60.0  # seconds between two error logs of the same loop (every pass is counted)
UPSTREAM_DOWN = "the upstream DOTS server cannot be reached through this gateway; retry later"


@dataclass(frozen=True)
class RelaySettings:
    kind: Kind
    identity: str
    """This gateway's identifier in 5.08 diagnostics (RFC 8768 §4)."""
    upstream_cuid: str
    """The gateway's own 'cuid' (its upstream certificate's): a client-domain gateway's requests carry it."""
    hop_limit: int = 16
    rewrite_hop_limit: bool = False
    """RFC 8768 §3: a gateway at an administrative boundary MAY ignore the received value and insert its own."""
    insert_cdid: bool = True
    """RFC 9132 §4.4.1.2: server-domain gateways SHOULD support a setting for whether 'cdid' is inserted."""
    retry_after: int = 30
    """Max-Age (s) of the 5.03 answered while the upstream session is down."""
    diagnostic_room: int = 1024
    """Bytes a relayed 5.08 diagnostic may take (RFC 8768 §4: prepend only if it fits the path MTU)."""


@dataclass
class Link:
    """A downstream mitigation and its upstream counterpart, kept while it is accepted upstream."""

    client: str
    cuid: str
    mid: int
    upstream_cuid: str
    upstream_mid: int
    cdid: str | None
    payload: bytes
    """The last accepted PUT body (CBOR): re-sent when the upstream session comes back."""
    accepted_at: float
    expires_at: float | None
    status: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.client, self.cuid, self.mid)

    def upstream_path(self) -> tuple[str, ...]:
        cdid = (f"cdid={self.cdid}",) if self.cdid else ()
        return ("mitigate", *cdid, f"cuid={self.upstream_cuid}", f"mid={self.upstream_mid}")

    def to_json(self, now: float) -> dict[str, Any]:
        left = None if self.expires_at is None else max(0, math.ceil(self.expires_at - now))
        return {
            "client": self.client,
            "downstream": f"cuid={self.cuid}/mid={self.mid}",
            "upstream": "/".join(self.upstream_path()[1:]),
            "status": self.status,
            "lifetime-left": left,
        }


class RelayState(Protocol):
    """What the relay keeps durably (opendots.gateway.store.RelayStore)."""

    def allocate_mid(self) -> int:
        """A new upstream 'mid', durable before this returns."""
        ...

    def save(self, link: Link) -> None: ...

    def delete(self, key: tuple[str, str, int]) -> None: ...

    def load(self) -> list[Link]: ...


@dataclass(frozen=True)
class Inbound:
    """A request from an authenticated downstream client, its Uri-Path after /.well-known/dots."""

    client: str
    peer_cuid: str
    """The SPKI hash of the client's certificate: the 'cdid' a server-domain gateway supplies (§4.4.1.2)."""
    method: str
    path: tuple[str, ...]
    query: tuple[str, ...] = ()
    payload: bytes | None = None
    hop_limit: int | None = None
    observe: int | None = None
    if_match_empty: bool = False
    authorization: ClientAuthorization | None = None
    """What the client may protect (the gateway's [[clients]] entry); None: not checked here."""


@dataclass(frozen=True)
class Outbound:
    """A request to send upstream, with what the relay needs to turn its answer into the downstream one."""

    method: str
    path: tuple[str, ...]
    query: tuple[str, ...]
    payload: bytes | None
    hop_limit: int
    observe: int | None
    if_match_empty: bool
    client: str
    cuid: str
    mid: int | None
    upstream_mid: int | None
    cdid: str | None
    reestablish: bool = False
    generation: int = 0
    """The relay's withdrawal count when this was built: a PUT built before its mitigation was withdrawn is stale."""


@dataclass(frozen=True)
class Reply:
    """The downstream answer."""

    code: str
    payload: bytes = b""
    content_format: int | None = None
    max_age: int | None = None

    @classmethod
    def error(cls, code: str, diagnostic: str, max_age: int | None = None) -> Reply:
        return cls(code, diagnostic.encode(), TEXT_PLAIN if diagnostic else None, max_age)

    @property
    def diagnostic(self) -> str:
        return self.payload.decode("utf-8", "replace") if self.content_format != DOTS_CBOR else ""


@dataclass
class RelayCore:
    settings: RelaySettings
    state: RelayState
    upstream_up: bool = False
    links: dict[tuple[str, str, int], Link] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    """relayed, answered-locally, upstream-down, hop-limit-reached, loops-detected, reestablished: for metrics."""
    _pending: dict[tuple[str, str, int], int] = field(default_factory=dict)
    stale: list[Outbound] = field(default_factory=list)
    """Upstream DELETEs to send: a PUT relayed before its mitigation was withdrawn was accepted after the withdrawal."""
    resend: list[Outbound] = field(default_factory=list)
    """Upstream PUTs re-establishing a mitigation a GET found gone upstream though it has lifetime left."""
    _withdrawals: int = 0
    _withdrawn: dict[tuple[str, str, int], int] = field(default_factory=dict)
    _in_flight: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    _loops_logged: dict[str, float] = field(default_factory=dict)
    data_names: Callable[[str], str] | None = None
    """Client-domain with the data channel relayed: a client's (by name) prefix of its alias and ACL names upstream
    (opendots.gateway.data_names), so that 'alias-name' and 'acl-list' name what it made there."""

    def __post_init__(self) -> None:
        # Indexes, so that no request scans every link: by upstream (cuid, mid), and downstream (client, cuid) -> mids.
        self._by_upstream: dict[tuple[str, int], Link] = {}
        self._by_pair: dict[tuple[str, str], set[int]] = {}
        self._cuid_clients: dict[str, Counter[str]] = {}
        self._per_client: Counter[str] = Counter()
        for link in self.state.load():
            self._hold(link)

    @property
    def client_domain(self) -> bool:
        return self.settings.kind == "client-domain"

    # --- downstream request → upstream request ------------------------------------------------------------

    def request(self, inbound: Inbound, now: float) -> Reply | Outbound:
        settings = self.settings
        hop = forward_value(
            inbound.hop_limit,
            initial=settings.hop_limit,
            identity=settings.identity,
            rewrite=settings.rewrite_hop_limit,
        )
        if hop.value is None:
            if hop.code == HOP_LIMIT_REACHED:
                self.counters["hop-limit-reached"] += 1
                log.warning("Hop-Limit exhausted: %s %s from %s not relayed (RFC 8768 §3)", inbound.method,
                            "/".join(inbound.path), inbound.client)  # fmt: skip
            return self._local(Reply.error(hop.code, hop.diagnostic))
        try:
            path = parse_path(inbound.path)
        except Rejected as refused:
            return self._local(Reply.error(refused.response.code, refused.response.diagnostic or ""))
        if not isinstance(path, MitigatePath):
            # RFC 9244 telemetry is not relayed; /config and /hb never reach the relay (each leg has its own).
            return self._local(Reply.error("5.01", "this DOTS gateway relays the mitigate resource only"))
        if inbound.method not in ("GET", "PUT", "DELETE"):
            return self._local(Reply.error("4.05", f"{inbound.method} is not a DOTS mitigation method"))
        if inbound.method in ("PUT", "DELETE") and path.mid is None:
            return self._local(Reply.error("4.00", f"a {inbound.method} needs a 'mid' Uri-Path (RFC 9132 §4.4)"))
        if inbound.method == "PUT" and not inbound.if_match_empty and inbound.authorization is not None:
            refused = _out_of_scope(inbound.payload, inbound.authorization)
            if refused is not None:
                return self._local(refused)
        if not self.upstream_up:
            self.counters["upstream-down"] += 1
            return Reply.error("5.03", UPSTREAM_DOWN, max_age=settings.retry_after)
        if self.client_domain:
            step = self._client_domain(inbound, path, hop.value)
        else:
            step = self._server_domain(inbound, path, hop.value)
        if isinstance(step, Reply):
            return self._local(step)
        self.counters["relayed"] += 1
        return step

    def _local(self, reply: Reply) -> Reply:
        self.counters["answered-locally"] += 1
        return reply

    def _client_domain(self, inbound: Inbound, path: MitigatePath, hop: int) -> Reply | Outbound:
        own = self.settings.upstream_cuid
        upstream_mid: int | None = None
        if path.mid is not None:
            key = (inbound.client, path.cuid, path.mid)
            link = self.links.get(key)
            if link is not None:
                upstream_mid = link.upstream_mid
            elif inbound.method == "PUT" and inbound.if_match_empty:
                # §4.4.3: an efficacy update names an existing mitigation; none is held for this one.
                return Reply.error("4.04", f"no mitigation mid={path.mid} of cuid={path.cuid} to update here")
            elif inbound.method == "PUT":
                upstream_mid = self._pending.get(key)
                if upstream_mid is None:
                    upstream_mid = self._pending[key] = self.state.allocate_mid()
            else:
                return Reply.error("4.04", f"no mitigation mid={path.mid} of cuid={path.cuid} here")
        elif not self._own_links(inbound.client, path.cuid):
            return Reply.error("4.04", f"no mitigation of cuid={path.cuid} here")
        mid_part = () if upstream_mid is None else (f"mid={upstream_mid}",)
        if self.data_names is not None:
            inbound = renamed_inbound(inbound, self.data_names(inbound.client))
        return self._outbound(inbound, ("mitigate", f"cuid={own}", *mid_part), hop, path, upstream_mid, None)

    def _server_domain(self, inbound: Inbound, path: MitigatePath, hop: int) -> Reply | Outbound:
        # §4.4.1.1: 'cuid' collisions are RECOMMENDED to be handled by server-domain gateways: upstream every client
        # behind this gateway is the gateway, so two of them with one 'cuid' would share its mitigations there.
        holders = self._cuid_clients.get(path.cuid)
        if holders and inbound.client not in holders:
            body = {SCOPE: {"scope": [{"conflict-information": {"conflict-cause": "cuid-collision"}}]}}
            return Reply("4.09", encode_signal(body, validate=False), DOTS_CBOR)
        # §4.4.1.2: a first server-domain gateway MUST strip a 'cdid' supplied by the client, and inserts its own.
        cdid = inbound.peer_cuid if self.settings.insert_cdid else None
        cdid_part = (f"cdid={cdid}",) if cdid else ()
        mid_part = () if path.mid is None else (f"mid={path.mid}",)
        upstream = ("mitigate", *cdid_part, f"cuid={path.cuid}", *mid_part)
        return self._outbound(inbound, upstream, hop, path, path.mid, cdid)

    def _outbound(
        self,
        inbound: Inbound,
        upstream: tuple[str, ...],
        hop: int,
        path: MitigatePath,
        upstream_mid: int | None,
        cdid: str | None,
    ) -> Outbound:
        if inbound.method == "PUT" and path.mid is not None:
            self._in_flight[(inbound.client, path.cuid, path.mid)] += 1
        return Outbound(
            method=inbound.method,
            path=upstream,
            query=inbound.query,
            payload=inbound.payload,
            hop_limit=hop,
            observe=inbound.observe if inbound.method == "GET" else None,
            if_match_empty=inbound.if_match_empty,
            client=inbound.client,
            cuid=path.cuid,
            mid=path.mid,
            upstream_mid=upstream_mid,
            cdid=cdid,
            generation=self._withdrawals,
        )

    def _own_links(self, client: str, cuid: str) -> list[Link]:
        return [self.links[(client, cuid, mid)] for mid in self._by_pair.get((client, cuid), ())]

    # --- upstream answer → downstream answer ----------------------------------------------------------------

    def answered(
        self, sent: Outbound, code: str, payload: bytes, content_format: int | None, max_age: int | None, now: float
    ) -> Reply:
        """The upstream answer to SENT: links updated, the downstream answer built."""
        key = (sent.client, sent.cuid, sent.mid) if sent.mid is not None else None
        current = self.current(sent)
        if key is not None and sent.method == "PUT":
            self._unpend(key, sent.upstream_mid)
            self._settled(key)
        if code == HOP_LIMIT_REACHED:
            return self._hop_limit_reached(sent, payload, now)
        success = code.startswith("2.")
        body = self._decoded(payload, content_format) if payload else None
        if key is not None and sent.method == "PUT" and success and not current:
            # The client withdrew it while this PUT (a duplicate, or our re-establishment) was on its way: it stays
            # withdrawn, here and upstream.
            self.counters["stale-accepted"] += 1
            if key not in self.links and not self._in_flight[key]:  # else a newer PUT decides what stays upstream
                self.stale.append(self._withdrawal(sent))
        elif key is not None and sent.method == "PUT" and success:
            self._accepted(sent, key, body, now)
        elif key is not None and sent.method == "DELETE" and (success or code == "4.04"):
            link = self.links.get(key)
            if link is not None and sent.upstream_mid not in (None, link.upstream_mid):
                return Reply(code, payload, content_format, max_age)  # a stale PUT's clean-up, not this link's
            self._forget(key)
            if self._in_flight[key]:
                self._withdrawals += 1
                self._withdrawn[key] = self._withdrawals
        elif key is not None and sent.method == "GET" and code == "4.04" and self.client_domain:
            self._gone_upstream(key, now)
        if body is not None:
            self._note_statuses(sent, body)
        if not self.client_domain or body is None:
            return Reply(code, payload, content_format, max_age)
        rewritten = self._rewrite(sent, body)
        if rewritten is None:
            return Reply.error("4.04", f"no mitigation of cuid={sent.cuid} here")
        return Reply(code, encode_signal(rewritten, validate=False), DOTS_CBOR, max_age)

    def notification(
        self, sent: Outbound, code: str, payload: bytes, content_format: int | None, max_age: int | None, now: float
    ) -> Reply | None:
        """An Observe notification for SENT (a GET): the downstream one, or None when nothing in it is the
        observer's (client-domain: another client's mitigation changed)."""
        reply = self.answered(sent, code, payload, content_format, max_age, now)
        if self.client_domain and sent.mid is None and reply.code == "4.04" and code != "4.04":
            return None
        return reply

    def failed(self, sent: Outbound, reason: str) -> Reply:
        """No answer from upstream (the session broke, or every transmission went unanswered)."""
        if sent.mid is not None and sent.method == "PUT":
            self._unpend((sent.client, sent.cuid, sent.mid), sent.upstream_mid)
            self._settled((sent.client, sent.cuid, sent.mid))
        self.counters["upstream-failed"] += 1
        return Reply.error("5.03", f"{UPSTREAM_DOWN} ({reason})", max_age=self.settings.retry_after)

    def current(self, sent: Outbound) -> bool:
        """False for a PUT built before its mitigation was withdrawn (RFC 9132 §4.4.4): it must not re-create it."""
        if sent.method != "PUT" or sent.mid is None:
            return True
        withdrawn = self._withdrawn.get((sent.client, sent.cuid, sent.mid))
        return withdrawn is None or withdrawn <= sent.generation

    def dropped(self, sent: Outbound) -> None:
        """SENT (a PUT) will not be sent after all."""
        if sent.mid is not None and sent.method == "PUT":
            self._settled((sent.client, sent.cuid, sent.mid))

    def _unpend(self, key: tuple[str, str, int], upstream_mid: int | None) -> None:
        if self._pending.get(key) == upstream_mid:  # not a newer PUT's allocation
            del self._pending[key]

    def _settled(self, key: tuple[str, str, int]) -> None:
        # A withdrawal is remembered only while a PUT built before it may still be answered: bounded by those.
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]
            self._withdrawn.pop(key, None)

    def _withdrawal(self, sent: Outbound) -> Outbound:
        assert sent.upstream_mid is not None
        path = ("mitigate", *((f"cdid={sent.cdid}",) if sent.cdid else ()), *sent.path[-2:])
        return Outbound(
            method="DELETE", path=path, query=(), payload=None, hop_limit=self.settings.hop_limit, observe=None,
            if_match_empty=False, client=sent.client, cuid=sent.cuid, mid=sent.mid, upstream_mid=sent.upstream_mid,
            cdid=sent.cdid, generation=self._withdrawals,
        )  # fmt: skip

    def _hop_limit_reached(self, sent: Outbound, payload: bytes, now: float) -> Reply:
        relayed = relayed_diagnostic(
            payload.decode("utf-8", "replace"), identity=self.settings.identity, room=self.settings.diagnostic_room
        )
        if relayed.loop:
            self.counters["loops-detected"] += 1
            # One looping request comes back through this gateway once per pass: one alert per loop and minute.
            last = self._loops_logged.get(relayed.diagnostic)
            if len(self._loops_logged) > 64:
                self._loops_logged.clear()
            self._loops_logged[relayed.diagnostic] = now
            log.log(
                logging.ERROR if last is None or now - last > LOOP_ALERT_INTERVAL else logging.DEBUG,
                "DOTS gateway loop: a 5.08 (Hop Limit Reached) for %s from %s already names this gateway (%s): "
                "not relayed, answered with a 5.08 reporting the loop (RFC 8768 §4)",
                "/".join(sent.path),
                sent.client,
                relayed.diagnostic,
            )
        else:
            self.counters["hop-limit-relayed"] += 1
        return Reply.error(HOP_LIMIT_REACHED, relayed.diagnostic)

    def _decoded(self, payload: bytes, content_format: int | None) -> dict[str, Any] | None:
        if content_format not in (None, DOTS_CBOR):
            return None
        try:
            return decode_signal(payload)
        except (ModelError, ValueError):
            return None

    def _accepted(self, sent: Outbound, key: tuple[str, str, int], body: dict[str, Any] | None, now: float) -> None:
        assert sent.upstream_mid is not None and sent.payload is not None and sent.mid is not None
        entries = _entries(body)
        lifetime = entries[0].get("lifetime") if entries else None
        expires_at = None if not isinstance(lifetime, int) or lifetime < 0 else now + lifetime
        upstream_cuid = self.settings.upstream_cuid if self.client_domain else sent.cuid
        previous = self.links.get(key)
        link = Link(
            client=sent.client,
            cuid=sent.cuid,
            mid=sent.mid,
            upstream_cuid=upstream_cuid,
            upstream_mid=sent.upstream_mid,
            cdid=sent.cdid,
            payload=previous.payload if sent.reestablish and previous else sent.payload,
            accepted_at=previous.accepted_at if previous is not None else now,
            expires_at=expires_at,
            status=previous.status if previous is not None else None,
        )
        self.state.save(link)
        if previous is not None:
            self._release(previous)
        self._hold(link)
        if sent.reestablish:
            self.counters["reestablished"] += 1

    def _forget(self, key: tuple[str, str, int]) -> None:
        link = self.links.get(key)
        if link is not None:
            self.state.delete(key)
            self._release(link)

    def _hold(self, link: Link) -> None:
        self.links[link.key] = link
        self._by_upstream[(link.upstream_cuid, link.upstream_mid)] = link
        self._by_pair.setdefault((link.client, link.cuid), set()).add(link.mid)
        self._cuid_clients.setdefault(link.cuid, Counter())[link.client] += 1
        self._per_client[link.client] += 1

    def _release(self, link: Link) -> None:
        del self.links[link.key]
        self._by_upstream.pop((link.upstream_cuid, link.upstream_mid), None)
        mids = self._by_pair.get((link.client, link.cuid), set())
        mids.discard(link.mid)
        if not mids:
            self._by_pair.pop((link.client, link.cuid), None)
        self._per_client[link.client] -= 1
        if self._per_client[link.client] <= 0:
            del self._per_client[link.client]
        clients = self._cuid_clients[link.cuid]
        clients[link.client] -= 1
        if clients[link.client] <= 0:
            del clients[link.client]
        if not clients:
            del self._cuid_clients[link.cuid]

    def holds(self, client: str) -> bool:
        """Whether mitigations of CLIENT are held upstream (it is under attack, RFC 9132 §4.5)."""
        return self._per_client[client] > 0

    def _note_statuses(self, sent: Outbound, body: dict[str, Any]) -> None:
        upstream_cuid = self.settings.upstream_cuid if self.client_domain else sent.cuid
        for entry in _entries(body):
            link = self._by_upstream.get((upstream_cuid, entry.get("mid")))  # type: ignore[arg-type]
            if link is None or link.client != sent.client:
                continue
            status = entry.get("status")
            if isinstance(status, str):
                link.status = status
                if status in ENDED:
                    self._forget(link.key)

    def _rewrite(self, sent: Outbound, body: dict[str, Any]) -> dict[str, Any] | None:
        """A client-domain answer with the upstream 'mid's mapped back to SENT's client's; entries of other clients
        dropped (None: nothing left of a list that had entries)."""
        if self.data_names is not None:
            body = signal_down(body, self.data_names(sent.client))
        container = body.get(SCOPE)
        if not isinstance(container, dict) or not isinstance(container.get("scope"), list):
            return body
        own = self.settings.upstream_cuid
        kept = []
        for entry in container["scope"]:
            entry = dict(entry)
            if "mid" in entry:
                link = self._by_upstream.get((own, entry["mid"]))
                if link is not None and link.client == sent.client and link.cuid == sent.cuid:
                    entry["mid"] = link.mid
                elif sent.upstream_mid is not None and entry["mid"] == sent.upstream_mid and sent.mid is not None:
                    entry["mid"] = sent.mid  # the answer to a PUT not linked yet (refused, or before _accepted)
                else:
                    continue  # another client's mitigation: never shown to this one
            conflict = entry.get("conflict-information")
            if isinstance(conflict, dict) and isinstance(conflict.get("conflict-scope"), dict):
                scope = dict(conflict["conflict-scope"])
                other = self._by_upstream.get((own, scope.get("mid")))  # type: ignore[arg-type]
                if other is not None and other.client == sent.client:
                    scope["mid"] = other.mid
                else:
                    scope.pop("mid", None)
                entry["conflict-information"] = {**conflict, "conflict-scope": scope}
            kept.append(entry)
        if container["scope"] and not kept:
            return None
        return {**body, SCOPE: {**container, "scope": kept}}

    # --- upstream session, timers, status ---------------------------------------------------------------------

    def upstream_changed(self, up: bool) -> None:
        self.upstream_up = up

    def reestablish(self, now: float) -> list[Outbound]:
        """The upstream session is (back) up: a PUT per accepted mitigation, with the lifetime it has left."""
        self.expire(now)
        links = sorted(self.links.values(), key=lambda link: link.accepted_at)
        return [self._reestablishment(link, now) for link in links]

    def _reestablishment(self, link: Link, now: float) -> Outbound:
        payload = link.payload
        if link.expires_at is not None:
            payload = _with_lifetime(payload, max(1, math.ceil(link.expires_at - now)))
        self._in_flight[link.key] += 1
        return Outbound(
            method="PUT", path=link.upstream_path(), query=(), payload=payload, hop_limit=self.settings.hop_limit,
            observe=None, if_match_empty=False, client=link.client, cuid=link.cuid, mid=link.mid,
            upstream_mid=link.upstream_mid, cdid=link.cdid, reestablish=True, generation=self._withdrawals,
        )  # fmt: skip

    def _gone_upstream(self, key: tuple[str, str, int], now: float) -> None:
        """A GET found the mitigation gone upstream: expired there, it is forgotten; with lifetime left the server
        lost it (restarted without it on a new DTLS session, RFC 9132 §4.7) and it is PUT again under the same
        upstream 'mid' (`resend`), so that the client re-creating it after its 4.04 gets that 'mid' as well."""
        link = self.links.get(key)
        if link is None or (link.expires_at is not None and link.expires_at - now < 2):
            self._forget(key)
        elif not self._in_flight[key]:
            self.resend.append(self._reestablishment(link, now))

    def expire(self, now: float) -> None:
        for key in [key for key, link in self.links.items() if link.expires_at is not None and link.expires_at <= now]:
            self._forget(key)

    def next_expiry(self) -> float | None:
        return min((link.expires_at for link in self.links.values() if link.expires_at is not None), default=None)

    def status(self, now: float) -> list[dict[str, Any]]:
        return [link.to_json(now) for link in sorted(self.links.values(), key=lambda link: link.key)]


def _out_of_scope(payload: bytes | None, client: ClientAuthorization) -> Reply | None:
    """RFC 8783 §3.3 (and RFC 9132 §4.4.1.3 at the server): the gateway checks that its client may ask for what it
    asks, before the upstream server sees a request that is the gateway's own for it (client-domain: under its cuid;
    server-domain: from a gateway trusted for every client behind it). Aliases are the upstream server's to resolve."""
    try:
        parsed = parse_scope_body(decode_signal(payload or b""))
        check_authorized(client, parsed.targets)
    except ModelError as error:
        return Reply.error(error.code, error.diagnostic)
    except Rejected as refused:
        return Reply.error(refused.response.code, refused.response.diagnostic or "")
    return None


def _entries(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    container = (body or {}).get(SCOPE)
    scope = container.get("scope") if isinstance(container, dict) else None
    return [entry for entry in scope if isinstance(entry, dict)] if isinstance(scope, list) else []


def _with_lifetime(payload: bytes, lifetime: int) -> bytes:
    """PAYLOAD (a mitigation request we relayed before) asking for LIFETIME seconds, as a client re-creating a
    mitigation asks for what is left of it (RFC 9132 §4.4.1)."""
    try:
        body = decode_signal(payload)
    except (ModelError, ValueError):
        return payload
    entries = _entries(body)
    if len(entries) != 1:
        return payload
    scope = [replace_lifetime(entries[0], lifetime)]
    return encode_signal({**body, SCOPE: {**body[SCOPE], "scope": scope}}, validate=False)


def replace_lifetime(entry: dict[str, Any], lifetime: int) -> dict[str, Any]:
    requested = entry.get("lifetime")
    if isinstance(requested, int) and requested < 0:
        return entry  # indefinite stays indefinite
    return {**entry, "lifetime": lifetime}
