"""What RFC 7252 asks of a server before it carries out a request, beyond what aiocoap checks.

Two stages, both linear in the message and allocation-free on the ordinary path:
- `inspect_datagram` (CoAP over UDP/DTLS, on the raw bytes, before aiocoap decodes them): message format errors
  (§3, §4.2: a CON, or a NON, is answered with a Reset; an unknown version or a message too short to carry a
  Message ID is ignored), a payload marker with no payload after it (§3), a critical option whose length is outside
  its range (§5.4.3, §5.4.1: 4.02), a Uri-Path or Uri-Query that is not UTF-8 (§3.2, §5.10.1: 4.00).
- `refusal_for` (any transport, on the decoded request): unrecognised critical options (§5.4.1: 4.02),
  Proxy-Uri/Proxy-Scheme on a server that is no proxy (§5.7.2: 5.05), an If-Match that names an entity-tag
  (§5.10.8.1: 4.12; this server gives resources no entity-tag a PUT could match — the ETags of Block2 answers only
  tie blocks together —, while an If-Match with an empty value keeps its RFC 9132 §4.4.3 meaning: an efficacy
  update, carried out by the signal core).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aiocoap
from aiocoap.numbers.codes import Code

# Option number -> (min, max) length, RFC 7252 §5.10 Table 4, RFC 7641, RFC 7959, RFC 8768, RFC 7967.
OPTION_LENGTHS: dict[int, tuple[int, int]] = {
    1: (0, 8),  # If-Match
    3: (1, 255),  # Uri-Host
    4: (1, 8),  # ETag
    5: (0, 0),  # If-None-Match
    6: (0, 3),  # Observe
    7: (0, 2),  # Uri-Port
    8: (0, 255),  # Location-Path
    11: (0, 255),  # Uri-Path
    12: (0, 2),  # Content-Format
    14: (0, 4),  # Max-Age
    15: (0, 255),  # Uri-Query
    16: (1, 1),  # Hop-Limit
    17: (0, 2),  # Accept
    20: (0, 255),  # Location-Query
    23: (0, 3),  # Block2
    27: (0, 3),  # Block1
    28: (0, 4),  # Size2
    35: (1, 1034),  # Proxy-Uri
    39: (1, 255),  # Proxy-Scheme
    60: (0, 4),  # Size1
    258: (0, 1),  # No-Response
}
IF_MATCH, IF_NONE_MATCH, URI_PATH, URI_QUERY, PROXY_URI, PROXY_SCHEME = 1, 5, 11, 15, 35, 39
# Critical options this server acts on. If-None-Match is left out on purpose: not honouring it would be wrong, so it
# is treated as unrecognised (4.02). Q-Block1/Q-Block2 (RFC 9177) are not implemented: 4.02 as the RFC expects.
UNDERSTOOD_CRITICAL = frozenset({IF_MATCH, 3, 7, URI_PATH, URI_QUERY, 17, 23, 27})
UNICODE_OPTIONS = (URI_PATH, URI_QUERY)


@dataclass(frozen=True)
class Inspection:
    action: str
    """"ok" (decode as usual), "ignore" (drop silently), "reset" (answer with a Reset), "refuse" (answer CODE)."""
    mid: int = 0
    code: str = ""
    diagnostic: str = ""


OK = Inspection("ok")
IGNORE = Inspection("ignore")
CON, NON = 0, 1


def inspect_datagram(data: bytes) -> Inspection:
    """RFC 7252 §3 on one CoAP-over-UDP message."""
    if len(data) < 4 or data[0] >> 6 != 1:
        return IGNORE  # §3: unknown version silently ignored; no Message ID to reset
    mtype = (data[0] >> 4) & 3
    mid = int.from_bytes(data[2:4], "big")
    reset = Inspection("reset", mid) if mtype in (CON, NON) else IGNORE  # §4.2, §4.3; never reset an ACK/RST
    token_length = data[0] & 0x0F
    code = data[1]
    if token_length > 8:
        return reset
    if code == 0:
        return OK if len(data) == 4 else reset  # §4.1: an Empty message has nothing after the header
    request = code >> 5 == 0
    position = 4 + token_length
    if position > len(data):
        return reset
    number = 0
    refusal: Inspection | None = None
    end = len(data)
    while position < end:
        byte = data[position]
        if byte == 0xFF:
            return reset if position + 1 == end else (refusal or OK)  # §3: a marker must be followed by a payload
        position += 1
        delta, length = byte >> 4, byte & 0x0F
        if delta == 15 or length == 15:
            return reset
        if delta >= 13:
            if delta == 13:
                if position >= end:
                    return reset
                delta = data[position] + 13
                position += 1
            else:
                if position + 1 >= end:
                    return reset
                delta = int.from_bytes(data[position : position + 2], "big") + 269
                position += 2
        if length >= 13:
            if length == 13:
                if position >= end:
                    return reset
                length = data[position] + 13
                position += 1
            else:
                if position + 1 >= end:
                    return reset
                length = int.from_bytes(data[position : position + 2], "big") + 269
                position += 2
        number += delta
        if position + length > end:
            return reset
        if request and refusal is None:
            bounds = OPTION_LENGTHS.get(number)
            if bounds is not None and not bounds[0] <= length <= bounds[1] and number & 1:
                refusal = Inspection("refuse", mid, "4.02", f"option {number} with an invalid length of {length}")
            elif number in UNICODE_OPTIONS:
                try:
                    data[position : position + length].decode("utf-8")
                except UnicodeDecodeError:
                    name = "Uri-Path" if number == URI_PATH else "Uri-Query"
                    refusal = Inspection("refuse", mid, "4.00", f"a {name} option that is not UTF-8")
        position += length
    return refusal or OK


def refusal_for(request: aiocoap.Message, option_numbers: Iterable[int]) -> aiocoap.Message | None:
    """The error answer REQUEST gets before it is carried out, or None (OPTION_NUMBERS: those it carries)."""
    for number in option_numbers:
        if number & 1 and number not in UNDERSTOOD_CRITICAL:
            if number in (PROXY_URI, PROXY_SCHEME):
                return error_message("5.05", "this server is no proxy")
            return error_message("4.02", f"critical option {number} is not supported")
    if_match = request.opt.if_match
    if if_match and any(tag != b"" for tag in if_match):
        return error_message("4.12", "no entity-tag of this server matches the If-Match option")
    return None


def refused_request(data: bytes, remote: object, code: str, diagnostic: str) -> aiocoap.Message:
    """The request in DATA reduced to its header and token (whatever else it carries is not to be trusted), marked
    with the answer it gets (`prepared_refusal`); it still goes through aiocoap's message layer (ACK, Message ID
    deduplication), so the answer is piggybacked or sent like any other."""
    message = aiocoap.Message.decode(data[: 4 + (data[0] & 0x0F)], remote=remote)
    message.opendots_refusal = error_message(code, diagnostic)  # type: ignore[attr-defined]
    return message


def prepared_refusal(request: aiocoap.Message) -> aiocoap.Message | None:
    return getattr(request, "opendots_refusal", None)


def error_message(code: str, diagnostic: str) -> aiocoap.Message:
    major, minor = code.split(".")
    return aiocoap.Message(code=Code((int(major) << 5) | int(minor)), payload=diagnostic.encode(), content_format=0)
