"""RFC 8768 §3 at every server (gateway or not): a Hop-Limit of 0 or above 255 is a bad request."""

from __future__ import annotations

import aiocoap
from aiocoap.numbers.types import NON
from aiocoap.optiontypes import UintOption

from opendots.transport.coap_checks import inspect_datagram, inspect_frame


def _request(*hop_limits: int) -> aiocoap.Message:
    message = aiocoap.Message(code=aiocoap.PUT, mtype=NON, mid=7, uri_path=(".well-known", "dots", "hb"))
    message.token = b"\x01"
    for value in hop_limits:
        message.opt.add_option(UintOption(aiocoap.OptionNumber.HOP_LIMIT, value))
    return message


def _frame(message: aiocoap.Message) -> bytes:
    """The same request as a CoAP-over-TLS frame (RFC 8323 §3.2): length nibble, token length, code, token, rest."""
    datagram = message.encode()
    rest = datagram[4 + len(message.token) :]
    assert 13 <= len(rest) < 269
    return bytes([13 << 4 | len(message.token), len(rest) - 13, datagram[1]]) + message.token + rest


def test_a_hop_limit_of_0_is_refused_4_00_over_dtls_and_tls_rfc8768_s3() -> None:
    for inspection in (inspect_datagram(_request(0).encode()), inspect_frame(_frame(_request(0)))):
        assert (inspection.action, inspection.code) == ("refuse", "4.00")
        assert "Hop-Limit" in inspection.diagnostic


def test_a_hop_limit_above_255_is_refused_4_00_rfc8768_s3() -> None:
    inspection = inspect_datagram(_request(256).encode())
    assert (inspection.action, inspection.code) == ("refuse", "4.00")


def test_hop_limits_from_1_to_255_pass_and_a_repeated_one_counts_once_rfc7252_s5_4_5() -> None:
    for value in (1, 16, 255):
        assert inspect_datagram(_request(value).encode()).action == "ok"
    assert inspect_datagram(_request(3, 0).encode()).action == "ok"
