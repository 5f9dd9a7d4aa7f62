"""A Q-Block1 body the client gave up over a real DTLS session with our server (RFC 9177 §4.3): the client forgets
the body's tokens, so the server's NON 4.08 listing the blocks it misses finds no request and the client answers it
with RST; on that RST the server deletes the partial body at once (instead of asking NON_MAX_RETRANSMIT times more
and keeping it until then), and counts it as reset."""

from __future__ import annotations

import asyncio

import aiocoap

from opendots.transport import client_request
from opendots.transport.qblock import QBLOCK1, BlockOption
from tests.helpers.qblock_site import FAST, client_engine


async def test_a_4_08_for_a_body_the_client_forgot_gets_an_rst_and_the_server_deletes_the_partial_body_rfc9177_4_3(
    big_server, client_context
):
    uri = f"coaps://127.0.0.1:{big_server.port}/big"
    engine = await client_engine(client_context, uri)
    original = engine._send

    def lose_block_1(out: aiocoap.Message) -> None:  # block 1 never reaches the server: its body stays partial
        found = out.opt.get_option(QBLOCK1)
        if not (found and BlockOption.decode(found[0].encode()).num == 1):
            original(out)

    engine._send = lose_block_1
    request = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=bytes(2500), transport_tuning=aiocoap.Unreliable)
    sent = await client_request(client_context, request, qblock_parameters=FAST)
    assert sent.qblock
    for _ in range(100):  # blocks 0 and 2 arrived: the server waits for block 1
        if len(big_server.qblock.receiver) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(big_server.qblock.receiver) == 1
    sent.pending.response.cancel()  # the caller gives up: the client forgets the body's tokens (§4.3)
    for _ in range(100):
        if big_server.qblock.abandoned:
            break
        await asyncio.sleep(0.05)
    assert big_server.qblock.responses_sent.get("4.08") == 1  # one 4.08 listing block 1, answered by an RST
    assert big_server.qblock.abandoned == {"reset": 1} and len(big_server.qblock.receiver) == 0
    assert engine.counts["resets"] == 1
    assert big_server.big.bodies == []
