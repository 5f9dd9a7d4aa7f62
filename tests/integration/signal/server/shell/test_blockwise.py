"""Block-wise transfers of the signal channel over real DTLS and TLS sockets (RFC 7959, RFC 9132 §4.4.2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest
from aiocoap.optiontypes import BlockOption

from opendots.model import DEFAULT_MAX_SIZE, decode_signal, encode_signal
from opendots.transport import create_client_context
from tests.helpers import tls_files as files
from tests.helpers.signal_harness import SCOPE, figure
from tests.helpers.signal_server import BASE, cuid_of


@pytest.fixture
async def client(pki_dir: Path):
    context = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    yield context
    await context.shutdown()


def base_uri(server, scheme: str) -> str:
    host, port = (server.endpoint.dtls_addresses if scheme == "coaps" else server.endpoint.tls_addresses)[0][:2]
    return f"{scheme}://{host}:{port}{BASE}"


async def send_block(
    context, uri: str, number: int, more: bool, payload: bytes, szx: int = 6, size1: int | None = None
) -> aiocoap.Message:
    """One PUT block exactly as given: aiocoap's own block-wise handling is bypassed."""
    message = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=payload, content_format=271)
    message.opt.block1 = BlockOption.BlockwiseTuple(number, more, szx)
    if size1 is not None:
        message.opt.size1 = size1
    return await asyncio.wait_for(context.request(message, handle_blockwise=False).response, 10)


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_an_oversized_block1_upload_is_refused_with_4_13_at_the_first_block_past_the_limit_rfc7959_2_9_3(
    server, client, scheme: str
):
    uri = f"{base_uri(server, scheme)}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=7"
    chunk = b"\x00" * 1024
    answers = []
    for number in range(DEFAULT_MAX_SIZE // 1024 + 5):  # a peer that would go on for ever
        answer = await send_block(client, uri, number, True, chunk)
        answers.append(answer.code)
        if answer.code != aiocoap.CONTINUE:
            break
    # 64 blocks fill the limit exactly; the 65th passes it and ends the upload at once, not at its last block
    assert answers == [aiocoap.CONTINUE] * (DEFAULT_MAX_SIZE // 1024) + [aiocoap.REQUEST_ENTITY_TOO_LARGE]
    assert answer.opt.size1 == DEFAULT_MAX_SIZE and answer.payload  # the limit, and a diagnostic
    assert len(server.resource.uploads) == 0 and server.resource.uploads.pending_bytes() == 0
    # the upload is gone: its next block finds nothing to continue
    late = await send_block(client, uri, DEFAULT_MAX_SIZE // 1024 + 1, True, chunk)
    assert late.code == aiocoap.REQUEST_ENTITY_INCOMPLETE


async def test_a_size1_above_the_limit_is_refused_on_the_first_block_rfc7959_4(server, client):
    uri = f"{base_uri(server, 'coaps')}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=7"
    answer = await send_block(client, uri, 0, True, b"\x00" * 1024, size1=20 * 1024 * 1024)
    assert answer.code == aiocoap.REQUEST_ENTITY_TOO_LARGE and answer.opt.size1 == DEFAULT_MAX_SIZE
    assert len(server.resource.uploads) == 0


async def test_a_block_out_of_sequence_gets_4_08_not_5_00_rfc7959_2_3(server, client):
    uri = f"{base_uri(server, 'coaps')}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=7"
    orphan = await send_block(client, uri, 3, True, b"\x00" * 1024)
    assert orphan.code == aiocoap.REQUEST_ENTITY_INCOMPLETE
    assert (await send_block(client, uri, 0, True, b"\x00" * 1024)).code == aiocoap.CONTINUE
    gap = await send_block(client, uri, 2, True, b"\x00" * 1024)
    assert gap.code == aiocoap.REQUEST_ENTITY_INCOMPLETE
    assert len(server.resource.uploads) == 0


async def test_unfinished_uploads_are_bounded_per_peer(server, client):
    mitigate = f"{base_uri(server, 'coaps')}/mitigate/cuid={cuid_of(server.config, 'client')}"
    bound = server.resource.uploads.per_peer
    for mid in range(1, bound + 10):
        assert (await send_block(client, f"{mitigate}/mid={mid}", 0, True, b"\x00" * 64, szx=2)).code == (
            aiocoap.CONTINUE
        )
    assert len(server.resource.uploads) == bound  # each new one pushed the peer's oldest out
    # the oldest are gone (4.08), the newest can still finish
    assert (await send_block(client, f"{mitigate}/mid=1", 1, False, b"\x00")).code == (
        aiocoap.REQUEST_ENTITY_INCOMPLETE
    )


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_a_mitigation_uploaded_in_blocks_is_created_and_the_final_answer_echoes_block1(
    server, client, scheme: str
):
    uri = f"{base_uri(server, scheme)}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=123"
    payload = encode_signal(figure("figure07"))
    blocks = [payload[i : i + 32] for i in range(0, len(payload), 32)]
    assert len(blocks) > 2
    for number, block in enumerate(blocks[:-1]):
        assert (await send_block(client, uri, number, True, block, szx=1)).code == aiocoap.CONTINUE
    final = await send_block(client, uri, len(blocks) - 1, False, blocks[-1], szx=1)
    assert final.code == aiocoap.CREATED
    assert final.opt.block1 is not None and final.opt.block1.block_number == len(blocks) - 1
    assert decode_signal(final.payload) == figure("figure10")


async def test_aiocoap_uploads_a_large_mitigation_in_blocks(server, client):
    """aiocoap's own client splits a body larger than one message; the server assembles and answers it."""
    uri = f"{base_uri(server, 'coaps')}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=124"
    body = figure("figure07")
    body[SCOPE]["scope"][0]["target-prefix"] = [f"2001:db8:{i:x}::/48" for i in range(150)]
    message = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=encode_signal(body), content_format=271)
    assert len(message.payload) > 1024
    answer = await asyncio.wait_for(client.request(message).response, 10)
    assert answer.code == aiocoap.CREATED, answer.payload


async def test_a_get_answered_in_block2_blocks_carries_the_same_etag_in_every_block_rfc9132_4_4_2(server, client):
    mitigate = f"{base_uri(server, 'coaps')}/mitigate/cuid={cuid_of(server.config, 'client')}"
    body = figure("figure07")
    for mid in (1, 2, 3):
        body[SCOPE]["scope"][0]["target-prefix"] = [f"2001:db8:{mid}:{i:x}::/64" for i in range(40)]
        message = aiocoap.Message(code=aiocoap.PUT, uri=f"{mitigate}/mid={mid}", payload=encode_signal(body))
        message.opt.content_format = 271
        assert (await asyncio.wait_for(client.request(message).response, 10)).code == aiocoap.CREATED
    tags = []
    for number in range(3):
        get = aiocoap.Message(code=aiocoap.GET, uri=mitigate)  # c=a, the default: a resource that changes
        get.opt.block2 = BlockOption.BlockwiseTuple(number, False, 6)
        block = await asyncio.wait_for(client.request(get, handle_blockwise=False).response, 10)
        assert block.code == aiocoap.CONTENT and block.opt.block2.block_number == number
        tags.append(block.opt.etag)
    assert tags[0] is not None and len(set(tags)) == 1
    whole = await asyncio.wait_for(client.request(aiocoap.Message(code=aiocoap.GET, uri=mitigate)).response, 10)
    assert len(decode_signal(whole.payload)[SCOPE]["scope"]) == 3


def test_the_assembler_refuses_new_uploads_with_5_03_when_the_table_is_full_and_expires_stale_ones():
    from opendots.transport.block1 import Block1Assembler, Continue, Refuse

    uploads = Block1Assembler(1024, per_peer=2, total=4, idle_timeout=10)
    for peer in range(4):
        assert isinstance(
            uploads.feed(peer, (peer, 1), start=0, more=True, payload=b"x" * 16, size1=None, now=0), Continue
        )
    refused = uploads.feed(9, (9, 1), start=0, more=True, payload=b"x" * 16, size1=None, now=1)
    assert isinstance(refused, Refuse) and refused.code == "5.03" and len(uploads) == 4
    # the others' uploads went quiet: after the idle timeout they make room
    assert isinstance(uploads.feed(9, (9, 1), start=0, more=True, payload=b"x" * 16, size1=None, now=11), Continue)
    assert len(uploads) == 1
