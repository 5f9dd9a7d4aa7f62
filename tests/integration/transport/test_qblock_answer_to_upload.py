"""A Q-Block1 request whose answer is itself a Q-Block2 body (RFC 9177 §4.7, §10.3), over a real DTLS session
between our client and our server: the PUT goes up in Q-Block1 payloads, its 2.04 comes back in Q-Block2 payloads on
the last request's token, and the client puts that body together before it goes up as the one answer; 'Continue'
and requests for missing blocks are the request again with Q-Block2, the body's Request-Tag, and no payload (§4.4,
Figure 15), served from the body the server keeps (the resource sees the PUT once)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiocoap

from opendots.transport import client_request
from opendots.transport.qblock import QBLOCK1, QBLOCK2, BlockOption
from opendots.transport.qblock_client import QBlockClient
from opendots.transport.qblock_server import REQUEST_TAG
from tests.helpers.qblock_site import FAST, client_engine

BODY = bytes(range(200)) * 30  # 6,000 bytes: 6 Q-Block1 payloads; the answer (twice it) 12 Q-Block2 payloads


def q_options(message: aiocoap.Message, number: int) -> list[BlockOption]:
    return [BlockOption.decode(option.encode()) for option in message.opt.get_option(number)]


def watch(engine: QBlockClient, lost: Callable[[aiocoap.Message], bool]) -> tuple[list, list]:
    """What the engine sends, and the responses it is given (LOST ones vanish before it sees them)."""
    sent: list[aiocoap.Message] = []
    received: list[aiocoap.Message] = []
    send, on_response = engine._send, engine.on_response

    def recording_send(out: aiocoap.Message) -> None:
        sent.append(out)
        send(out)

    def lossy_on_response(response: aiocoap.Message) -> bool | None:
        received.append(response)
        return True if lost(response) else on_response(response)

    engine._send, engine.on_response = recording_send, lossy_on_response
    return sent, received


async def put(client: aiocoap.Context, uri: str, body: bytes = BODY) -> aiocoap.Message:
    request = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=body, transport_tuning=aiocoap.Unreliable)
    sent = await client_request(client, request, qblock_parameters=FAST)
    assert sent.qblock
    return await asyncio.wait_for(sent.pending.response, 30)


async def test_a_put_answered_with_a_q_block2_body_gets_the_whole_answer_after_a_continue_rfc9177_10_3_2(
    big_server, client_context
):
    uri = f"coaps://127.0.0.1:{big_server.port}/big"
    sent, received = watch(await client_engine(client_context, uri), lambda response: False)
    answer = await put(client_context, uri)
    assert answer.code == aiocoap.CHANGED and answer.payload == BODY * 2
    assert not answer.opt.get_option(QBLOCK2) and answer.opt.size2 is None
    assert big_server.big.bodies == [BODY]
    options = [q_options(r, QBLOCK2)[0] for r in received if q_options(r, QBLOCK2)]
    assert sorted(o.num for o in options if o.size == 1024) == list(range(12))  # every payload once (not the probe)
    continues = [out for out in sent if q_options(out, QBLOCK2)]
    assert [q_options(out, QBLOCK2) for out in continues] == [[BlockOption(10, True, 6)]]  # 'Continue' (§4.4)
    [again] = continues
    assert again.code == aiocoap.PUT and again.payload == b"" and not again.opt.get_option(QBLOCK1)
    tags = {out.opt.get_option(REQUEST_TAG)[0].encode() for out in sent}
    assert len(tags) == 1  # the body's Request-Tag, as in Figure 15


async def test_payloads_of_the_answer_lost_are_asked_for_without_the_body_and_the_put_is_done_once_rfc9177_10_3_3(
    big_server, client_context
):
    uri = f"coaps://127.0.0.1:{big_server.port}/big"
    seen: set[int] = set()

    def first_copy_of_answer_blocks_1_and_11(response: aiocoap.Message) -> bool:
        options = q_options(response, QBLOCK2)
        if not options or options[0].num not in (1, 11) or options[0].num in seen:
            return False
        seen.add(options[0].num)
        return True

    sent, _ = watch(await client_engine(client_context, uri), first_copy_of_answer_blocks_1_and_11)
    answer = await put(client_context, uri)
    assert answer.code == aiocoap.CHANGED and answer.payload == BODY * 2
    assert seen == {1, 11} and big_server.big.bodies == [BODY]  # recovered from the kept body, not a second PUT
    asked = sorted({o.num for out in sent for o in q_options(out, QBLOCK2) if not (o.more and o.num == 10)})
    assert asked == [1, 11]
    assert all(out.payload == b"" for out in sent if q_options(out, QBLOCK2))


async def test_an_answer_lost_whole_is_sent_again_in_q_block2_payloads_not_one_datagram_rfc9177_4_3(
    big_server, client_context
):
    uri = f"coaps://127.0.0.1:{big_server.port}/big"
    body = BODY[:3000]  # 3 payloads up, an answer of 6 (one MAX_PAYLOADS_SET) back
    seen: set[int] = set()

    def first_copy_of_every_answer_payload(response: aiocoap.Message) -> bool:
        options = q_options(response, QBLOCK2)
        if not options or options[0].size != 1024 or options[0].num in seen:
            return False
        seen.add(options[0].num)
        return True

    _, received = watch(await client_engine(client_context, uri), first_copy_of_every_answer_payload)
    answer = await put(
        client_context, uri, body
    )  # nothing of the answer arrives: the client sends its last block again
    assert answer.code == aiocoap.CHANGED and answer.payload == body * 2
    assert seen == set(range(6)) and big_server.big.bodies == [body]  # the answer is repeated, the PUT not done again
    assert max(len(r.payload) for r in received) <= 1024  # the repeated answer is cut in Q-Block2 payloads too
