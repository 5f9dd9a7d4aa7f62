"""CoAP Hop-Limit (RFC 8768) as a DOTS gateway applies it (RFC 9132 §4.4.1.2: a gateway SHOULD add the option).

Sans-I/O: the relay core asks `forward_value` what Hop-Limit a relayed request carries (or the error that ends it
here), and `relayed_diagnostic` what a 5.08 (Hop Limit Reached) it got from upstream becomes downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOP_LIMIT = 16  # RFC 8768 §3: the default initial value MUST be 16
MAX_HOP_LIMIT = 255
HOP_LIMIT_REACHED = "5.08"


class IdentityError(ValueError):
    """A gateway identifier that RFC 8768 §4 does not allow."""


def check_identity(identity: str) -> str:
    """§4: the identifier MUST NOT include a space (it is the separator); printable ASCII keeps the log readable."""
    if not identity or any(not 0x21 <= ord(c) <= 0x7E for c in identity):
        raise IdentityError(f"gateway identity {identity!r} must be non-empty printable ASCII without spaces")
    return identity


def check_initial(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HOP_LIMIT:
        raise ValueError(f"hop_limit must be an integer from 1 to {MAX_HOP_LIMIT}, not {value!r}")
    return value


@dataclass(frozen=True)
class HopDecision:
    value: int | None = None
    """The Hop-Limit the relayed request carries; None when it is not relayed."""
    code: str = ""
    diagnostic: str = ""
    """The answer when it is not relayed: 4.00 (a received 0) or 5.08 (exhausted, naming this gateway)."""


def forward_value(received: int | None, *, initial: int, identity: str, rewrite: bool = False) -> HopDecision:
    """The Hop-Limit of a request to relay, RECEIVED from downstream (None: absent).

    §3: a value of 0 (or above 255) is refused with 4.00; an absent option is inserted with INITIAL (a boundary
    gateway may be told to REWRITE any received value the same way); otherwise the value is decremented, and a
    request whose value reaches 0 is not forwarded: 5.08 with this gateway's identifier as diagnostic (§4)."""
    if received is not None and not 1 <= received <= MAX_HOP_LIMIT:
        return HopDecision(code="4.00", diagnostic=f"Hop-Limit must be 1 to {MAX_HOP_LIMIT}, not {received}")
    if received is None or rewrite:
        return HopDecision(value=initial)
    value = received - 1
    if value <= 0:
        return HopDecision(code=HOP_LIMIT_REACHED, diagnostic=identity)
    return HopDecision(value=value)


@dataclass(frozen=True)
class Relayed5_08:
    diagnostic: str
    """What the downstream 5.08 carries."""
    loop: bool
    """This gateway's identifier was already in the diagnostic: the 5.08 went through it before (a loop)."""


def relayed_diagnostic(received: str, *, identity: str, room: int) -> Relayed5_08:
    """A 5.08 from upstream with diagnostic RECEIVED, on its way downstream.

    §4: an intermediate proxy prepends its identifier and a space when the result fits in ROOM bytes (the path MTU
    left for the payload), and forwards it unchanged otherwise. It MUST NOT forward a 5.08 that already names it:
    then `loop` is set, the caller logs it and alerts, and answers downstream with a 5.08 of its own that reports the
    loop it found — the identifiers it received, its own among them once only (§4: one identifier per proxy)."""
    names = received.split(" ")
    if identity in names:
        return Relayed5_08(received, loop=True)
    prepended = f"{identity} {received}" if received else identity
    if len(prepended.encode()) > room:
        return Relayed5_08(received, loop=False)
    return Relayed5_08(prepended, loop=False)
