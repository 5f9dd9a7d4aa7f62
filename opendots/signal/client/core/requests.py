"""DOTS signal channel requests as plain values (RFC 9132 §4.4-§4.7): what to send, not how.

The I/O shell turns a `DotsRequest` into a CoAP message (Uri-Path options, Content-Format 271, If-Match, Observe,
NON or CON) and hands back a `DotsResponse`; nothing here knows about sockets or aiocoap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from opendots.domain import DOTS_CBOR_CONTENT_FORMAT, defaults
from opendots.signal.client.core.scope import ATTACK_STATUSES, MODULE, MitigationScope, ScopeError

WELL_KNOWN = (".well-known", "dots")
CONTENT_FORMAT_DOTS_CBOR = DOTS_CBOR_CONTENT_FORMAT  # application/dots+cbor, RFC 9132 §10.3
CONTENT_FILTERS = ("c", "n", "a")  # RFC 9132 Table 2
MID_MAX = defaults.UINT32_MAX


class RequestKind(Enum):
    MITIGATE = "mitigate"
    EFFICACY = "efficacy"
    WITHDRAW = "withdraw"
    STATUS = "status"
    CONFIG_GET = "config-get"
    CONFIG_PUT = "config-put"
    CONFIG_DELETE = "config-delete"
    HEARTBEAT = "heartbeat"
    # RFC 9244: telemetry setup (§7) and pre-or-ongoing-mitigation telemetry (§8.2)
    TM_SETUP_GET = "tm-setup-get"
    TM_SETUP_PUT = "tm-setup-put"
    TM_SETUP_DELETE = "tm-setup-delete"
    TM_GET = "tm-get"
    TM_PUT = "tm-put"
    TM_DELETE = "tm-delete"


@dataclass(frozen=True)
class DotsRequest:
    """One DOTS request; `body` is RFC 7951 YANG-JSON (the shell CBOR-encodes it)."""

    kind: RequestKind
    method: str
    """"GET", "PUT" or "DELETE"."""
    path: tuple[str, ...]
    """Every Uri-Path option, in order, starting with ".well-known"."""
    body: dict[str, Any] | None = None
    query: tuple[str, ...] = ()
    """Uri-Query options, e.g. ("c=n",)."""
    if_match_empty: bool = False
    """Send If-Match with an empty value (efficacy updates, §4.4.3)."""
    observe: int | None = None
    """0: register, 1: deregister, None: no Observe option."""
    confirmable: bool = False
    """CON over DTLS (session configuration, §4.5); mitigation and heartbeat requests are NON (§4.4, §4.7)."""
    mid: int | None = None
    sid: int | None = None
    scope: MitigationScope | None = field(default=None, compare=False)
    tsid: int | None = None
    tmid: int | None = None
    setup_kind: str | None = None
    """RFC 9244 §7: which setup a tm-setup PUT/DELETE is about (current-config, total-pipe-capacity, baseline)."""

    @property
    def uri_path(self) -> str:
        return "/" + "/".join(self.path)

    @property
    def telemetry(self) -> bool:
        """An RFC 9244 request: its bodies are ietf-dots-telemetry, not ietf-dots-signal-channel."""
        return len(self.path) > 2 and self.path[2] in ("tm-setup", "tm")


@dataclass(frozen=True)
class DotsResponse:
    code: str
    """Dotted CoAP code, e.g. "2.01", "4.09", "5.03"."""
    body: dict[str, Any] | None = None
    """Decoded YANG-JSON body, or None when empty."""
    max_age: int | None = None
    """Max-Age option in seconds if the response carried one."""
    diagnostic: str | None = None
    """Diagnostic payload of an error response that is not a DOTS body."""
    observe: int | None = None

    @property
    def success(self) -> bool:
        return self.code.startswith("2.")

    @property
    def scopes(self) -> list[dict[str, Any]]:
        """The `scope` entries of a mitigation-scope body (empty when there is none)."""
        body = self.body or {}
        return list(body.get(f"{MODULE}:mitigation-scope", {}).get("scope", []))


def _mitigate_path(cuid: str, mid: int | None = None) -> tuple[str, ...]:
    if not cuid:
        raise ScopeError("cuid must not be empty")
    path = (*WELL_KNOWN, "mitigate", f"cuid={cuid}")
    if mid is not None:
        if not 0 <= mid <= MID_MAX:
            raise ScopeError(f"mid {mid} is outside 0-{MID_MAX}")
        path += (f"mid={mid}",)
    return path


def mitigation_body(scope: MitigationScope, *, attack_status: str | None = None) -> dict[str, Any]:
    # A single scope entry only: RFC 9132 §4.4.1.1 forbids several in one PUT.
    return {f"{MODULE}:mitigation-scope": {"scope": [scope.to_yang(attack_status=attack_status)]}}


def mitigation_request(cuid: str, mid: int, scope: MitigationScope) -> DotsRequest:
    """PUT /mitigate/cuid=…/mid=… (§4.4.1); also a refresh when mid and scope repeat an active request."""
    return DotsRequest(
        RequestKind.MITIGATE, "PUT", _mitigate_path(cuid, mid), mitigation_body(scope), mid=mid, scope=scope
    )


def efficacy_request(cuid: str, mid: int, scope: MitigationScope, attack_status: str) -> DotsRequest:
    """PUT with If-Match empty and attack-status (§4.4.3): the same scope, so the server treats it as a refresh."""
    if attack_status not in ATTACK_STATUSES:
        raise ScopeError(f"attack-status must be one of {', '.join(ATTACK_STATUSES)}, not {attack_status!r}")
    return DotsRequest(
        RequestKind.EFFICACY,
        "PUT",
        _mitigate_path(cuid, mid),
        mitigation_body(scope, attack_status=attack_status),
        if_match_empty=True,
        mid=mid,
        scope=scope,
    )


def withdraw_request(cuid: str, mid: int) -> DotsRequest:
    """DELETE /mitigate/cuid=…/mid=… (§4.4.4)."""
    return DotsRequest(RequestKind.WITHDRAW, "DELETE", _mitigate_path(cuid, mid), mid=mid)


def status_request(
    cuid: str, mid: int | None = None, *, content: str | None = None, observe: int | None = None
) -> DotsRequest:
    """GET one mitigation (mid) or all of them (§4.4.2); content is the optional 'c' filter."""
    if content is not None and content not in CONTENT_FILTERS:
        raise ScopeError(f"content filter must be one of {', '.join(CONTENT_FILTERS)}, not {content!r}")
    if observe not in (None, 0, 1):
        raise ScopeError("observe must be 0 (register) or 1 (deregister)")
    query = (f"c={content}",) if content else ()
    return DotsRequest(RequestKind.STATUS, "GET", _mitigate_path(cuid, mid), query=query, observe=observe, mid=mid)


def config_get_request(sid: int | None = None, *, observe: int | None = None) -> DotsRequest:
    """GET /config (acceptable and current values, §4.5.1) or /config/sid=N (the negotiated ones)."""
    path = (*WELL_KNOWN, "config") + ((f"sid={sid}",) if sid is not None else ())
    return DotsRequest(RequestKind.CONFIG_GET, "GET", path, observe=observe, confirmable=True, sid=sid)


def config_put_request(sid: int, body: dict[str, Any]) -> DotsRequest:
    """PUT /config/sid=N (§4.5.2); body is a whole `signal-config` message (see SessionParameters.to_put_body)."""
    return DotsRequest(
        RequestKind.CONFIG_PUT, "PUT", (*WELL_KNOWN, "config", f"sid={sid}"), body, confirmable=True, sid=sid
    )


def config_delete_request(sid: int | None = None) -> DotsRequest:
    """DELETE /config[/sid=N] (§4.5.4): back to the server's defaults."""
    path = (*WELL_KNOWN, "config") + ((f"sid={sid}",) if sid is not None else ())
    return DotsRequest(RequestKind.CONFIG_DELETE, "DELETE", path, confirmable=True, sid=sid)


def heartbeat_request(peer_hb_status: bool) -> DotsRequest:
    """NON PUT /hb (§4.7): peer-hb-status says whether we heard the server's heartbeats lately."""
    body = {f"{MODULE}:heartbeat": {"peer-hb-status": peer_hb_status}}
    return DotsRequest(RequestKind.HEARTBEAT, "PUT", (*WELL_KNOWN, "hb"), body)
