"""RFC 7252 message and option rules at the signal-channel server, with crafted CoAP messages sent over a real DTLS
session (and aiocoap requests over DTLS and TLS): what must be refused is refused with the right code, a malformed
message gets a Reset, and nothing is carried out or logged as an internal error."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiocoap
import pytest
from aiocoap.optiontypes import OpaqueOption

from opendots.model import encode_signal
from opendots.transport import create_client_context
from tests.helpers import tls_files as files
from tests.helpers.raw_coap import CON, CONFIG_GET, DOTS, GET, NON, coap
from tests.helpers.signal_harness import figure


def no_internal_errors(caplog) -> bool:
    return not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_crafted_get_config_is_answered_2_05_as_a_baseline(raw):
    (answer,) = await raw(coap(CON, GET, 0x1001, b"t1", CONFIG_GET))
    assert (answer.mtype, answer.mid, answer.token, answer.code) == (aiocoap.ACK, 0x1001, b"t1", aiocoap.CONTENT)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ((25, b"x"), aiocoap.BAD_OPTION),  # an unrecognised critical option, RFC 7252 §5.4.1
        ((19, b"\x03"), aiocoap.BAD_REQUEST),  # Q-Block1 without Request-Tag and Size1: 4.00 (RFC 9177 §4.3)
        ((17, b"\x00\x00\x3c"), aiocoap.BAD_OPTION),  # Accept with 3 bytes (0-2 allowed), RFC 7252 §5.4.3
        ((23, b"\x00\x00\x00\x06"), aiocoap.BAD_OPTION),  # Block2 with 4 bytes (0-3 allowed)
        ((35, b"coap://198.51.100.1/"), aiocoap.PROXYING_NOT_SUPPORTED),  # Proxy-Uri, RFC 7252 §5.7.2
        ((39, b"coap"), aiocoap.PROXYING_NOT_SUPPORTED),  # Proxy-Scheme
    ],
)
async def test_critical_options_the_server_cannot_honour_are_refused_not_ignored_rfc7252_5_4_1(
    raw, caplog, option, expected
):
    options = sorted([*CONFIG_GET, option], key=lambda item: item[0])
    (answer,) = await raw(coap(CON, GET, 0x2002, b"t2", options))
    assert (answer.mtype, answer.mid, answer.token, answer.code) == (aiocoap.ACK, 0x2002, b"t2", expected)
    assert answer.payload  # a diagnostic
    assert no_internal_errors(caplog)


async def test_a_uri_path_that_is_not_utf8_gets_4_00_and_no_traceback_rfc7252_5_10_1(raw, caplog):
    (answer,) = await raw(coap(CON, GET, 0x3003, b"t3", [*DOTS, (11, b"\xff\xfe")]))
    assert (answer.mid, answer.code) == (0x3003, aiocoap.BAD_REQUEST)
    (answer,) = await raw(coap(NON, GET, 0x3004, b"t4", [*CONFIG_GET, (15, b"c=\xc3")]))
    assert (answer.mtype, answer.token, answer.code) == (aiocoap.NON, b"t4", aiocoap.BAD_REQUEST)
    assert no_internal_errors(caplog)


@pytest.mark.parametrize(
    "message",
    [
        coap(CON, GET, 0x4004, b"t5", CONFIG_GET) + b"\xff",  # payload marker, no payload (§3)
        bytes([0x49, GET, 0x40, 0x04]) + b"123456789",  # token length 9 (§3)
        coap(CON, GET, 0x4004, b"t5", CONFIG_GET) + b"\xf1x",  # option delta 15 that is no payload marker
        coap(CON, GET, 0x4004, b"t5", CONFIG_GET) + b"\x15",  # an option announced but absent
        bytes([0x40, 0, 0x40, 0x04, 0xFF, 0x01]),  # an Empty message with a payload (§4.1)
    ],
)
async def test_a_malformed_confirmable_message_is_rejected_with_a_reset_rfc7252_4_2(raw, caplog, message):
    (answer,) = await raw(message)
    assert (answer.mtype, answer.mid, answer.code, answer.token) == (aiocoap.RST, 0x4004, aiocoap.EMPTY, b"")
    assert no_internal_errors(caplog)


async def test_if_match_with_an_entity_tag_gets_4_12_while_an_empty_one_stays_an_efficacy_update_rfc9132_4_4_3(
    pki_dir: Path, server
):
    cuid = next(c.cuid for c in server.config.clients if c.name == "client")
    host, port = server.endpoint.dtls_addresses[0][:2]
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        for scheme, (host, port) in (
            ("coaps", server.endpoint.dtls_addresses[0][:2]),
            ("coaps+tcp", server.endpoint.tls_addresses[0][:2]),
        ):
            uri = f"{scheme}://{host}:{port}/.well-known/dots/mitigate/cuid={cuid}/mid=1{len(scheme)}"

            async def put(if_match: list[bytes] | None, body: dict, uri: str = uri) -> aiocoap.Message:
                message = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=encode_signal(body), content_format=271)
                if if_match is not None:
                    message.opt.if_match = if_match
                return await asyncio.wait_for(client.request(message).response, 10)

            assert (await put(None, figure("figure07"))).code == aiocoap.CREATED
            before = server.store.dump()
            refused = await put([b"\x01\x02"], figure("figure07"))
            assert refused.code == aiocoap.PRECONDITION_FAILED and refused.payload
            assert server.store.dump() == before  # nothing carried out
            efficacy_body = figure("figure07")
            efficacy_body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["attack-status"] = "under-attack"
            assert (await put([b""], efficacy_body)).code == aiocoap.CHANGED
            unknown = aiocoap.Message(code=aiocoap.GET, uri=uri)
            unknown.opt.add_option(OpaqueOption(2049, b"x"))  # critical (odd), unrecognised, over both transports
            answer = await asyncio.wait_for(client.request(unknown).response, 10)
            assert answer.code == aiocoap.BAD_OPTION
    finally:
        await client.shutdown()


async def test_observe_on_a_put_is_ignored_and_the_put_carried_out_rfc7641_2(pki_dir: Path, server, caplog):
    host, port = server.endpoint.dtls_addresses[0][:2]
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        message = aiocoap.Message(
            code=aiocoap.PUT,
            uri=f"coaps://{host}:{port}/.well-known/dots/hb",
            payload=encode_signal(figure("figure27")),
            content_format=271,
            observe=0,
        )
        answer = await asyncio.wait_for(client.request(message).response, 10)
        assert answer.code == aiocoap.CHANGED and answer.opt.observe is None
        assert no_internal_errors(caplog)
    finally:
        await client.shutdown()
