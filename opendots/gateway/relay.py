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

The parts: relay_messages (what goes in and out), relay_links (the mid mapping), relay_loss (upstream loss,
re-establishment, withdrawal races), hoplimit (RFC 8768), telemetry_relay (RFC 9244's tsid/tmid mapping).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opendots.config import ClientAuthorization
from opendots.gateway.data_names import renamed_inbound
from opendots.gateway.hoplimit import HOP_LIMIT_REACHED, forward_value, relayed_diagnostic
from opendots.gateway.relay_links import Link, RelayState
from opendots.gateway.relay_loss import UpstreamLoss
from opendots.gateway.relay_messages import (
    DOTS_CBOR,
    KINDS,
    SCOPE,
    TEXT_PLAIN,
    UPSTREAM_DOWN,
    Batch,
    Inbound,
    Kind,
    Outbound,
    RelaySettings,
    Reply,
    replace_lifetime,
)
from opendots.gateway.telemetry_relay import Refused, TelemetryRelay, decoded, out_of_scope
from opendots.model import ModelError, decode_signal, encode_signal, encode_telemetry
from opendots.signal.server.core.authorization import check_authorized
from opendots.signal.server.core.messages import Rejected
from opendots.signal.server.core.paths import MitigatePath, TelemetryPath, TelemetrySetupPath, parse_path
from opendots.signal.server.core.scope import parse_scope_body

__all__ = [
    "DOTS_CBOR",
    "KINDS",
    "SCOPE",
    "TEXT_PLAIN",
    "Batch",
    "Inbound",
    "Kind",
    "Link",
    "Outbound",
    "RelayCore",
    "RelaySettings",
    "RelayState",
    "Reply",
    "replace_lifetime",
]

log = logging.getLogger(__name__)
LOOP_ALERT_INTERVAL = 60.0  # seconds between two error logs of the same loop (every pass is counted)


@dataclass
class RelayCore(UpstreamLoss):
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
        self.telemetry = TelemetryRelay(
            self.state,
            self.settings.upstream_cuid,
            self._upstream_mid,
            self._downstream_mid,
            client_domain=self.client_domain,
        )

    # --- downstream request → upstream request ------------------------------------------------------------

    def request(self, inbound: Inbound, now: float) -> Reply | Outbound | Batch:
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
        if not isinstance(path, MitigatePath | TelemetrySetupPath | TelemetryPath):
            # /config and /hb never reach the relay (each leg has its own, RFC 9132 §4.5.1, §4.7).
            return self._local(Reply.error("5.01", "this DOTS gateway relays the mitigate, tm-setup and tm resources"))
        if inbound.method not in ("GET", "PUT", "DELETE"):
            return self._local(Reply.error("4.05", f"{inbound.method} is not a DOTS signal channel method here"))
        if not isinstance(path, MitigatePath):
            return self._telemetry_request(inbound, path, hop.value)
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

    def _telemetry_request(
        self, inbound: Inbound, path: TelemetrySetupPath | TelemetryPath, hop: int
    ) -> Reply | Outbound | Batch:
        """RFC 9244 §7 and §8 through the gateway (telemetry_relay)."""
        resource, number = ("tm-setup", path.tsid) if isinstance(path, TelemetrySetupPath) else ("tm", path.tmid)
        name = "tsid" if resource == "tm-setup" else "tmid"
        if inbound.method == "PUT" and number is None:
            return self._local(Reply.error("4.00", f"the mandatory '{name}' Uri-Path is missing"))
        if resource == "tm" and inbound.method == "PUT" and inbound.authorization is not None:
            refused = out_of_scope(inbound.payload, inbound.authorization)
            if refused is not None:
                return self._local(Reply.error(refused.code, refused.diagnostic))
        if not self.upstream_up:
            self.counters["upstream-down"] += 1
            return Reply.error("5.03", UPSTREAM_DOWN, max_age=self.settings.retry_after)
        payload, query, upstream = inbound.payload, inbound.query, number
        telemetry = self.telemetry
        if not self.client_domain:
            holders = self._cuid_clients.get(path.cuid)
            if holders and inbound.client not in holders:  # §4.4.1.1, as for mitigations
                return self._local(Reply.error("4.09", "this 'cuid' is used by another DOTS client (cuid-collision)"))
            cdid = inbound.peer_cuid if self.settings.insert_cdid else None
            prefix: tuple[str, ...] = (resource, *((f"cdid={cdid}",) if cdid else ()), f"cuid={path.cuid}")
        else:
            try:
                if number is not None:
                    upstream = telemetry.upstream_number(resource, inbound.client, path.cuid, number, inbound.method)
                elif inbound.method == "DELETE":
                    held = telemetry.own_numbers(resource, inbound.client, path.cuid)
                    if not held:
                        return self._local(Reply("2.02"))  # §7.1.4: 2.02 whether or not there was any
                    own = (resource, f"cuid={self.settings.upstream_cuid}")
                    steps = []
                    for held_number in held:
                        up = telemetry.upstream_number(resource, inbound.client, path.cuid, held_number, "DELETE")
                        steps.append(self._telemetry_outbound(
                            inbound, resource, path.cuid, (*own, f"{name}={up}"), hop, None, held_number, up,
                            query=(), payload=None))  # fmt: skip
                    self.counters["relayed"] += 1
                    return Batch(tuple(steps))
                elif resource == "tm" and not telemetry.own_numbers(resource, inbound.client, path.cuid):
                    return self._local(Reply.error("4.04", f"no telemetry of cuid={path.cuid} here"))
                if resource == "tm" and inbound.method == "PUT":
                    payload = telemetry.request_payload(inbound.client, path.cuid, payload)
                if resource == "tm" and inbound.method == "GET":
                    query = telemetry.request_query(inbound.client, path.cuid, query)
            except Refused as refused:
                return self._local(Reply.error(refused.code, refused.diagnostic))
            cdid = None
            prefix = (resource, f"cuid={self.settings.upstream_cuid}")
        upstream_path = (*prefix, *((f"{name}={upstream}",) if upstream is not None else ()))
        self.counters["relayed"] += 1
        return self._telemetry_outbound(
            inbound, resource, path.cuid, upstream_path, hop, cdid, number, upstream, query=query, payload=payload
        )

    def _telemetry_outbound(
        self,
        inbound: Inbound,
        resource: str,
        cuid: str,
        path: tuple[str, ...],
        hop: int,
        cdid: str | None,
        number: int | None,
        upstream: int | None,
        *,
        query: tuple[str, ...],
        payload: bytes | None,
    ) -> Outbound:
        return Outbound(
            method=inbound.method, path=path, query=query, payload=payload, hop_limit=hop,
            observe=inbound.observe if inbound.method == "GET" else None, if_match_empty=False, client=inbound.client,
            cuid=cuid, mid=number, upstream_mid=upstream, cdid=cdid, resource=resource, confirmable=inbound.confirmable,
        )  # fmt: skip

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
            confirmable=inbound.confirmable,
        )

    # --- upstream answer → downstream answer ----------------------------------------------------------------

    def answered(
        self, sent: Outbound, code: str, payload: bytes, content_format: int | None, max_age: int | None, now: float
    ) -> Reply:
        """The upstream answer to SENT: links updated, the downstream answer built."""
        if sent.resource != "mitigate":
            return self._telemetry_answered(sent, code, payload, content_format, max_age, now)
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

    def _telemetry_answered(
        self, sent: Outbound, code: str, payload: bytes, content_format: int | None, max_age: int | None, now: float
    ) -> Reply:
        telemetry = self.telemetry
        if sent.method == "PUT":
            telemetry.settled(sent.resource, sent.client, sent.cuid, sent.mid, sent.upstream_mid)
        if code == HOP_LIMIT_REACHED:
            telemetry.not_sent(sent)
            return self._hop_limit_reached(sent, payload, now)
        withdrawal = telemetry.answered(sent, code)
        if withdrawal is not None:
            self.resend.append(withdrawal)
        if sent.reestablish and sent.method == "PUT":
            self.counters["telemetry-reestablished" if code.startswith("2.") else "telemetry-not-reestablished"] += 1
        if not self.client_domain:
            return Reply(code, payload, content_format, max_age)
        body = decoded(payload, content_format)
        if body is None:
            return Reply(code, payload, content_format, max_age)
        rewritten = telemetry.rewrite(sent.resource, sent.client, sent.cuid, sent.mid, sent.upstream_mid, body)
        if rewritten is None:
            return Reply.error("4.04", f"no telemetry of cuid={sent.cuid} here")
        return Reply(code, encode_telemetry(rewritten, validate=False), DOTS_CBOR, max_age)

    def notification(
        self, sent: Outbound, code: str, payload: bytes, content_format: int | None, max_age: int | None, now: float
    ) -> Reply | None:
        """An Observe notification for SENT (a GET): the downstream one, or None when nothing in it is the
        observer's (client-domain: another client's mitigation changed)."""
        reply = self.answered(sent, code, payload, content_format, max_age, now)
        if self.client_domain and sent.mid is None and reply.code == "4.04" and code != "4.04":
            return None
        return reply

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
