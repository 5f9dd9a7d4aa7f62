"""The Q-Block metrics follow what a real QBlockServer did with real aiocoap messages, its timers driven by `now`
(a clock object in place of the event loop: no socket, no sleeping): bodies received and sent, blocks resent on
request, the 4.08s it sent, bodies given up (RFC 9177 §4.3, §4.4, §7.2)."""

from __future__ import annotations

import aiocoap
from aiocoap.numbers.types import NON

from opendots.metrics.qblock import qblock_metrics
from opendots.transport.qblock import BlockOption
from opendots.transport.qblock_server import QBlockServer, abandon_reason
from tests.helpers.qblock_server import PEER, SZX, block1, get, served


def samples(server: QBlockServer) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in qblock_metrics(server)
        for sample in family.samples
    }


def test_a_body_completed_after_a_4_08_counts_one_body_received_and_one_4_08() -> None:
    server, clock, sent = served()
    body = bytes(range(40))  # three blocks
    server.on_request(block1(0, body, b"t"))
    server.on_request(block1(2, body, b"t"))
    clock.fire()  # NON_RECEIVE_TIMEOUT: the server lists block 1 (§7.2)
    assert [message.code for message in sent] == [aiocoap.REQUEST_ENTITY_INCOMPLETE]
    goes_up, _ = server.on_request(block1(1, body, b"t"))
    assert goes_up
    figures = samples(server)
    assert figures[("opendots_qblock_bodies_total", ("received",))] == 1
    assert figures[("opendots_qblock_blocks_total", ("received",))] == 3
    assert figures[("opendots_qblock_responses_total", ("4.08",))] == 1
    assert figures[("opendots_qblock_bodies_in_progress", ("receiving",))] == 0


def test_a_q_block2_body_and_the_blocks_sent_again_on_request_are_counted() -> None:
    server, _, _ = served()
    request = get(b"g1", BlockOption(0, True, SZX))
    goes_up, _ = server.on_request(request)
    assert goes_up
    response = aiocoap.Message(code=aiocoap.CONTENT, payload=bytes(100))  # 7 blocks
    response.mtype, response.token, response.remote = NON, b"g1", PEER
    first = server.on_response(response)
    assert first is not None and len(first) == 7
    goes_up, again = server.on_request(get(b"g2", BlockOption(2, False, SZX), BlockOption(5, False, SZX)))
    assert not goes_up and len(again) == 2
    figures = samples(server)
    assert figures[("opendots_qblock_bodies_total", ("sent",))] == 1
    assert figures[("opendots_qblock_blocks_total", ("sent",))] == 9
    assert figures[("opendots_qblock_blocks_total", ("resent",))] == 2
    assert figures[("opendots_qblock_bodies_in_progress", ("kept",))] == 1


def test_bodies_never_finished_are_counted_as_given_up_by_why_and_leave_nothing_behind() -> None:
    server, clock, sent = served(per_peer=1)
    body = bytes(40)
    server.on_request(block1(0, body, b"a"))
    server.on_request(block1(0, body, b"b"))  # a second body of the same peer evicts the first
    for _ in range(5):  # four 4.08s in vain (NON_MAX_RETRANSMIT), then the body goes
        clock.fire()
    assert clock.timer is None
    assert len(server.receiver) == 0
    figures = samples(server)
    assert figures[("opendots_qblock_bodies_abandoned_total", ("evicted",))] == 1
    assert figures[("opendots_qblock_bodies_abandoned_total", ("unanswered",))] == 1
    assert figures[("opendots_qblock_responses_total", ("4.08",))] == len(sent) == 4
    assert figures[("opendots_qblock_bodies_in_progress", ("receiving",))] == 0


def test_refusals_of_the_q_block_layer_are_counted_by_code() -> None:
    server, _, _ = served(max_body=32)
    _, answers = server.on_request(block1(0, bytes(40), b"t"))  # 40 bytes announced, 32 allowed
    assert [answer.code for answer in answers] == [aiocoap.REQUEST_ENTITY_TOO_LARGE]
    request = get(b"g", BlockOption(0, True, SZX))
    request.opt.block2 = (0, False, 0)  # Q-Block and Block options in one request (§4.1)
    _, answers = server.on_request(request)
    assert [answer.code for answer in answers] == [aiocoap.BAD_OPTION]
    figures = samples(server)
    assert figures[("opendots_qblock_responses_total", ("4.13",))] == 1
    assert figures[("opendots_qblock_responses_total", ("4.02",))] == 1


def test_every_reason_the_engine_gives_for_giving_up_a_body_has_its_label() -> None:
    assert abandon_reason("no progress for NON_PARTIAL_TIMEOUT") == "expired"
    assert abandon_reason("4 requests for missing blocks unanswered (NON_MAX_RETRANSMIT)") == "unanswered"
    assert abandon_reason("evicted: the peer started more than 4 bodies") == "evicted"
