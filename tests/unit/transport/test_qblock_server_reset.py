"""The server side of RFC 9177 §4.3's RST: a client that forgot a body answers the server's 4.08 about it with RST,
and the server then deletes the partial body. Real aiocoap messages, the timer fired through `now`; the Message ID
is the one the message layer gives the 4.08 when it sends it."""

from __future__ import annotations

import aiocoap

from tests.helpers.qblock_server import PEER, block1, served


def test_an_rst_to_a_4_08_deletes_the_partial_body_and_late_blocks_of_it_get_a_final_4_08_rfc9177_4_3() -> None:
    server, clock, sent = served()
    body = bytes(40)  # three blocks of 16
    server.on_request(block1(0, body, b"t"))
    server.on_request(block1(2, body, b"t"))
    clock.fire()  # NON_RECEIVE_TIMEOUT: the 4.08 listing block 1
    [incomplete] = sent
    assert incomplete.code == aiocoap.REQUEST_ENTITY_INCOMPLETE
    incomplete.mid = 0x4242  # numbered as it leaves
    assert not server.on_reset(PEER, 0x4243)  # an RST for something else changes nothing
    assert not server.on_reset("peer-b", 0x4242)
    assert len(server.receiver) == 1
    assert server.on_reset(PEER, 0x4242)
    assert len(server.receiver) == 0 and server.abandoned == {"reset": 1}
    if clock.timer is not None:
        clock.fire()
    assert sent == [incomplete]  # nothing more is asked for
    goes_up, answers = server.on_request(block1(1, body, b"t"))  # a late block does not start the body over
    assert not goes_up and [answer.code for answer in answers] == [aiocoap.REQUEST_ENTITY_INCOMPLETE]
    assert server.resets_unmatched == 2
