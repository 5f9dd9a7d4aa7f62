"""coap_lean remembers parsed request tails (options and payload after the token): a client's heartbeats, refreshes
and GETs repeat them, only Message ID and token change. What is remembered is bounded in count and size, and a
request read from it is the same as one parsed afresh."""

from __future__ import annotations

import aiocoap
import pytest

from opendots.transport import coap_lean
from opendots.transport.coap_lean import NON, parse_request


def heartbeat(mid: int, token: bytes, path: str = "hb", payload: bytes = b"\xa1\x19\x40\x4f\xf4") -> bytes:
    message = aiocoap.Message(code=aiocoap.PUT, uri_path=[".well-known", "dots", path], payload=payload)
    message.mtype, message.mid, message.token = aiocoap.NON, mid, token
    message.opt.content_format = 271
    return message.encode()


@pytest.fixture
def parses(monkeypatch) -> list[int]:
    """Counts the tails actually parsed, from an empty memory."""
    monkeypatch.setattr(coap_lean, "_parsed", {})
    counted: list[int] = []
    parse_tail = coap_lean._parse_tail

    def counting(data: bytes, position: int):
        counted.append(position)
        return parse_tail(data, position)

    monkeypatch.setattr(coap_lean, "_parse_tail", counting)
    return counted


def test_a_repeated_request_is_read_from_its_remembered_tail_with_its_own_message_id_and_token(parses) -> None:
    first = parse_request(heartbeat(1, b"ab"))
    again = parse_request(heartbeat(2, b"cd"))
    assert len(parses) == 1
    assert first is not None and again is not None
    assert (first.mid, first.token, again.mid, again.token) == (1, b"ab", 2, b"cd")
    assert (again.mtype, again.code, again.path, again.content_format, again.payload) == (
        NON,
        3,
        (".well-known", "dots", "hb"),
        271,
        b"\xa1\x19\x40\x4f\xf4",
    )
    assert parse_request(heartbeat(3, b"abcd")) == parse_request(heartbeat(3, b"abcd"))  # a longer token: same tail
    assert len(parses) == 1


def test_a_refused_tail_stays_refused_rfc7252_3(parses) -> None:
    marker_without_payload = heartbeat(1, b"ab", payload=b"") + b"\xff"
    assert parse_request(marker_without_payload) is None
    assert parse_request(marker_without_payload) is None
    assert len(parses) == 1


def test_the_remembered_tails_are_bounded_in_count_and_size(parses) -> None:
    for index in range(coap_lean.PARSED_KEPT + 10):
        assert parse_request(heartbeat(index & 0xFFFF, b"t", path=f"p{index}")) is not None
        assert len(coap_lean._parsed) <= coap_lean.PARSED_KEPT
    large = heartbeat(1, b"t", payload=bytes(coap_lean.CACHED_TAIL))
    before = dict(coap_lean._parsed)
    assert parse_request(large) is not None and parse_request(large) is not None
    assert coap_lean._parsed == before  # parsed each time, never kept
