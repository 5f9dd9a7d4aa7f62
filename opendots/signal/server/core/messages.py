"""What the core is fed (Request) and what it answers (Response), plus the IANA enumerations.

Both are plain values: the CoAP shell translates them to and from aiocoap messages.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

PREFIX = "ietf-dots-signal-channel:"
MITIGATION_SCOPE = PREFIX + "mitigation-scope"
SIGNAL_CONFIG = PREFIX + "signal-config"
REDIRECTED_SIGNAL = PREFIX + "redirected-signal"
HEARTBEAT = PREFIX + "heartbeat"

Body = dict[str, Any]


class _Labelled(IntEnum):
    """An IANA enumeration: the integer goes on the CBOR wire, the label in YANG-JSON (RFC 7951)."""

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> _Labelled:
        for member in cls:
            if member.label == label:
                return member
        raise ValueError(label)


class Status(_Labelled):
    """Table 3 (RFC 9132 §4.4.2): status of a mitigation."""

    ATTACK_MITIGATION_IN_PROGRESS = 1
    ATTACK_SUCCESSFULLY_MITIGATED = 2
    ATTACK_STOPPED = 3
    ATTACK_EXCEEDED_CAPABILITY = 4
    DOTS_CLIENT_WITHDRAWN_MITIGATION = 5
    ATTACK_MITIGATION_TERMINATED = 6
    ATTACK_MITIGATION_WITHDRAWN = 7
    ATTACK_MITIGATION_SIGNAL_LOSS = 8


# Statuses in which the mitigator is (or should be) enforcing the mitigation.
ENFORCING = frozenset(
    {
        Status.ATTACK_MITIGATION_IN_PROGRESS,
        Status.ATTACK_SUCCESSFULLY_MITIGATED,
        Status.ATTACK_STOPPED,
        Status.ATTACK_EXCEEDED_CAPABILITY,
        Status.DOTS_CLIENT_WITHDRAWN_MITIGATION,
    }
)


class ConflictStatus(_Labelled):
    REQUEST_INACTIVE_OTHER_ACTIVE = 1
    REQUEST_ACTIVE = 2
    ALL_REQUESTS_INACTIVE = 3


class ConflictCause(_Labelled):
    OVERLAPPING_TARGETS = 1
    CONFLICT_WITH_ACCEPTLIST = 2
    CUID_COLLISION = 3
    REQUEST_REJECTED_LEGITIMATE_TRAFFIC = 4  # RFC 9066 §7.2


class AttackStatus(_Labelled):
    UNDER_ATTACK = 1
    ATTACK_SUCCESSFULLY_MITIGATED = 2


@dataclass(frozen=True)
class Request:
    """One DOTS signal-channel request.

    `path` holds the Uri-Path segments after ".well-known/dots", e.g. ("mitigate", "cuid=abc", "mid=1").
    `peer` is the CUID derived from the authenticated (D)TLS peer certificate, None if the peer is unknown.
    The body comes either decoded to YANG-JSON (`body`) or as the CBOR bytes received (`payload`), which the core
    decodes itself: only once the peer is authenticated, and not at all when a PUT repeats, byte for byte, the
    mitigation request the core already holds for that 'mid' (a refresh, a retransmission).
    """

    method: str
    path: tuple[str, ...]
    peer: str | None
    body: Body | None = None
    query: tuple[str, ...] = ()
    observe: int | None = None
    """Observe option value: 0 registers, 1 deregisters, None absent."""
    if_match_empty: bool = False
    """An If-Match option with an empty value is present (efficacy update, §4.4.3)."""
    payload: bytes | None = None
    """The application/dots+cbor body as received, not yet decoded (then `body` is None)."""


_REQUEST_DEFAULTS = {f.name: f.default for f in fields(Request)}


def received_request(
    method: str,
    path: tuple[str, ...],
    peer: str | None,
    payload: bytes | None,
    query: tuple[str, ...],
    if_match_empty: bool,
) -> Request:
    """Request(method, path, peer, payload=..., query=..., if_match_empty=...) built at a third of the frozen
    dataclass's cost (its __init__ sets each field through object.__setattr__): the shell's lean path makes one per
    message. Fields it does not name keep their defaults."""
    request = object.__new__(Request)
    object.__setattr__(
        request,
        "__dict__",
        {
            **_REQUEST_DEFAULTS,
            "method": method,
            "path": path,
            "peer": peer,
            "payload": payload,
            "query": query,
            "if_match_empty": if_match_empty,
        },
    )
    return request


@dataclass(frozen=True)
class Response:
    """The answer: a CoAP code ("2.01"), an optional YANG-JSON body or plain-text diagnostic, Max-Age."""

    code: str
    body: Body | None = None
    diagnostic: str | None = None
    max_age: int | None = None
    silent: bool = False
    """Send nothing at all (an efficacy update for an unknown 'mid' is silently ignored, §4.4.3).
    A shell that must answer sends `code` (4.04)."""
    observable: bool = False
    """The request asked to observe (Observe: 0) and succeeded: the shell registers the observation."""

    @property
    def is_success(self) -> bool:
        return self.code.startswith("2.")


def error(code: str, diagnostic: str, body: Body | None = None, max_age: int | None = None) -> Response:
    return Response(code=code, body=body, diagnostic=diagnostic, max_age=max_age)


def bad_request(diagnostic: str) -> Response:
    return error("4.00", diagnostic)


class Rejected(Exception):
    """Raised inside the core's validation helpers only; the server turns it into a Response.

    It never escapes SignalServer: every public entry point returns values.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(response.diagnostic)
        self.response = response


def reject(code: str, diagnostic: str, body: Body | None = None) -> Rejected:
    return Rejected(error(code, diagnostic, body))
