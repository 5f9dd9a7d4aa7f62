"""RFC 8768 §3 at every server (gateway or not): a Hop-Limit of 0 or above 255 is a bad request."""

from __future__ import annotations

from opendots.transport.coap_checks import inspect_datagram, inspect_frame
from tests.helpers.coap_bytes import DOTS, NON, PUT, coap

HOP_LIMIT = 16  # RFC 8768 §5


def _request(*hop_limits: int) -> bytes:
    """A NON PUT to /.well-known/dots/hb carrying HOP_LIMITS (uint options: minimal length, 0 is empty)."""
    options = [*DOTS, (11, b"hb")]
    options += [(HOP_LIMIT, value.to_bytes((value.bit_length() + 7) // 8, "big")) for value in hop_limits]
    return coap(NON, PUT, 7, b"\x01", options)


def _frame(datagram: bytes) -> bytes:
    """The same request as a CoAP-over-TLS frame (RFC 8323 §3.2): length nibble, token length, code, token, rest."""
    token_length = datagram[0] & 0x0F
    token, rest = datagram[4 : 4 + token_length], datagram[4 + token_length :]
    assert 13 <= len(rest) < 269
    return bytes([13 << 4 | token_length, len(rest) - 13, datagram[1]]) + token + rest


def test_a_hop_limit_of_0_is_refused_4_00_over_dtls_and_tls_rfc8768_s3() -> None:
    for inspection in (inspect_datagram(_request(0)), inspect_frame(_frame(_request(0)))):
        assert (inspection.action, inspection.code) == ("refuse", "4.00")
        assert "Hop-Limit" in inspection.diagnostic


def test_a_hop_limit_above_255_is_refused_4_00_rfc8768_s3() -> None:
    inspection = inspect_datagram(_request(256))
    assert (inspection.action, inspection.code) == ("refuse", "4.00")


def test_hop_limits_from_1_to_255_pass_and_a_repeated_one_counts_once_rfc7252_s5_4_5() -> None:
    for value in (1, 16, 255):
        assert inspect_datagram(_request(value)).action == "ok"
    assert inspect_datagram(_request(3, 0)).action == "ok"
