"""What RFC 7252 asks of a server before it carries out a request, beyond what aiocoap checks.

Two stages, both linear in the message:
- on the raw bytes, before aiocoap decodes them: `inspect_datagram` for CoAP over UDP/DTLS, `inspect_frame` for a
  CoAP-over-TLS frame (RFC 8323 §3.2; message format errors there are aiocoap's: it aborts the connection).
  Message format errors (§3, §4.2: a CON, or a NON, is answered with a Reset; an unknown version or a message too
  short to carry a Message ID is ignored), a payload marker with no payload after it (§3), a critical option whose
  length is outside its range (§5.4.3, §5.4.1: 4.02), a Uri-Path or Uri-Query that is not UTF-8 (§3.2, §5.10.1:
  4.00), a Hop-Limit of 0 or above 255 (RFC 8768 §3: 4.00). An elective option whose length is outside its range
  is treated like an unrecognised elective option (§5.4.3, §5.4.1: silently ignored): the message is handed on
  without it (`Inspection.cleaned`), so aiocoap never acts on, e.g., a 4-byte Observe.
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
HOP_LIMIT = 16
# Critical options this server acts on. If-None-Match is left out on purpose: not honouring it would be wrong, so it
# is treated as unrecognised (4.02). Q-Block1/Q-Block2 (RFC 9177) only where the transport handles them (DTLS with
# a QBlockServer, opendots.transport.qblock_server); elsewhere 4.02, so the client falls back to Block1/Block2 (§4.1).
UNDERSTOOD_CRITICAL = frozenset({IF_MATCH, 3, 7, URI_PATH, URI_QUERY, 17, 23, 27})
UNDERSTOOD_WITH_QBLOCK = UNDERSTOOD_CRITICAL | {19, 31}
UNICODE_OPTIONS = (URI_PATH, URI_QUERY)


@dataclass(frozen=True)
class Inspection:
    action: str
    """"ok" (decode as usual), "ignore" (drop silently), "reset" (answer with a Reset), "refuse" (answer CODE)."""
    mid: int = 0
    code: str = ""
    diagnostic: str = ""
    cleaned: bytes | None = None
    """For "ok": the message to decode instead, without its elective options of invalid length (§5.4.3)."""


OK = Inspection("ok")
IGNORE = Inspection("ignore")
CON, NON = 0, 1

# One option as found on the wire: (number, start of its header byte, start of its value, end of its value).
_Option = tuple[int, int, int, int]


def _parse_options(data: bytes, position: int) -> tuple[list[_Option], int] | None:
    """The options from POSITION on and where they end (a payload marker or the end of DATA); None for a message
    format error (§3): a reserved nibble, a field running past the end, a marker with nothing after it."""
    options: list[_Option] = []
    number = 0
    end = len(data)
    while position < end:
        head = position
        byte = data[position]
        if byte == 0xFF:
            return (options, position) if position + 1 < end else None
        position += 1
        delta, length = byte >> 4, byte & 0x0F
        if delta == 15 or length == 15:
            return None
        if delta >= 13:
            if delta == 13:
                if position >= end:
                    return None
                delta = data[position] + 13
                position += 1
            else:
                if position + 1 >= end:
                    return None
                delta = int.from_bytes(data[position : position + 2], "big") + 269
                position += 2
        if length >= 13:
            if length == 13:
                if position >= end:
                    return None
                length = data[position] + 13
                position += 1
            else:
                if position + 1 >= end:
                    return None
                length = int.from_bytes(data[position : position + 2], "big") + 269
                position += 2
        number += delta
        if position + length > end:
            return None
        options.append((number, head, position, position + length))
        position += length
    return options, end


def _judge(data: bytes, options: list[_Option]) -> tuple[str, str] | list[int] | None:
    """A request's options: (code, diagnostic) to refuse it, the indexes of elective options of invalid length to
    leave out, or None when all is well."""
    invalid_electives: list[int] | None = None
    hop_limit_seen = False
    for index, (number, _head, start, end) in enumerate(options):
        if number == HOP_LIMIT and not hop_limit_seen:
            # RFC 8768 §3: 0 (an empty uint, or a zero byte) or more than 255 MUST be refused with 4.00; a repeated
            # Hop-Limit is an unrecognised elective from its second occurrence on (RFC 7252 §5.4.5): ignored.
            hop_limit_seen = True
            value = int.from_bytes(data[start:end], "big")
            if not 1 <= value <= 255:
                return "4.00", f"Hop-Limit must be 1 to 255 (RFC 8768 §3), not {value}"
        bounds = OPTION_LENGTHS.get(number)
        if bounds is not None and not bounds[0] <= end - start <= bounds[1]:
            if number & 1:
                return "4.02", f"option {number} with an invalid length of {end - start}"
            invalid_electives = [*(invalid_electives or ()), index]  # §5.4.3: as if unrecognised (ignored)
        elif number in UNICODE_OPTIONS:
            try:
                data[start:end].decode("utf-8")
            except UnicodeDecodeError:
                name = "Uri-Path" if number == URI_PATH else "Uri-Query"
                return "4.00", f"a {name} option that is not UTF-8"
    return invalid_electives


def _encode_number(value: int) -> tuple[int, bytes]:
    """An option delta or length as its 4-bit nibble and extended bytes (§3.1)."""
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


def _options_without(data: bytes, options: list[_Option], left_out: list[int]) -> bytes:
    """The options of DATA re-encoded without those at the indexes LEFT_OUT (the deltas after them change)."""
    out = bytearray()
    previous = 0
    skipped = set(left_out)
    for index, (number, _head, start, end) in enumerate(options):
        if index in skipped:
            continue
        (delta, delta_extra), (length, length_extra) = _encode_number(number - previous), _encode_number(end - start)
        out += bytes([delta << 4 | length]) + delta_extra + length_extra + data[start:end]
        previous = number
    return bytes(out)


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
    position = 4 + token_length
    if position > len(data):
        return reset
    parsed = _parse_options(data, position)
    if parsed is None:
        return reset
    if code >> 5 != 0:
        return OK  # a response: what it carries is the requester's business
    options, options_end = parsed
    verdict = _judge(data, options)
    if verdict is None:
        return OK
    if isinstance(verdict, tuple):
        return Inspection("refuse", mid, *verdict)
    return Inspection("ok", cleaned=data[:position] + _options_without(data, options, verdict) + data[options_end:])


def inspect_frame(frame: bytes) -> Inspection:
    """RFC 7252 §5.4.1, §5.4.3, §5.10.1 on one whole CoAP-over-TLS frame (RFC 8323 §3.2): only requests are looked
    at, and a frame aiocoap must reject as malformed is left to it ("ok")."""
    extended = _EXTENDED_LENGTH.get(frame[0] >> 4, 0)
    token_length = frame[0] & 0x0F
    code_at = 1 + extended
    if len(frame) <= code_at or token_length > 8:
        return OK
    code = frame[code_at]
    if code == 0 or code >> 5 != 0:
        return OK  # Empty, a response or a signalling message (7.xx)
    position = code_at + 1 + token_length
    parsed = _parse_options(frame, position) if position <= len(frame) else None
    if parsed is None:
        return OK
    options, options_end = parsed
    verdict = _judge(frame, options)
    if verdict is None:
        return OK
    if isinstance(verdict, tuple):
        return Inspection("refuse", 0, *verdict)
    body = _options_without(frame, options, verdict) + frame[options_end:]
    nibble, length_bytes = _encode_frame_length(len(body))
    header = bytes([nibble << 4 | token_length]) + length_bytes + frame[code_at:position]
    return Inspection("ok", cleaned=header + body)


_EXTENDED_LENGTH = {13: 1, 14: 2, 15: 4}  # RFC 8323 §3.2: the Len nibble's extended-length field, in bytes
_EXTENDED_OFFSET = {1: 13, 2: 269, 4: 65805}


def frame_size(buffer: bytes | bytearray) -> int | None:
    """The size of the CoAP-over-TLS frame at the start of BUFFER, or None while its header is incomplete."""
    if not buffer:
        return None
    extended = _EXTENDED_LENGTH.get(buffer[0] >> 4, 0)
    if len(buffer) < 2 + extended:
        return None
    length = (
        int.from_bytes(buffer[1 : 1 + extended], "big") + _EXTENDED_OFFSET[extended] if extended else buffer[0] >> 4
    )
    return 1 + extended + 1 + (buffer[0] & 0x0F) + length


def _encode_frame_length(length: int) -> tuple[int, bytes]:
    return _encode_number(length) if length < 65805 else (15, (length - 65805).to_bytes(4, "big"))


def refusal_for(
    request: aiocoap.Message, option_numbers: Iterable[int], *, qblock: bool = False
) -> aiocoap.Message | None:
    """The error answer REQUEST gets before it is carried out, or None (OPTION_NUMBERS: those it carries; QBLOCK:
    whether the transport took care of its Q-Block options)."""
    understood = UNDERSTOOD_WITH_QBLOCK if qblock else UNDERSTOOD_CRITICAL
    for number in option_numbers:
        if number & 1 and number not in understood:
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


def refused_frame(frame: bytes, remote: object, code: str, diagnostic: str) -> aiocoap.Message:
    """As `refused_request`, for a CoAP-over-TLS frame (RFC 8323 §3.2): its code and token only."""
    code_at = 1 + _EXTENDED_LENGTH.get(frame[0] >> 4, 0)
    message = aiocoap.Message(code=Code(frame[code_at]))
    message.token = frame[code_at + 1 : code_at + 1 + (frame[0] & 0x0F)]
    message.remote = remote
    message.opendots_refusal = error_message(code, diagnostic)  # type: ignore[attr-defined]
    return message


def prepared_refusal(request: aiocoap.Message) -> aiocoap.Message | None:
    return getattr(request, "opendots_refusal", None)


def error_message(code: str, diagnostic: str) -> aiocoap.Message:
    major, minor = code.split(".")
    return aiocoap.Message(code=Code((int(major) << 5) | int(minor)), payload=diagnostic.encode(), content_format=0)
