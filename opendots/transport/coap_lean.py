"""A minimal CoAP-over-UDP codec (RFC 7252 §3) for the few request shapes a DOTS server answers all the time.

Why it exists: heartbeats, refresh PUTs and GETs are what every session sends all the time, and every client
repeats during an attack. Through aiocoap's generic path each one builds a Message with an Options object (enum
lookups per option), a Pipe and a piggyback timer, and its response another Message: measured with
bench/message_cpu.py (one DTLS client, NON, one message at a time), aiocoap with our DTLS transport answering 4.04
at once cost 95-120 µs of server CPU per message, against 28-35 µs for libcoap's whole coap-server. This module
parses the plain requests in a few µs and encodes their answers; the server's lean path
(opendots.transport.aiocoap_hooks.lean) hands them to the same DOTS resource and sends the bytes back.

What `parse_request` accepts (anything else is None, and goes to aiocoap exactly as before): version 1, CON or NON,
a token of 0-8 bytes, GET, POST, PUT or DELETE, options Uri-Host (UTF-8) and Uri-Port (both ignored, as aiocoap's
Site does), Uri-Path and Uri-Query (UTF-8), Content-Format, Accept (ignored, as by the DOTS resource) and an empty
If-Match (RFC 9132 §4.4.3's efficacy update), each within its RFC 7252 §5.10 length, and a payload after a
marker. So no Observe, Block1/Block2, Q-Block, Size1/Size2, Hop-Limit, No-Response, ETag or unknown option: those
need aiocoap's machinery (or its refusals). Sans-I/O: bytes in, bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE = 1, 2, 3, 4
METHOD_NAMES = {GET: "GET", POST: "POST", PUT: "PUT", DELETE: "DELETE"}
IF_MATCH, URI_HOST, URI_PORT, URI_PATH, CONTENT_FORMAT, URI_QUERY, ACCEPT = 1, 3, 7, 11, 12, 15, 17
MAX_AGE = 14
# Option number -> (min, max) length (RFC 7252 §5.10 Table 4); If-Match only empty here: a tag gets aiocoap's 4.12.
_ACCEPTED: dict[int, tuple[int, int]] = {
    IF_MATCH: (0, 0),
    URI_HOST: (1, 255),
    URI_PORT: (0, 2),
    URI_PATH: (0, 255),
    CONTENT_FORMAT: (0, 2),
    URI_QUERY: (0, 255),
    ACCEPT: (0, 2),
}


@dataclass(slots=True)
class LeanRequest:
    mtype: int
    """CON or NON."""
    mid: int
    token: bytes
    code: int
    """GET, POST, PUT or DELETE."""
    method: str
    """CODE's name ("GET"...): read twice per request, so a field rather than a property."""
    path: tuple[str, ...]
    query: tuple[str, ...]
    content_format: int | None
    if_match_empty: bool
    payload: bytes


_Parsed = tuple[tuple[str, ...], tuple[str, ...], int | None, bool, bytes]
"""What follows a request's token, parsed: path, query, Content-Format, empty If-Match, payload."""
_parsed: dict[bytes, _Parsed | None] = {}
PARSED_KEPT = 512
"""Parsed tails remembered (`parse_request`), at most CACHED_TAIL bytes each: a client repeats the same options and
body in every heartbeat, refresh and GET, only Message ID and token change. Emptied when full (bounded memory,
nothing to age)."""
CACHED_TAIL = 256


def parse_request(data: bytes) -> LeanRequest | None:
    """DATA as a plain request this module accepts (see the module docstring), else None. Never raises."""
    if len(data) < 4:
        return None
    first = data[0]
    mtype = (first >> 4) & 3
    token_length = first & 0x0F
    code = data[1]
    method = METHOD_NAMES.get(code)
    if first >> 6 != 1 or mtype > NON or token_length > 8 or method is None:
        return None
    position = 4 + token_length
    if position > len(data):
        return None
    tail = data[position:]
    if len(tail) > CACHED_TAIL:
        parsed = _parse_tail(data, position)
    else:
        try:
            parsed = _parsed[tail]
        except KeyError:
            if len(_parsed) >= PARSED_KEPT:
                _parsed.clear()
            parsed = _parsed[tail] = _parse_tail(data, position)
    if parsed is None:
        return None
    return LeanRequest(mtype, int.from_bytes(data[2:4], "big"), data[4:position], code, method, *parsed)


def _parse_tail(data: bytes, position: int) -> _Parsed | None:
    """The options and payload of DATA from POSITION (just past the token), None if not for this module."""
    end = len(data)
    path: list[str] = []
    query: list[str] = []
    content_format: int | None = None
    if_match = False
    number = 0
    payload = b""
    while position < end:
        byte = data[position]
        if byte == 0xFF:
            if position + 1 == end:
                return None  # §3: a marker with no payload after it is a format error (aiocoap resets it)
            payload = data[position + 1 :]
            break
        position += 1
        delta, length = byte >> 4, byte & 0x0F
        if delta == 13:
            if position >= end:
                return None
            delta = data[position] + 13
            position += 1
        elif delta >= 14:
            return None  # option numbers above 268 (or a reserved nibble): none of ours
        if length == 13:
            if position >= end:
                return None
            length = data[position] + 13
            position += 1
        elif length >= 14:
            return None  # longer than 268 bytes (or reserved): beyond every option accepted here
        number += delta
        bounds = _ACCEPTED.get(number)
        value_end = position + length
        if bounds is None or not bounds[0] <= length <= bounds[1] or value_end > end:
            return None
        if number in (URI_PATH, URI_QUERY):
            try:
                text = data[position:value_end].decode("utf-8")
            except UnicodeDecodeError:
                return None  # aiocoap's path answers 4.00 (opendots.transport.coap_checks)
            (path if number == URI_PATH else query).append(text)
        elif number == URI_HOST:
            try:
                data[position:value_end].decode("utf-8")
            except UnicodeDecodeError:
                return None  # aiocoap's path answers 4.00
        elif number == CONTENT_FORMAT:
            if content_format is not None:
                return None  # repeated: a non-repeatable option twice is aiocoap's to judge
            content_format = int.from_bytes(data[position:value_end], "big")
        elif number == IF_MATCH:
            if_match = True
        position = value_end
    return tuple(path), tuple(query), content_format, if_match, payload


def _option(out: bytearray, delta: int, value: bytes) -> None:
    length = len(value)
    if delta < 13:
        nibble, extra = delta, b""
    else:
        nibble, extra = 13, bytes((delta - 13,))
    if length < 13:
        out.append(nibble << 4 | length)
        out += extra
    elif length < 269:
        out.append(nibble << 4 | 13)
        out += extra
        out.append(length - 13)
    else:
        out.append(nibble << 4 | 14)
        out += extra
        out += (length - 269).to_bytes(2, "big")
    out += value


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def encode_response(
    request: LeanRequest,
    mid: int,
    code: int,
    payload: bytes = b"",
    content_format: int | None = None,
    max_age: int | None = None,
) -> bytes:
    """The answer to REQUEST (RFC 7252 §5.2): piggybacked in the ACK of a CON (its Message ID; MID is ignored), a
    NON with Message ID MID for a NON (§5.2.3, RFC 9132 §4.4.1). CODE is the response code byte (class << 5 |
    detail); options Content-Format and Max-Age when given."""
    token = request.token
    if request.mtype == CON:
        mtype, mid = ACK, request.mid
    else:
        mtype = NON
    out = bytearray((0x40 | mtype << 4 | len(token), code))
    out += mid.to_bytes(2, "big")
    out += token
    number = 0
    if content_format is not None:
        option = _CONTENT_FORMAT_OPTIONS.get(content_format)
        if option is None:
            _option(out, CONTENT_FORMAT, _uint(content_format))
        else:
            out += option
        number = CONTENT_FORMAT
    if max_age is not None:
        _option(out, MAX_AGE - number, _uint(max_age))
    if payload:
        out.append(0xFF)
        out += payload
    return bytes(out)


def _option_bytes(delta: int, value: bytes) -> bytes:
    out = bytearray()
    _option(out, delta, value)
    return bytes(out)


_CONTENT_FORMAT_OPTIONS = {number: _option_bytes(CONTENT_FORMAT, _uint(number)) for number in (0, 60, 271)}
"""The Content-Format option, first in every answer with a body, of the formats answers carry (text/plain, CBOR,
application/dots+cbor): built once, not per answer (every refresh PUT and GET has one)."""


def empty_ack(mid: int) -> bytes:
    """An Empty ACK (§4.2): what a CON gets whose answer is left out (RFC 7967, RFC 9132 §4.4.3)."""
    return bytes((0x60, 0)) + mid.to_bytes(2, "big")


def response_code(dotted: str) -> int:
    """'2.04' -> the code byte 0x44."""
    major, minor = dotted.split(".")
    return int(major) << 5 | int(minor)
