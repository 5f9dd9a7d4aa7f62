"""A Q-Block1 body the client gave up over a real DTLS session with our server (RFC 9177 §4.3): the client forgets
the body's tokens, so the server's NON 4.08 listing the blocks it misses finds no request and the client answers it
with RST; on that RST the server deletes the partial body at once (instead of asking NON_MAX_RETRANSMIT times more
and keeping it until then), and counts it as reset."""

from __future__ import annotations

import asyncio

import aiocoap
import pytest

from opendots.transport import client_request, create_client_context
from opendots.transport.aiocoap_hooks import find_message_manager, find_request_interface
from opendots.transport.qblock import QBLOCK1, BlockOption, QBlockParameters
from tests.helpers import tls_files as files
from tests.helpers.qblock_site import serve_big

FAST = QBlockParameters(non_timeout=0.5)  # NON_RECEIVE_TIMEOUT 1.75 s: the server's 4.08 comes soon


@pytest.fixture
async def server(pki_dir):
    endpoint = await serve_big(pki_dir, FAST)
    yield endpoint
    await endpoint.shutdown()


@pytest.fixture
async def client(pki_dir):
    context = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    yield context
    await context.shutdown()


async def test_a_4_08_for_a_body_the_client_forgot_gets_an_rst_and_the_server_deletes_the_partial_body_rfc9177_4_3(
    server, client
):
    uri = f"coaps://127.0.0.1:{server.port}/big"
    probe = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await find_request_interface(client, probe)
    manager = await find_message_manager(client, probe.remote)
    engine = manager.qblock_client
    original = engine._send

    def lose_block_1(out: aiocoap.Message) -> None:  # block 1 never reaches the server: its body stays partial
        found = out.opt.get_option(QBLOCK1)
        if not (found and BlockOption.decode(found[0].encode()).num == 1):
            original(out)

    engine._send = lose_block_1
    request = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=bytes(2500), transport_tuning=aiocoap.Unreliable)
    sent = await client_request(client, request, qblock_parameters=FAST)
    assert sent.qblock
    for _ in range(100):  # blocks 0 and 2 arrived: the server waits for block 1
        if len(server.qblock.receiver) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(server.qblock.receiver) == 1
    sent.pending.response.cancel()  # the caller gives up: the client forgets the body's tokens (§4.3)
    for _ in range(100):
        if server.qblock.abandoned:
            break
        await asyncio.sleep(0.05)
    assert server.qblock.responses_sent.get("4.08") == 1  # one 4.08 listing block 1, answered by an RST
    assert server.qblock.abandoned == {"reset": 1} and len(server.qblock.receiver) == 0
    assert engine.counts["resets"] == 1
    assert server.big.bodies == []
