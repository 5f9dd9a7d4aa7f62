"""The lean CoAP codec (opendots.transport.coap_lean) against aiocoap's encoder and decoder: what it accepts it
reads exactly as aiocoap does, what it answers aiocoap decodes as meant, and everything else (options needing
aiocoap's machinery, malformed or truncated bytes) is refused (None) without raising."""

from __future__ import annotations

import aiocoap
from aiocoap.numbers.codes import Code
from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.transport.coap_checks import inspect_datagram
from opendots.transport.coap_lean import CON, NON, empty_ack, encode_response, parse_request, response_code

_TEXT = st.text(max_size=40)
_METHODS = st.sampled_from([aiocoap.GET, aiocoap.POST, aiocoap.PUT, aiocoap.DELETE])


@st.composite
def _requests(draw: st.DrawFn) -> aiocoap.Message:
    message = aiocoap.Message(
        code=draw(_METHODS),
        uri_path=draw(st.lists(_TEXT, max_size=6)),
        uri_query=draw(st.lists(_TEXT, max_size=4)),
        payload=draw(st.binary(max_size=300)),
    )
    message.mtype = draw(st.sampled_from([aiocoap.CON, aiocoap.NON]))
    message.mid = draw(st.integers(0, 0xFFFF))
    message.token = draw(st.binary(max_size=8))
    if draw(st.booleans()):
        message.opt.content_format = draw(st.integers(0, 0xFFFF))
    if draw(st.booleans()):
        message.opt.accept = draw(st.integers(0, 0xFFFF))
    if draw(st.booleans()):
        message.opt.uri_host = draw(st.text(min_size=1, max_size=20))
    if draw(st.booleans()):
        message.opt.if_match = [b""]
    return message


@settings(max_examples=300, deadline=None)
@given(_requests())
def test_every_plain_request_aiocoap_encodes_is_read_as_aiocoap_reads_it(message: aiocoap.Message) -> None:
    parsed = parse_request(message.encode())
    assert parsed is not None
    assert parsed.mtype == (CON if message.mtype is aiocoap.CON else NON)
    assert (parsed.mid, parsed.token, parsed.code) == (message.mid, message.token, int(message.code))
    assert parsed.path == tuple(message.opt.uri_path) and parsed.query == tuple(message.opt.uri_query)
    assert parsed.content_format == (None if message.opt.content_format is None else int(message.opt.content_format))
    assert parsed.if_match_empty == bool(message.opt.if_match)
    assert parsed.payload == message.payload


@settings(max_examples=300, deadline=None)
@given(
    _requests(),
    st.integers(0, 0xFFFF),
    st.sampled_from([Code.CHANGED, Code.CREATED, Code.CONTENT, Code.NOT_FOUND, Code.INTERNAL_SERVER_ERROR]),
    st.binary(max_size=1100),
    st.one_of(st.none(), st.sampled_from([0, 60, 271]), st.integers(0, 0xFFFF)),  # the prebuilt ones, and any
    st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)),
)
def test_an_answer_is_piggybacked_on_the_ack_of_a_con_and_a_non_of_its_own_for_a_non_rfc7252_5_2(
    message: aiocoap.Message, mid: int, code: Code, payload: bytes, content_format: int | None, max_age: int | None
) -> None:
    request = parse_request(message.encode())
    assert request is not None
    decoded = aiocoap.Message.decode(encode_response(request, mid, int(code), payload, content_format, max_age))
    if message.mtype is aiocoap.CON:
        assert (decoded.mtype, decoded.mid) == (aiocoap.ACK, message.mid)
    else:
        assert (decoded.mtype, decoded.mid) == (aiocoap.NON, mid)
    assert (decoded.code, decoded.token, decoded.payload) == (code, message.token, payload)
    assert decoded.opt.content_format == content_format and decoded.opt.max_age == max_age


def test_an_empty_ack_is_what_aiocoap_sends_for_a_silenced_con() -> None:
    decoded = aiocoap.Message.decode(empty_ack(0x1234))
    assert (decoded.mtype, decoded.mid, decoded.code, decoded.token, decoded.payload) == (
        aiocoap.ACK,
        0x1234,
        aiocoap.EMPTY,
        b"",
        b"",
    )
    assert response_code("2.04") == int(Code.CHANGED) and response_code("5.00") == int(Code.INTERNAL_SERVER_ERROR)


def _heartbeat() -> aiocoap.Message:
    message = aiocoap.Message(code=aiocoap.PUT, uri_path=[".well-known", "dots", "hb"], payload=b"\xa1\x19\x01\x00")
    message.mtype, message.mid, message.token = aiocoap.NON, 5, b"\x01\x02"
    message.opt.content_format = 271
    return message


# Options a plain request may not carry: each needs aiocoap's machinery or its refusal (4.02, 4.12, 5.05).
_REFUSED_OPTIONS = {
    "Observe (RFC 7641)": lambda o: setattr(o, "observe", 0),
    "Block1 (RFC 7959)": lambda o: setattr(o, "block1", aiocoap.optiontypes.BlockOption.BlockwiseTuple(0, True, 6)),
    "Block2 (RFC 7959)": lambda o: setattr(o, "block2", aiocoap.optiontypes.BlockOption.BlockwiseTuple(1, False, 6)),
    "Size1": lambda o: setattr(o, "size1", 2000),
    "Size2": lambda o: setattr(o, "size2", 0),
    "Hop-Limit (RFC 8768)": lambda o: o.add_option(aiocoap.optiontypes.UintOption(16, 3)),
    "No-Response (RFC 7967)": lambda o: setattr(o, "no_response", 26),
    "ETag": lambda o: setattr(o, "etag", b"\x01"),
    "If-Match with a tag": lambda o: setattr(o, "if_match", [b"\x01"]),
    "If-None-Match": lambda o: setattr(o, "if_none_match", True),
    "Proxy-Uri": lambda o: setattr(o, "proxy_uri", "coap://elsewhere/"),
    "Q-Block1 (RFC 9177)": lambda o: o.add_option(aiocoap.optiontypes.UintOption(19, 0)),
    "Q-Block2 (RFC 9177)": lambda o: o.add_option(aiocoap.optiontypes.UintOption(31, 0)),
    "unknown critical": lambda o: o.add_option(aiocoap.optiontypes.OpaqueOption(9, b"x")),
    "unknown elective": lambda o: o.add_option(aiocoap.optiontypes.OpaqueOption(2000, b"x")),
    "Uri-Path-Abbrev": lambda o: o.add_option(aiocoap.optiontypes.UintOption(65000, 1)),
}


def test_every_option_the_lean_path_does_not_handle_leaves_the_request_to_aiocoap() -> None:
    assert parse_request(_heartbeat().encode()) is not None
    for name, add in _REFUSED_OPTIONS.items():
        message = _heartbeat()
        add(message.opt)
        assert parse_request(message.encode()) is None, name


def test_what_is_no_plain_request_is_left_to_aiocoap_rfc7252_3_4_1() -> None:
    plain = bytearray(_heartbeat().encode())
    cases = {
        "version 2": bytes([0x90 | plain[0] & 0x3F]) + plain[1:],
        "an ACK": bytes([plain[0] | 0x20]) + plain[1:],
        "an RST": bytes([plain[0] | 0x30]) + plain[1:],
        "a response (2.04)": plain[:1] + bytes([0x44]) + plain[2:],
        "an empty CON (ping)": bytes([0x40, 0, 0, 1]),
        "FETCH": plain[:1] + bytes([5]) + plain[2:],
        "a token length of 9": bytes([0x59]) + plain[1:],
        "a payload marker with nothing after it": bytes(plain[: plain.index(0xFF) + 1]),
    }
    for name, data in cases.items():
        assert parse_request(bytes(data)) is None, name
    bad_utf8 = bytes([0x50, 1, 0, 1, 0xB1, 0xC3])  # NON GET, Uri-Path of one byte 0xC3 (a lone lead byte)
    assert parse_request(bad_utf8) is None
    assert inspect_datagram(bad_utf8).action == "refuse"  # aiocoap's path answers it 4.00


def test_every_truncation_of_a_request_is_refused_or_read_as_the_shorter_message_it_is() -> None:
    data = _heartbeat().encode()
    for end in range(len(data)):
        parsed = parse_request(data[:end])
        if parsed is not None:
            decoded = aiocoap.Message.decode(data[:end])
            assert (parsed.path, parsed.payload) == (tuple(decoded.opt.uri_path), decoded.payload)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=60).map(lambda tail: bytes([0x50, 3, 0, 9]) + tail) | st.binary(max_size=64))
def test_garbled_bytes_never_raise_and_what_is_accepted_aiocoap_decodes_alike_and_checks_clean(data: bytes) -> None:
    parsed = parse_request(data)
    if parsed is None:
        return
    inspection = inspect_datagram(data)
    assert inspection.action == "ok" and inspection.cleaned is None
    decoded = aiocoap.Message.decode(data)
    assert (parsed.mid, parsed.token, parsed.code, parsed.payload) == (
        decoded.mid,
        decoded.token,
        int(decoded.code),
        decoded.payload,
    )
    assert parsed.path == tuple(decoded.opt.uri_path) and parsed.query == tuple(decoded.opt.uri_query)
