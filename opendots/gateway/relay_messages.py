"""What the gateway's relay core (opendots.gateway.relay) takes and gives: its settings, a downstream request
(`Inbound`), a request to send upstream (`Outbound`, or a `Batch` of them), the downstream answer (`Reply`), and
the helpers on mitigation bodies the other relay modules share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from opendots.config import ClientAuthorization
from opendots.model import ModelError, decode_signal, encode_signal

Kind = Literal["client-domain", "server-domain"]

KINDS = ("client-domain", "server-domain")

SCOPE = "ietf-dots-signal-channel:mitigation-scope"

DOTS_CBOR, TEXT_PLAIN = 271, 0
ENDED = frozenset({"attack-mitigation-terminated", "attack-mitigation-withdrawn"})

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
    confirmable: bool = True
    """False: the request came NON (RFC 9132 §4.4.1: mitigation requests do), and goes upstream NON too."""


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
    confirmable: bool = True
    """CON or NON upstream: as the downstream request came; the gateway's own requests (re-establishment, stale
    withdrawals) NON as a client's mitigation requests are (RFC 9132 §4.4.1), retransmitted by the upstream leg."""
    resource: str = "mitigate"
    """Or RFC 9244's "tm-setup" and "tm": then 'mid' and 'upstream_mid' hold the downstream and upstream 'tsid' or
    'tmid' (telemetry_relay)."""


@dataclass(frozen=True)
class Batch:
    """Requests to send upstream for one downstream request, answered 2.02 when each was (a telemetry DELETE of all
    of a 'cuid' through a client-domain gateway: one per number the client holds, not everyone's)."""

    steps: tuple[Outbound, ...]


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


def scope_entries(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    container = (body or {}).get(SCOPE)
    scope = container.get("scope") if isinstance(container, dict) else None
    return [entry for entry in scope if isinstance(entry, dict)] if isinstance(scope, list) else []


def with_lifetime(payload: bytes, lifetime: int) -> bytes:
    """PAYLOAD (a mitigation request we relayed before) asking for LIFETIME seconds, as a client re-creating a
    mitigation asks for what is left of it (RFC 9132 §4.4.1)."""
    try:
        body = decode_signal(payload)
    except (ModelError, ValueError):
        return payload
    entries = scope_entries(body)
    if len(entries) != 1:
        return payload
    scope = [replace_lifetime(entries[0], lifetime)]
    return encode_signal({**body, SCOPE: {**body[SCOPE], "scope": scope}}, validate=False)


def replace_lifetime(entry: dict[str, Any], lifetime: int) -> dict[str, Any]:
    requested = entry.get("lifetime")
    if isinstance(requested, int) and requested < 0:
        return entry  # indefinite stays indefinite
    return {**entry, "lifetime": lifetime}
