"""RFC 7252 option rules and RFC 9132 §4.4.3 at the signal-channel server over both transports, with CoAP messages
written by hand and sent over a real DTLS session and a real TLS connection (RFC 8323 frames): silent answers,
non-UTF-8 Uri-Path/Uri-Query, elective options with invalid lengths."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from pathlib import Path

import aiocoap
import pytest

from opendots.model import encode_signal
from opendots.transport.tls import tls_client_context
from tests.helpers import tls_files as files
from tests.helpers.raw_coap import ACK, CON, CONFIG_GET, DOTS, GET, NON, PUT, RawDtlsCoap, coap
from tests.helpers.signal_harness import figure

CSM = 0xE1  # 7.01, RFC 8323 §5.3


def frame(code: int, token: bytes, options: list[tuple[int, bytes]], payload: bytes = b"") -> bytes:
    """An RFC 8323 §3.2 frame written by hand: the options and payload of `coap` behind a TCP header."""
    udp = coap(CON, code, 0, token, options, payload)
    body = udp[4 + len(token) :]
    length = len(body)
    if length < 13:
        head = bytes([length << 4 | len(token)])
    elif length < 269:
        head = bytes([13 << 4 | len(token), length - 13])
    else:
        head = bytes([14 << 4 | len(token)]) + (length - 269).to_bytes(2, "big")
    return head + bytes([code]) + token + body


def parse_frames(buffer: bytearray) -> list[aiocoap.Message]:
    """Take every complete frame off BUFFER, decoded as aiocoap messages (via the equivalent UDP encoding)."""
    messages = []
    while buffer:
        nibble, token_length = buffer[0] >> 4, buffer[0] & 0x0F
        extra = {13: 1, 14: 2, 15: 4}.get(nibble, 0)
        if len(buffer) < 1 + extra + 1:
            break
        length = (
            nibble if not extra else int.from_bytes(buffer[1 : 1 + extra], "big") + {1: 13, 2: 269, 4: 65805}[extra]
        )
        start = 1 + extra
        end = start + 1 + token_length + length
        if len(buffer) < end:
            break
        code, token, body = (
            buffer[start],
            bytes(buffer[start + 1 : start + 1 + token_length]),
            buffer[start + 1 + token_length : end],
        )
        del buffer[:end]
        messages.append(aiocoap.Message.decode(bytes([0x40 | token_length, code, 0, 0]) + token + bytes(body)))
    return messages


class RawTlsCoap:
    """A CoAP-over-TLS client that sends frames exactly as given (blocking: used from a thread)."""

    def __init__(self, context: ssl.SSLContext, port: int) -> None:
        plain = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(plain, server_hostname="localhost")
        self.buffer = bytearray()
        self.sock.sendall(bytes([0x00, CSM]))  # RFC 8323 §3.3: a CSM first

    def exchange(self, data: bytes, wait: float = 1.5) -> list[aiocoap.Message]:
        """Send DATA; every non-signalling message that comes back within WAIT seconds (stops at the first)."""
        self.sock.sendall(data)
        answers: list[aiocoap.Message] = []
        give_up = time.monotonic() + wait
        while not answers and (left := give_up - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                answers.append(aiocoap.Message(code=aiocoap.EMPTY, payload=b"connection closed"))
                break
            self.buffer += chunk
            answers += [message for message in parse_frames(self.buffer) if not message.code.is_signalling()]
        return answers

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def raw_tls(pki_dir: Path, server):
    port = server.endpoint.tls_addresses[0][1]
    loop = asyncio.get_running_loop()
    context = tls_client_context(files(pki_dir, "client"), "localhost")
    client = await loop.run_in_executor(None, RawTlsCoap, context, port)

    async def exchange(data: bytes) -> list[aiocoap.Message]:
        return await loop.run_in_executor(None, client.exchange, data)

    yield exchange
    client.close()


def no_internal_errors(caplog) -> bool:
    return not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_uri_path_that_is_not_utf8_gets_4_00_over_tls_too_rfc7252_5_10_1(raw_tls, caplog):
    (answer,) = await raw_tls(frame(GET, b"u1", [*DOTS, (11, b"\xff\xfe")]))
    assert (answer.token, answer.code) == (b"u1", aiocoap.BAD_REQUEST) and answer.payload
    (answer,) = await raw_tls(frame(GET, b"u2", [*CONFIG_GET, (15, b"c=\xc3")]))
    assert (answer.token, answer.code) == (b"u2", aiocoap.BAD_REQUEST)
    (answer,) = await raw_tls(frame(GET, b"u3", CONFIG_GET))  # the connection keeps serving
    assert (answer.token, answer.code) == (b"u3", aiocoap.CONTENT)
    assert no_internal_errors(caplog)


@pytest.fixture(params=["dtls", "tls"])
async def crafted(request, raw, raw_tls):
    """Send one hand-built request over a real DTLS session or TLS connection: send(code, token, options, payload)
    -> the messages that came back (within 1.5 s; the first answer ends the wait)."""
    mids = iter(range(0x5000, 0x6000))

    async def send(code, token, options, payload=b""):
        if request.param == "dtls":
            return await raw(coap(CON, code, next(mids), token, options, payload))
        return await raw_tls(frame(code, token, options, payload))

    send.transport = request.param
    return send


def mitigate_path(server, mid: int) -> list[tuple[int, bytes]]:
    cuid = next(c.cuid for c in server.config.clients if c.name == "client")
    return [*DOTS, (11, b"mitigate"), (11, f"cuid={cuid}".encode()), (11, f"mid={mid}".encode())]


async def test_an_observe_of_four_bytes_is_ignored_like_an_unknown_elective_option_rfc7252_5_4_3(
    crafted, server, caplog
):
    (answer,) = await crafted(GET, b"o1", [(6, b"\x00\x00\x00\x00"), *CONFIG_GET])
    assert (answer.token, answer.code) == (b"o1", aiocoap.CONTENT)
    assert answer.opt.observe is None  # served as a plain GET: no observation
    assert server.resource.observer_count() == 0
    assert no_internal_errors(caplog)


async def test_a_content_format_of_three_bytes_is_ignored_and_the_put_carried_out_rfc7252_5_4_3(crafted, server):
    """Today a 3-byte Content-Format reads as format 65536 (4.15); ignored, the body is taken as the DOTS default."""
    options = [*mitigate_path(server, 31 if crafted.transport == "dtls" else 32), (12, b"\x01\x00\x00")]
    (answer,) = await crafted(PUT, b"c1", options, encode_signal(figure("figure07")))
    assert (answer.token, answer.code) == (b"c1", aiocoap.CREATED), answer.payload


@pytest.mark.parametrize(
    "option",
    [
        (4, b"123456789"),  # ETag of 9 bytes (1-8)
        (4, b""),  # ETag of 0 bytes
        (14, b"\x00\x00\x00\x00\x3c"),  # Max-Age of 5 bytes (0-4)
        (28, b"\x00\x00\x00\x00\x01"),  # Size2 of 5 bytes
        (258, b"\x00\x1a"),  # No-Response of 2 bytes (0-1): ignored, so the GET is answered
    ],
)
async def test_other_elective_options_of_invalid_length_are_ignored_and_the_request_served_rfc7252_5_4_3(
    crafted, option
):
    options = sorted([*CONFIG_GET, option], key=lambda item: item[0])
    (answer,) = await crafted(GET, b"e1", options)
    assert (answer.token, answer.code) == (b"e1", aiocoap.CONTENT)


async def test_a_critical_option_of_invalid_length_is_still_refused_over_both_transports_rfc7252_5_4_3(crafted):
    for token, option in ((b"k1", (5, b"x")), (b"k2", (17, b"\x00\x00\x3c"))):  # If-None-Match, Accept
        options = sorted([*CONFIG_GET, option], key=lambda item: item[0])
        (answer,) = await crafted(GET, token, options)
        assert (answer.token, answer.code) == (token, aiocoap.BAD_OPTION) and answer.payload


def efficacy_update(server, mid: int) -> tuple[list[tuple[int, bytes]], bytes]:
    body = figure("figure07")
    body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["attack-status"] = "under-attack"
    path = mitigate_path(server, mid)
    return [(1, b""), *path, (12, b"\x01\x0f")], encode_signal(body)  # If-Match (empty), Content-Format 271


async def test_an_efficacy_update_for_an_unknown_mid_gets_only_the_empty_ack_over_dtls_rfc9132_4_4_3(raw, server):
    options, body = efficacy_update(server, 77)
    before = server.store.dump()
    (answer,) = await raw(coap(CON, PUT, 0x7001, b"f1", options, body))
    assert (answer.mtype, answer.mid, answer.code, answer.token) == (ACK, 0x7001, aiocoap.EMPTY, b"")
    assert await raw(coap(NON, PUT, 0x7002, b"f2", options, body)) == []  # a NON: nothing at all
    assert server.store.dump() == before
    # The server keeps serving, and no late 4.04 turns up before the next answer.
    (answer,) = await raw(coap(CON, GET, 0x7003, b"f3", CONFIG_GET))
    assert (answer.mid, answer.token, answer.code) == (0x7003, b"f3", aiocoap.CONTENT)


async def test_an_efficacy_update_for_an_unknown_mid_gets_4_04_over_tls_rfc9132_4_4_3(raw_tls, server):
    """RFC 8323 has no ACK: silence would leave the client's request pending for good, and the reordering that the
    §4.4.3 rule handles ("If UDP is used as transport, CoAP requests may arrive out of order") cannot happen on one
    TLS connection; so the client learns that nothing was done."""
    options, body = efficacy_update(server, 78)
    (answer,) = await raw_tls(frame(PUT, b"g1", options, body))
    assert (answer.token, answer.code) == (b"g1", aiocoap.NOT_FOUND) and answer.payload
    (answer,) = await raw_tls(frame(GET, b"g2", CONFIG_GET))
    assert (answer.token, answer.code) == (b"g2", aiocoap.CONTENT)


async def until(condition, timeout: float = 5.0) -> bool:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.mark.parametrize("transport", ["dtls", "tls"])
async def test_unfinished_block1_uploads_go_when_the_peers_session_ends_rfc7959_2_5(pki_dir: Path, server, transport):
    """A session's uploads can never complete once it is gone (a new session is a new peer): they must not wait for
    the 93 s idle expiry. Counted in the server's upload table."""
    loop = asyncio.get_running_loop()
    first_block = [*mitigate_path(server, 40), (12, b"\x01\x0f"), (27, b"\x0a")]  # Block1 0/M/64
    body = encode_signal(figure("figure07"))[:64]
    other = await loop.run_in_executor(
        None, RawDtlsCoap, files(pki_dir, "client"), server.endpoint.dtls_addresses[0][1]
    )
    try:  # another peer's unfinished upload stays
        (answer,) = await loop.run_in_executor(None, other.exchange, coap(CON, PUT, 0x6001, b"b0", first_block, body))
        assert aiocoap.Message.decode(answer).code == aiocoap.CONTINUE
        if transport == "dtls":
            client = await loop.run_in_executor(
                None, RawDtlsCoap, files(pki_dir, "client"), server.endpoint.dtls_addresses[0][1]
            )
            answers = await loop.run_in_executor(
                None, client.exchange, coap(CON, PUT, 0x6002, b"b1", first_block, body)
            )
            answers = [aiocoap.Message.decode(answer) for answer in answers]
        else:
            context = tls_client_context(files(pki_dir, "client"), "localhost")
            client = await loop.run_in_executor(None, RawTlsCoap, context, server.endpoint.tls_addresses[0][1])
            answers = await loop.run_in_executor(None, client.exchange, frame(PUT, b"b1", first_block, body))
        assert [answer.code for answer in answers] == [aiocoap.CONTINUE]
        assert len(server.resource.uploads) == 2
        await loop.run_in_executor(None, client.close)  # DTLS: close_notify; TLS: the connection closes
        assert await until(lambda: len(server.resource.uploads) == 1), "the closed session's upload is still held"
    finally:
        other.close()
