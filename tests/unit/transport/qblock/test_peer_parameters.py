"""Parameters per peer (RFC 9362 sets them per DOTS session): a body uses the parameters given with its first block
or its start, whatever the receiver's or the responses' own defaults are."""

from __future__ import annotations

from opendots.transport.qblock import BlockOption, Q1Receiver, Q2Responses, QBlockParameters, Respond

TWO = QBlockParameters(max_payloads=2)


def test_a_q_block1_body_gets_its_2_31_after_the_peers_max_payloads_not_the_default() -> None:
    receiver = Q1Receiver(QBlockParameters())
    body = bytes(64 * 5)
    answers = []
    for num in range(3):
        answers += receiver.on_block(
            "peer", token=bytes([num]), request_tag=b"t", option=BlockOption(num, True, 2),
            payload=body[num * 64 : (num + 1) * 64], size1=len(body), now=0.0, params=TWO,
        )  # fmt: skip
    assert [(a.code, a.option) for a in answers if isinstance(a, Respond)] == [("2.31", BlockOption(1, True, 2))]
    assert receiver.next_deadline() == TWO.time_to_wait(1)


def test_a_q_block2_body_goes_in_bursts_of_the_peers_max_payloads() -> None:
    responses = Q2Responses(QBlockParameters())
    sent = responses.start("peer", "key", bytes(64 * 7), etag=b"e", token=b"t", now=0.0, szx=2, params=TWO)
    assert [block.option.num for block in sent] == [0, 1]
    default = responses.start("other", "key", bytes(64 * 7), etag=b"f", token=b"u", now=0.0, szx=2)
    assert len(default) == 7
