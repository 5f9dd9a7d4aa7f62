"""RFC 9066 §5.2.2 redirection, and the §5.2.1 heartbeat adjustment: what a Call Home DOTS server decides, without
I/O.

A Call Home DOTS client redirects a CPE with a Non-confirmable PUT to .well-known/dots/redirect carrying
`redirected-signal` with `ietf-dots-call-home:alt-ch-client` (the alternate's FQDN, also the name its certificate
must carry), optionally `alt-ch-client-record` (its addresses; without them the CPE resolves the name) and `ttl`
(how long the alternate may be used, processed as RFC 9132 §4.6 processes Max-Age: on expiry the CPE goes back to
its provisioned Call Home DOTS client, except while an attack is being mitigated; absent: until redirected again;
0: for this session only). The base channel's `alt-server`/`alt-server-record` MUST NOT be used in Call Home.
The CPE answers 2.01 and dials the alternate, or 4.00 when it cannot.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from opendots.model import ModelError, decode_signal
from opendots.signal.server.core import ServerSettings

REDIRECTED_SIGNAL = "ietf-dots-signal-channel:redirected-signal"
ALT_CH_CLIENT = "ietf-dots-call-home:alt-ch-client"
ALT_CH_CLIENT_RECORD = "ietf-dots-call-home:alt-ch-client-record"
TTL = "ietf-dots-call-home:ttl"
INFINITE_TTL = 2**32 - 1
MAX_RECORDS = 16
"""Addresses kept from alt-ch-client-record (a CPE dials them one after the other)."""


class RedirectError(ValueError):
    """A redirection the CPE cannot service: answered 4.00 with this text (RFC 9066 §5.2.2)."""


@dataclass(frozen=True)
class Redirect:
    """Where to dial instead, until EXPIRES_AT (None: until redirected again; 0 TTL: this session only)."""

    name: str
    records: tuple[str, ...]
    ttl: int | None
    received_at: float

    @property
    def expires_at(self) -> float | None:
        if self.ttl is None or self.ttl == INFINITE_TTL:
            return None
        return self.received_at + self.ttl

    def expired(self, now: float) -> bool:
        expiry = self.expires_at
        return expiry is not None and now >= expiry


def parse_redirect(payload: bytes, content_format: int | None, now: float) -> Redirect:
    """The redirection a PUT /redirect body asks for, checked against the YANG module (ietf-dots-call-home)."""
    if content_format != 271:
        raise RedirectError("a redirection body is application/dots+cbor (Content-Format 271)")
    try:
        body = decode_signal(payload)
    except ModelError as error:
        raise RedirectError(str(error)) from None
    return redirect_from_json(body, now)


def redirect_from_json(body: Any, now: float) -> Redirect:
    if not isinstance(body, dict) or set(body) != {REDIRECTED_SIGNAL} or not isinstance(body[REDIRECTED_SIGNAL], dict):
        raise RedirectError(f"a redirection body holds {REDIRECTED_SIGNAL} only")
    content = body[REDIRECTED_SIGNAL]
    base = sorted(key for key in content if key not in (ALT_CH_CLIENT, ALT_CH_CLIENT_RECORD, TTL))
    if base:  # §5.2.2: the base channel's redirection is not Call Home's (the YANG choice's other case)
        raise RedirectError(f"{', '.join(base)} MUST NOT be used in Call Home redirection (RFC 9066 §5.2.2)")
    name = content.get(ALT_CH_CLIENT)
    if not isinstance(name, str) or not name:
        raise RedirectError(f"{ALT_CH_CLIENT} (the alternate Call Home DOTS client's FQDN) is mandatory")
    records = content.get(ALT_CH_CLIENT_RECORD, [])
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise RedirectError(f"{ALT_CH_CLIENT_RECORD} is a list of at most {MAX_RECORDS} addresses")
    try:
        addresses = tuple(str(ipaddress.ip_address(text)) for text in records)
    except (TypeError, ValueError) as error:
        raise RedirectError(f"{ALT_CH_CLIENT_RECORD}: {error}") from None
    ttl = content.get(TTL)
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= INFINITE_TTL):
        raise RedirectError(f"{TTL} is a uint32 number of seconds")
    return Redirect(name.rstrip(".").lower(), addresses, ttl, now)


def redirect_body(name: str, records: tuple[str, ...] = (), ttl: int | None = None) -> dict[str, Any]:
    """The YANG-JSON body a Call Home DOTS client sends to redirect a CPE (RFC 9066 Figure 9)."""
    content: dict[str, Any] = {ALT_CH_CLIENT: name}
    if records:
        content[ALT_CH_CLIENT_RECORD] = list(records)
    if ttl is not None:
        content[TTL] = ttl
    return {REDIRECTED_SIGNAL: content}


DEFAULT_NAT_BINDING_TIMEOUT = 30.0
"""Seconds an on-path NAT keeps an idle UDP binding, when cpe.toml does not say: RFC 4787 REQ-5 asks for at least
two minutes, but 30 s is common in home gateways, and a lost binding silently cuts the provider off."""


def nat_adjusted(settings: ServerSettings, binding_timeout: float) -> ServerSettings:
    """RFC 9066 §5.2.1: the Call Home DOTS server sets heartbeat-interval so that on-path NATs and firewalls keep
    the session's binding: at most half of BINDING_TIMEOUT, in both sets (idle and mitigating), and the lowest
    value a client may configure lowered to match."""
    interval = max(1, int(binding_timeout // 2))
    defaults = settings.session_defaults
    idle, mitigating = defaults.idle, defaults.mitigating
    sessions = replace(
        defaults,
        idle=replace(idle, heartbeat_interval=min(idle.heartbeat_interval or interval, interval)),
        mitigating=replace(mitigating, heartbeat_interval=min(mitigating.heartbeat_interval or interval, interval)),
    )
    low, high = settings.limits.heartbeat_interval
    limits = replace(settings.limits, heartbeat_interval=(min(low, interval), min(high, interval)))
    return replace(settings, session_defaults=sessions, limits=limits)
