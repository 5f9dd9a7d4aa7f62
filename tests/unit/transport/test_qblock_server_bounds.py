"""Floods at the Q-Block layer of a server (opendots.transport.qblock_server) keep its tables at their bounds:
Request-Tags from one peer, Q-Block2 requests never answered, bodies of many peers, lying numbers mid-body (RFC 9177
§4.3, §4.4, §11). Counts and sizes are asserted, not timing; timers are fired through `now`."""

from __future__ import annotations

import aiocoap

from opendots.transport.qblock import BlockOption
from tests.helpers.qblock_server import SZX, block1, get, served


def test_a_request_tag_flood_from_one_peer_keeps_per_peer_bodies_and_gets_no_answer_but_evictions() -> None:
    server, _, _ = served(per_peer=4, total=16)
    body = bytes(64)
    for n in range(2000):
        goes_up, answers = server.on_request(block1(0, body, n.to_bytes(2, "big")))
        assert not goes_up and answers == []
    assert len(server.receiver) == 4
    assert server.abandoned == {"evicted": 2000 - 4}


def test_q_block2_requests_never_answered_are_remembered_up_to_a_bound() -> None:
    server, _, _ = served(total=8)
    for n in range(5000):
        goes_up, _ = server.on_request(get(n.to_bytes(2, "big"), BlockOption(0, True, SZX)))
        assert goes_up
    assert len(server._asked) <= 4 * 8  # the exchanges whose responses would go out in Q-Block2 blocks


def test_bodies_of_many_peers_past_the_total_are_refused_with_5_03_and_nothing_more_is_kept() -> None:
    server, _, _ = served(per_peer=1, total=8)
    codes = []
    for n in range(100):
        message = block1(0, bytes(64), b"t")
        message.remote = f"peer-{n}"
        codes += [answer.code for answer in server.on_request(message)[1]]
    assert codes == [aiocoap.SERVICE_UNAVAILABLE] * 92
    assert len(server.receiver) == 8 and server.responses_sent == {"5.03": 92}


def test_a_block_lying_about_its_body_mid_transfer_gets_4_00_and_the_body_is_dropped() -> None:
    server, _, _ = served()
    body = bytes(64)
    server.on_request(block1(0, body, b"t"))
    liar = block1(1, body, b"t")
    liar.opt.size1 = 6400  # Size1 changes mid-body (§4.6)
    _, answers = server.on_request(liar)
    assert [answer.code for answer in answers] == [aiocoap.BAD_REQUEST]
    assert b"differs" in answers[0].payload
    assert len(server.receiver) == 0
