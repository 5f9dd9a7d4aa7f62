"""Q-Block1/Q-Block2 (RFC 9177) at our client against our server over real DTLS sessions: a large PUT goes up in
Q-Block1 payloads, a large GET and an Observe notification come back as Q-Block2 bodies, blocks lost in either
direction (chosen ones, deterministically) are recovered by sending or asking for those blocks only; a server
without Q-Block answers the probe with 4.02 and gets Block1/Block2 as before; over TLS no Q-Block option is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiocoap
import aiocoap.resource as resource
import pytest

from opendots.transport import client_request, create_client_context, start_server
from opendots.transport.aiocoap_hooks import find_message_manager, find_request_interface
from opendots.transport.qblock import QBLOCK1, QBLOCK2, BlockOption, QBlockLimits, QBlockParameters
from opendots.transport.qblock_client import QBlockClient
from opendots.transport.qblock_server import uses_qblock
from tests.conftest import free_port
from tests.helpers import tls_files as files

BODY = bytes(range(251)) * 120  # 30,120 bytes: 30 blocks of 1024 (three MAX_PAYLOADS sets) and one of 424
BLOCKS = -(-len(BODY) // 1024)


class Store(resource.ObservableResource):
    """PUT stores a body, GET returns it; observers are told of every PUT. Q-Block bodies arrive whole and leave
    whole (the server's transport cuts them), as the DOTS resources do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = b""
        self.puts = 0

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return not qblock_request(request)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.body = request.payload
        self.puts += 1
        self.updated_state()
        return aiocoap.Message(code=aiocoap.CHANGED)

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=self.body)


def qblock_request(request: aiocoap.Message) -> bool:
    # aiocoap's Site asks a copy of the request (which loses uses_qblock's mark): the options tell the same.
    return uses_qblock(request) or bool(request.opt.get_option(QBLOCK1) or request.opt.get_option(QBLOCK2))


class WellKnownCore(resource.WKCResource):
    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return not qblock_request(request)


async def serve(pki_dir, qblock: bool, tls: bool = False):
    site = resource.Site()
    store = Store()
    site.add_resource(["store"], store)
    site.add_resource([".well-known", "core"], WellKnownCore(site.get_resources_as_linkheader))
    port = free_port()
    endpoint = await start_server(
        site,
        credentials=files(pki_dir, "server"),
        bind=[("127.0.0.1", port)],
        tls=tls,
        qblock=QBlockLimits() if qblock else None,
    )
    endpoint.port, endpoint.store = port, store
    return endpoint


@pytest.fixture
async def server(pki_dir):
    endpoint = await serve(pki_dir, qblock=True)
    yield endpoint
    await endpoint.shutdown()


@pytest.fixture
async def client(pki_dir):
    context = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    yield context
    await context.shutdown()


def message(method: aiocoap.Code, uri: str, payload: bytes = b"", observe: bool = False) -> aiocoap.Message:
    request = aiocoap.Message(code=method, uri=uri, payload=payload, transport_tuning=aiocoap.Unreliable)
    if observe:
        request.opt.observe = 0
    return request


async def remote_of(context: aiocoap.Context, uri: str):
    probe = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await find_request_interface(context, probe)
    return probe.remote


async def engine_of(context: aiocoap.Context, uri: str) -> QBlockClient:
    manager = await find_message_manager(context, await remote_of(context, uri))
    assert manager is not None and manager.qblock_client is not None
    return manager.qblock_client


def lose_outgoing(engine: QBlockClient, lost: Callable[[aiocoap.Message], bool]) -> list[aiocoap.Message]:
    """Every message the engine puts on the wire is recorded; those LOST says are dropped (not sent)."""
    sent: list[aiocoap.Message] = []
    original = engine._send

    def send(out: aiocoap.Message) -> None:
        sent.append(out)
        if not lost(out):
            original(out)

    engine._send = send
    return sent


def lose_incoming(engine: QBlockClient, lost: Callable[[aiocoap.Message], bool]) -> list[aiocoap.Message]:
    """Responses reaching the engine are recorded; those LOST says vanish before the engine sees them."""
    received: list[aiocoap.Message] = []
    original = engine.on_response

    def on_response(response: aiocoap.Message) -> bool | None:
        received.append(response)
        return True if lost(response) else original(response)

    engine.on_response = on_response
    return received


def q_option(message: aiocoap.Message, number: int) -> BlockOption | None:
    found = message.opt.get_option(number)
    return BlockOption.decode(found[0].encode()) if found else None


async def test_a_large_put_goes_up_in_q_block1_payloads_and_a_large_get_comes_back_in_q_block2_rfc9177_4_3_4_4(
    server, client
):
    uri = f"coaps://127.0.0.1:{server.port}/store"
    sent = await client_request(client, message(aiocoap.PUT, uri, BODY))
    assert sent.qblock  # the probe found Q-Block (§4.1): the transport retransmits, the caller sends once
    answer = await asyncio.wait_for(sent.pending.response, 20)
    assert answer.code == aiocoap.CHANGED and answer.opt.get_option(QBLOCK1) == ()
    assert server.store.body == BODY and server.store.puts == 1
    assert server.qblock.counts["q1_bodies"] == 1 and server.qblock.counts["q1_blocks"] == BLOCKS  # no Block1
    fetched = await client_request(client, message(aiocoap.GET, uri))
    got = await asyncio.wait_for(fetched.pending.response, 20)
    assert got.code == aiocoap.CONTENT and got.payload == BODY and got.opt.get_option(QBLOCK2) == ()
    engine = await engine_of(client, uri)
    assert engine.counts["q1_bodies"] == 1 and engine.counts["q2_bodies"] == 1
    assert engine.counts["q2_blocks"] == BLOCKS  # nothing lost, nothing asked for again
    assert server.qblock.counts["q2_blocks"] == BLOCKS + 1  # and the probe's one block


async def test_q_block1_payloads_lost_are_sent_again_after_the_servers_4_08_lists_them_rfc9177_5(server, client):
    uri = f"coaps://127.0.0.1:{server.port}/store"
    engine = await engine_of(client, uri)
    dropped: set[int] = set()

    def first_copy_of_blocks_0_12_and_the_last(out: aiocoap.Message) -> bool:
        option = q_option(out, QBLOCK1)
        if option is None or option.num not in (0, 12, BLOCKS - 1) or option.num in dropped:
            return False
        dropped.add(option.num)
        return True

    sent = lose_outgoing(engine, first_copy_of_blocks_0_12_and_the_last)
    request = await client_request(
        client, message(aiocoap.PUT, uri, BODY), qblock_parameters=QBlockParameters(non_timeout=0.5)
    )
    answer = await asyncio.wait_for(request.pending.response, 30)
    assert answer.code == aiocoap.CHANGED and server.store.body == BODY
    numbers = [q_option(out, QBLOCK1).num for out in sent if q_option(out, QBLOCK1) is not None]
    assert dropped == {0, 12, BLOCKS - 1}
    assert sorted(numbers) == sorted([*range(BLOCKS), 0, 12, BLOCKS - 1])  # exactly the lost ones again
    assert len({out.token for out in sent if q_option(out, QBLOCK1)}) == len(numbers)  # a new token each (§6)
    assert len({out.opt.get_option(292)[0].encode() for out in sent if q_option(out, QBLOCK1)}) == 1  # Request-Tag


async def test_q_block2_payloads_lost_are_asked_for_again_and_the_body_goes_up_whole_rfc9177_4_4(server, client):
    uri = f"coaps://127.0.0.1:{server.port}/store"
    server.store.body = BODY
    engine = await engine_of(client, uri)
    seen: set[int] = set()

    def first_copy_of_blocks_1_10_11_and_29(response: aiocoap.Message) -> bool:
        option = q_option(response, QBLOCK2)
        if option is None or option.num not in (1, 10, 11, 29) or option.num in seen:
            return False
        seen.add(option.num)
        return True

    received = lose_incoming(engine, first_copy_of_blocks_1_10_11_and_29)
    sent = lose_outgoing(engine, lambda out: False)
    fetched = await client_request(
        client, message(aiocoap.GET, uri), qblock_parameters=QBlockParameters(non_timeout=0.5)
    )
    got = await asyncio.wait_for(fetched.pending.response, 30)
    assert got.payload == BODY
    body_blocks = [r for r in received if q_option(r, QBLOCK2) is not None and q_option(r, QBLOCK2).size == 1024]
    blocks = sorted(q_option(r, QBLOCK2).num for r in body_blocks)  # (the probe's 16-byte block left out)
    assert seen == {1, 10, 11, 29}
    assert blocks == sorted([*range(BLOCKS), 1, 10, 11, 29])  # every block once, the lost ones twice
    etags = {r.opt.etag for r in body_blocks}
    assert len(etags) == 1  # one body, one ETag (§4.4)
    asked = [[BlockOption.decode(o.encode()) for o in out.opt.get_option(QBLOCK2)] for out in sent]
    assert all(out.opt.observe is None and out.opt.etag is None for out in sent)  # §4.4, §4.5
    assert asked[0] == [BlockOption(0, True, 6)]  # the GET: the whole body, please (§4.1, §4.4)
    assert all(o != BlockOption(0, True, 6) for each in asked[1:] for o in each)  # never the whole body again
    missing = sorted({o.num for each in asked[1:] for o in each if not (o.more and o.num % 10 == 0)})
    assert missing == [1, 10, 11, 29]  # only the lost blocks (n/M with n a multiple of 10: 'Continue')


async def test_an_observe_notification_larger_than_one_block_arrives_whole_as_a_q_block2_body_rfc9177_4_5(
    server, client
):
    uri = f"coaps://127.0.0.1:{server.port}/store"
    server.store.body = b"small"
    observing = await client_request(client, message(aiocoap.GET, uri, observe=True))
    first = await asyncio.wait_for(observing.pending.response, 20)
    assert observing.qblock and first.payload == b"small" and first.opt.observe is not None
    notifications = aiter(observing.pending.observation)
    for round_ in range(2):
        body = bytes([round_]) * 5000 + BODY[:1000]
        await asyncio.wait_for(put(client, uri, body), 20)
        notification = await asyncio.wait_for(anext(notifications), 20)
        assert notification.payload == body and notification.opt.observe is not None
    observing.pending.observation.cancel()


async def put(client: aiocoap.Context, uri: str, body: bytes) -> None:
    sent = await client_request(client, message(aiocoap.PUT, uri, body))
    assert (await sent.pending.response).code == aiocoap.CHANGED


async def test_a_server_without_q_block_answers_the_probe_with_4_02_and_gets_block1_and_block2_rfc9177_4_1(
    pki_dir, client
):
    endpoint = await serve(pki_dir, qblock=False)
    try:
        uri = f"coaps://127.0.0.1:{endpoint.port}/store"
        sent = await client_request(client, message(aiocoap.PUT, uri, BODY))
        assert not sent.qblock
        assert (await asyncio.wait_for(sent.pending.response, 20)).code == aiocoap.CHANGED
        fetched = await client_request(client, message(aiocoap.GET, uri))
        assert not fetched.qblock and (await asyncio.wait_for(fetched.pending.response, 20)).payload == BODY
        engine = await engine_of(client, uri)
        assert engine.supports(await remote_of(client, uri)) is False  # learnt once, for the session
        assert engine.counts["q1_bodies"] == 0 and engine.counts["q2_bodies"] == 0
    finally:
        await endpoint.shutdown()


async def test_over_tls_the_client_sends_no_q_block_option_and_bodies_use_block1_block2_rfc9177_3(pki_dir, client):
    endpoint = await serve(pki_dir, qblock=True, tls=True)
    try:
        host, port = endpoint.tls_addresses[0][:2]
        uri = f"coaps+tcp://{host}:{port}/store"
        sent = await client_request(client, message(aiocoap.PUT, uri, BODY))
        assert not sent.qblock and (await asyncio.wait_for(sent.pending.response, 20)).code == aiocoap.CHANGED
        fetched = await client_request(client, message(aiocoap.GET, uri))
        assert not fetched.qblock and (await asyncio.wait_for(fetched.pending.response, 20)).payload == BODY
        assert not any(endpoint.qblock.counts.values()), endpoint.qblock.counts  # nothing went through Q-Block
    finally:
        await endpoint.shutdown()
