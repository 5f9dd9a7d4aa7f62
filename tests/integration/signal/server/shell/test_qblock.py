"""Q-Block1/Q-Block2 (RFC 9177) at the signal-channel server over a real DTLS session, with a hand-written client
that sends exact bytes and loses chosen datagrams (deterministic loss): a mitigation request of 21 blocks goes up
with a block missing and is completed after the server's 4.08 listing it, a GET comes back in Q-Block2 blocks and the
blocks the client lost are sent again on request; /.well-known/core answers libcoap's probe with Q-Block2."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest
from aiocoap.optiontypes import OpaqueOption

from opendots.model import decode_signal, encode_signal
from opendots.transport import create_client_context
from opendots.transport.qblock import BlockOption, decode_missing
from tests.helpers import tls_files as files
from tests.helpers.raw_coap import ACK, CON, NON, PUT, RawDtlsCoap, coap
from tests.helpers.signal_harness import SCOPE, figure

GET = 1
SIZE = 128
SZX = 3  # 128-byte blocks
TAG = b"\x51\x52\x53\x54"


def body_of_many_blocks() -> bytes:
    body = figure("figure07")
    body[SCOPE]["scope"][0]["target-prefix"] = [f"2001:db8:{i:x}::/48" for i in range(150)]
    encoded = encode_signal(body)
    assert 20 * SIZE < len(encoded) <= 21 * SIZE  # 21 blocks: two MAX_PAYLOADS sets of 10 and one block
    return encoded


def path(cuid: str, mid: int) -> list[tuple[int, bytes]]:
    return [
        (11, b".well-known"),
        (11, b"dots"),
        (11, b"mitigate"),
        (11, f"cuid={cuid}".encode()),
        (11, f"mid={mid}".encode()),
    ]


def q_block1(cuid: str, mid: int, body: bytes, num: int, tag: bytes = TAG, base: int = 0x1000) -> bytes:
    """Block NUM of BODY as a NON PUT with Q-Block1, Request-Tag and Size1 (RFC 9177 §4.3), on a fresh token (and
    Message ID BASE + NUM: another body in the same session needs another BASE, or it is taken for duplicates)."""
    more = (num + 1) * SIZE < len(body)
    options = [
        *path(cuid, mid),
        (12, (271).to_bytes(2, "big")),  # Content-Format application/dots+cbor
        (19, BlockOption(num, more, SZX).encode()),
        (60, len(body).to_bytes(2, "big")),  # Size1
        (292, tag),  # Request-Tag
    ]
    return coap(NON, PUT, base + num, b"q1" + bytes([num]), options, body[num * SIZE : (num + 1) * SIZE])


def q_block2_get(cuid: str, mid: int, token: bytes, mid_: int, *blocks: BlockOption) -> bytes:
    return coap(NON, GET, mid_, token, [*path(cuid, mid), *[(31, block.encode()) for block in blocks]])


def qb(message: aiocoap.Message, number: int) -> BlockOption | None:
    found = message.opt.get_option(number)
    return BlockOption.decode(found[0].encode()) if found else None


@pytest.fixture
async def client(pki_dir: Path, server):
    port = server.endpoint.dtls_addresses[0][1]
    loop = asyncio.get_running_loop()
    raw = await loop.run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), port)

    async def run(function, *args):
        return await loop.run_in_executor(None, function, *args)

    def send_all(messages: list[bytes], wait: float, until: int | None = None) -> list[aiocoap.Message]:
        for message in messages:
            raw.send(message)
        return [aiocoap.Message.decode(answer) for answer in raw.receive(wait, until)]

    yield lambda messages, wait=1.0, until=None: run(send_all, messages, wait, until)
    raw.close()


def cuid_of(server) -> str:
    return next(c.cuid for c in server.config.clients if c.name == "client")


async def upload(client, cuid: str, mid: int, body: bytes, lost: tuple[int, ...] = ()) -> list[aiocoap.Message]:
    """Send every block but LOST in order; then each lost block the server's 4.08s list; every answer received."""
    count = -(-len(body) // SIZE)
    answers = await client([q_block1(cuid, mid, body, n) for n in range(count) if n not in lost], 1.0)
    for answer in list(answers):
        if answer.code == aiocoap.REQUEST_ENTITY_INCOMPLETE:
            missing = decode_missing(answer.payload)
            answers += await client([q_block1(cuid, mid, body, n) for n in missing], 1.0)
    return answers


async def test_a_q_block1_upload_with_a_lost_block_is_completed_after_the_4_08_listing_it_rfc9177_4_3_and_5(
    server, client
):
    cuid, body = cuid_of(server), body_of_many_blocks()
    answers = await upload(client, cuid, 40, body, lost=(3,))
    codes = [answer.code.dotted for answer in answers]
    # Set 0 (0-9) misses block 3: no 2.31 for it; the first block of set 1 brings the 4.08 listing block 3 (§7.2);
    # set 1 complete: 2.31 echoing its last block; set 2 (block 20, no M bit) gets none (§4.3), but its block names
    # block 3 again (§7.2: any missing payloads from any previous set; this client sent everything before reading
    # the first 4.08); block 3 sent again completes the body: 2.01 on its token.
    assert codes == ["4.08", "2.31", "4.08", "2.01"], codes
    incomplete, carry_on, again, created = answers
    assert incomplete.opt.content_format == 272 and decode_missing(incomplete.payload) == [3]
    assert decode_missing(again.payload) == [3]
    assert qb(carry_on, 19) == BlockOption(19, True, SZX)
    assert created.token == b"q1\x03"  # the token of the last block received: block 3, sent again (§4.3)
    stored = server.service.core.render_mitigations("client", cuid, 40, (), 0.0)
    assert stored.body[SCOPE]["scope"][0]["target-prefix"][-1] == "2001:db8:95::/48"
    assert server.endpoint.qblock.counts["q1_bodies"] == 1 and len(server.endpoint.qblock.receiver) == 0


async def test_the_last_block_lost_is_asked_for_after_non_receive_timeout_rfc9177_7_2(server, client):
    cuid, body = cuid_of(server), body_of_many_blocks()
    answers = await client([q_block1(cuid, 41, body, n) for n in range(20)], 1.0)
    assert [answer.code.dotted for answer in answers] == ["2.31", "2.31"]  # sets 0 and 1 arrived whole
    # Nothing more arrives: the server knows from Size1 that block 20 is missing and asks for it on its own timer.
    (incomplete,) = await client([], 8.0, 1)
    assert incomplete.code.dotted == "4.08" and decode_missing(incomplete.payload) == [20]
    (created,) = await client([q_block1(cuid, 41, body, 20)], 2.0, 1)
    assert created.code.dotted == "2.01"


async def test_a_large_get_comes_back_in_q_block2_blocks_and_lost_ones_are_sent_again_on_request_rfc9177_4_4(
    server, client
):
    cuid, body = cuid_of(server), body_of_many_blocks()
    await upload(client, cuid, 42, body)
    first_set = await client([q_block2_get(cuid, 42, b"g0", 0x2000, BlockOption(0, True, SZX))], 2.0, 10)
    kept = {qb(m, 31).num: m for m in first_set if qb(m, 31).num not in (2, 7)}  # the client loses blocks 2 and 7
    assert sorted(kept) == [0, 1, 3, 4, 5, 6, 8, 9]  # one MAX_PAYLOADS set, on the request's token
    assert {m.token for m in first_set} == {b"g0"}
    etag, size2 = kept[0].opt.etag, kept[0].opt.size2
    assert etag and all(m.opt.etag == etag and m.opt.size2 == size2 for m in first_set)  # §4.4, §4.6
    again = await client(
        [q_block2_get(cuid, 42, b"g1", 0x2001, BlockOption(2, False, SZX), BlockOption(7, False, SZX))], 2.0, 2
    )
    assert sorted(qb(m, 31).num for m in again) == [2, 7] and {m.opt.etag for m in again} == {etag}
    kept.update({qb(m, 31).num: m for m in again})
    for continue_at, expected in ((10, 10), (20, 1)):  # 'Continue': the next set (§4.4)
        more = await client(
            [q_block2_get(cuid, 42, b"g2", 0x2002 + continue_at, BlockOption(continue_at, True, SZX))], 2.0, expected
        )
        kept.update({qb(m, 31).num: m for m in more})
    assert sorted(kept) == list(range(21)) and not qb(kept[20], 31).more
    whole = b"".join(kept[n].payload for n in range(21))
    assert len(whole) == size2
    assert len(decode_signal(whole)[SCOPE]["scope"][0]["target-prefix"]) == 150


async def test_well_known_core_answers_libcoaps_probe_with_q_block2_rfc9177_4_1(server, client):
    (answer,) = await client(
        [coap(NON, GET, 0x3000, b"wk", [(11, b".well-known"), (11, b"core"), (31, BlockOption(0, False, 0).encode())])],
        2.0,
        1,
    )
    assert answer.code == aiocoap.CONTENT and answer.opt.content_format == 40
    assert qb(answer, 31) == BlockOption(0, True, 0) and answer.payload == b"</.well-known/dots>;ct=271"[:16]
    assert answer.opt.size2 == len(b"</.well-known/dots>;ct=271")


async def test_q_block1_without_request_tag_gets_4_00_rfc9177_4_3(server, client):
    options = [*path(cuid_of(server), 43), (19, BlockOption(0, True, SZX).encode()), (60, b"\x09\x00")]
    (answer,) = await client([coap(NON, PUT, 0x4000, b"nt", options, b"x" * SIZE)], 2.0, 1)
    assert answer.code == aiocoap.BAD_REQUEST and b"Request-Tag" in answer.payload


async def test_over_tls_q_block_options_still_get_4_02_and_bodies_use_block1_block2_rfc9177_4_1(pki_dir: Path, server):
    """RFC 8323 has BERT; Q-Block is not wired there, so a Q-Block option is an unrecognised critical one (4.02), which
    tells a client to fall back to Block1/Block2 (§4.1); the same request over DTLS is taken by the Q-Block engine."""
    host, port = server.endpoint.tls_addresses[0][:2]
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        message = aiocoap.Message(code=aiocoap.GET, uri=f"coaps+tcp://{host}:{port}/.well-known/core")
        message.opt.add_option(OpaqueOption(31, BlockOption(0, False, 0).encode()))
        answer = await asyncio.wait_for(client.request(message).response, 10)
        assert answer.code == aiocoap.BAD_OPTION and b"Q_BLOCK2" in answer.payload
    finally:
        await client.shutdown()


async def test_a_half_received_body_goes_when_the_dtls_session_closes(pki_dir: Path, server):
    """A new session is a new peer (RFC 7252 §9.1.2): the blocks of the old one can never be completed."""
    port = server.endpoint.dtls_addresses[0][1]
    loop = asyncio.get_running_loop()
    raw = await loop.run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), port)
    cuid, body = cuid_of(server), body_of_many_blocks()
    for n in range(5):
        await loop.run_in_executor(None, raw.send, q_block1(cuid, 44, body, n))
    qblock = server.endpoint.qblock
    for _ in range(100):
        if len(qblock.receiver) == 1:
            break
        await asyncio.sleep(0.02)
    assert len(qblock.receiver) == 1 and qblock.receiver.next_deadline() is not None
    await loop.run_in_executor(None, raw.close)  # close_notify
    for _ in range(100):
        if len(qblock.receiver) == 0:
            break
        await asyncio.sleep(0.02)
    assert len(qblock.receiver) == 0


async def test_the_sessions_rfc9362_max_payloads_sets_the_burst_of_q_block2_blocks_rfc9362_3(server, client):
    """The robust-transmission values in force for the client's session drive its Q-Block engine: with max-payloads
    4 the first burst of a Q-Block2 answer is 4 blocks (RFC 9177's default would send 10)."""
    config = "ietf-dots-signal-channel:signal-config"
    four = {"ietf-dots-robust-trans:max-payloads": {"current-value": 4}}
    body = {config: {"mitigating-config": dict(four), "idle-config": dict(four)}}
    options = [*path(cuid_of(server), 0)[:2], (11, b"config"), (11, b"sid=5"), (12, (271).to_bytes(2, "big"))]
    (answer,) = await client([coap(NON, PUT, 0x5000, b"cf", options, encode_signal(body))], 2.0, 1)
    assert answer.code == aiocoap.CREATED, answer.payload
    cuid, large = cuid_of(server), body_of_many_blocks()
    await upload(client, cuid, 45, large)
    burst = await client([q_block2_get(cuid, 45, b"g4", 0x5001, BlockOption(0, True, SZX))], 1.5)
    assert sorted(qb(m, 31).num for m in burst) == [0, 1, 2, 3]


async def test_the_last_block_sent_again_gets_the_final_answer_again_when_it_was_lost_rfc9177_4_3(server, client):
    """The client sends its last block again when the final response is lost; the server answers it as the first
    time (§4.3), on the new token, without carrying out the request a second time."""
    cuid, body = cuid_of(server), body_of_many_blocks()
    answers = await upload(client, cuid, 46, body)
    assert answers[-1].code == aiocoap.CREATED
    handled = dict(server.resource.requests)
    last = q_block1(cuid, 46, body, 20)
    again = bytearray(last)
    again[2:4] = (0x1999).to_bytes(2, "big")  # a new Message ID: not a CoAP duplicate, a block sent again
    again[5:7] = b"zz"  # and a new token of the same length: q1\x14 becomes qzz
    (repeated,) = await client([bytes(again)], 2.0, 1)
    assert repeated.code == aiocoap.CREATED and repeated.token == bytes(again[4:7])
    assert dict(server.resource.requests) == handled  # answered from the kept response, not handled again


async def test_notifications_of_an_observation_made_with_q_block2_come_as_q_block2_bodies_rfc9177_4_5(server, client):
    """An observer of all its mitigations that registered with Q-Block2 gets each large notification as a Q-Block2
    body on its token, with Observe and a new ETag per representation (RFC 9177 §4.5, RFC 9132 §4.4.2.1)."""
    cuid, body = cuid_of(server), body_of_many_blocks()
    await upload(client, cuid, 47, body)
    all_of_them = path(cuid, 47)[:4]  # .well-known/dots/mitigate/cuid=...
    register = coap(NON, GET, 0x6000, b"ob", [(6, b""), *all_of_them, (31, BlockOption(0, True, SZX).encode())])
    first = await client([register], 2.0, 10)  # Observe 0 (register)
    assert len(first) == 10 and all(m.opt.observe is not None and m.token == b"ob" for m in first)
    etag = first[0].opt.etag
    answers = await client([q_block1(cuid, 48, body, n, tag=b"next", base=0x7000) for n in range(21)], 2.0)
    notifications = [m for m in answers if m.token == b"ob"]
    assert len(notifications) == 10, [(m.code.dotted, m.token) for m in answers]  # the first MAX_PAYLOADS set
    assert all(qb(m, 31) is not None and m.opt.observe is not None for m in notifications)
    assert len({m.opt.etag for m in notifications}) == 1 and notifications[0].opt.etag != etag
    assert sorted(qb(m, 31).num for m in notifications) == list(range(10))
    assert notifications[0].opt.size2 > 20 * SIZE


async def test_bad_q_block_requests_get_4_00_or_4_02_and_nothing_is_sent_rfc9177_4_1_and_4_4(server, client):
    cuid, body = cuid_of(server), body_of_many_blocks()
    await upload(client, cuid, 49, body)
    await client([q_block2_get(cuid, 49, b"b0", 0x8000, BlockOption(0, True, SZX))], 2.0, 10)
    descending = q_block2_get(cuid, 49, b"b1", 0x8001, BlockOption(7, False, SZX), BlockOption(2, False, SZX))
    mixed = coap(NON, GET, 0x8002, b"b2", [*path(cuid, 49), (23, b"\x03"), (31, BlockOption(0, True, SZX).encode())])
    past_the_end = q_block2_get(cuid, 49, b"b3", 0x8003, BlockOption(40, False, SZX))
    cases = (
        (descending, b"b1", aiocoap.BAD_REQUEST),
        (mixed, b"b2", aiocoap.BAD_OPTION),
        (past_the_end, b"b3", aiocoap.BAD_REQUEST),
    )
    for request, token, code in cases:
        # (the body's next sets may arrive meanwhile on b0's token: the server goes on without a Continue, §7.2)
        answers = [m for m in await client([request], 1.5) if m.token == token]
        assert [m.code for m in answers] == [code] and answers[0].payload, answers  # with a diagnostic


async def test_a_con_get_gets_block_0_on_the_ack_and_every_other_block_con_one_at_a_time_rfc9177_4_4(server, client):
    """§4.4: "For Confirmable traffic, the server typically acknowledges the initial request using an ACK with a
    piggybacked payload and then sends the subsequent payloads ... as CON responses", which the client ACKs; the
    CoAP layer holds each back until the one before is ACKed (RFC 7252 §4.7, NSTART 1)."""
    cuid, body = cuid_of(server), body_of_many_blocks()
    await upload(client, cuid, 42, body)
    request = coap(CON, GET, 0x4000, b"c0", [*path(cuid, 42), (31, BlockOption(0, True, SZX).encode())])
    got: list[aiocoap.Message] = []
    answers = await client([request], 2.0, 2)
    while answers and len(got) < 21:
        got += answers
        last = answers[-1]
        if last.mtype != aiocoap.CON:
            answers = await client([], 2.0, 1)
            continue
        assert [m.mtype for m in answers].count(aiocoap.CON) == 1  # nothing more before this one is ACKed
        answers = await client([coap(ACK, 0, last.mid, b"", [])], 2.0, 1)
    assert got[0].mtype == aiocoap.ACK and got[0].mid == 0x4000 and qb(got[0], 31).num == 0
    assert [m.mtype for m in got[1:]] == [aiocoap.CON] * 20 and {m.token for m in got} == {b"c0"}
    assert [qb(m, 31).num for m in got] == list(range(21))
    assert len(decode_signal(b"".join(m.payload for m in got))[SCOPE]["scope"][0]["target-prefix"]) == 150
