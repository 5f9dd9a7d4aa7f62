"""Peers that lie in Q-Block numbers, announce bodies past the limit, never finish, or flood Request-Tags / ETags get
a clear error or are dropped, and the engine's memory stays bounded (RFC 9177 §4.3, §4.4, §4.6, §5, §7.2, §11)."""

from __future__ import annotations

import pytest

from opendots.transport.qblock import (
    BlockOption,
    BodyAbandoned,
    Q1Receiver,
    Q1Sender,
    Q2Receiver,
    Q2Responses,
    QBlockError,
    QBlockLimits,
    QBlockParameters,
    Rejected,
    Respond,
    encode_missing,
)

PARAMS = QBlockParameters()
PEER = "peer-a"


def block(num: int, more: bool, szx: int = 6) -> BlockOption:
    return BlockOption(num, more, szx)


def refusal(outputs: list) -> Respond:
    responses = [out for out in outputs if isinstance(out, Respond)]
    assert len(responses) == 1, outputs
    return responses[0]


def feed(receiver: Q1Receiver, option: BlockOption, payload: bytes, size1: int | None, *, tag=b"t", peer=PEER, now=0.0):
    return receiver.on_block(peer, token=b"\x01", request_tag=tag, option=option, payload=payload, size1=size1, now=now)


# --- Q-Block1: the server receiving a request body ----------------------------------------------------------------
def test_q_block1_without_request_tag_or_size1_is_refused_with_4_00() -> None:
    receiver = Q1Receiver(PARAMS)
    no_tag = receiver.on_block(
        PEER, token=b"", request_tag=None, option=block(0, True), payload=b"x" * 1024, size1=2048, now=0.0
    )
    assert refusal(no_tag).code == "4.00" and "Request-Tag" in refusal(no_tag).diagnostic
    assert refusal(feed(receiver, block(0, True), b"x" * 1024, None)).code == "4.00"
    assert len(receiver) == 0


def test_a_body_announced_past_the_maximum_is_refused_with_4_13_naming_the_limit_before_any_of_it_is_stored() -> None:
    receiver = Q1Receiver(PARAMS, QBlockLimits(max_body=4096))
    answer = refusal(feed(receiver, block(0, True), b"x" * 1024, 4097))
    assert (answer.code, answer.size1) == ("4.13", 4096)
    assert len(receiver) == 0 and receiver.refused == {"4.13": 1}


def test_a_body_in_more_blocks_than_the_limit_is_refused_with_4_13_naming_a_block_size_that_would_do() -> None:
    receiver = Q1Receiver(PARAMS, QBlockLimits(max_body=1 << 20, max_blocks=4096))
    answer = refusal(feed(receiver, block(0, True, szx=0), b"x" * 16, 1 << 20))
    assert answer.code == "4.13" and "more than 4096 blocks; use 256" in answer.diagnostic
    assert len(receiver) == 0
    assert feed(receiver, block(0, True, szx=4), b"x" * 256, 1 << 20, tag=b"u") == []  # 4096 blocks of 256: taken
    assert len(receiver) == 1


@pytest.mark.parametrize(
    ("option", "payload", "size1", "why"),
    [
        (block(5, True), b"x" * 1024, 2048, "past the end"),
        (block(2, True), b"x" * 100, 2148, "M=1"),  # the last block claims more follow
        (block(0, False), b"x" * 1024, 2048, "M=0"),  # the first block claims to be the last
        (block(0, True), b"x" * 1000, 2048, "carries 1000 bytes"),
        (block(1, False), b"x" * 1025, 2048, "carries 1025 bytes"),
        (block(2, False), b"x" * 5, 2049, "carries 5 bytes"),
    ],
)
def test_a_block_whose_numbers_contradict_its_size1_is_refused_with_4_00(option, payload, size1, why) -> None:
    receiver = Q1Receiver(PARAMS)
    answer = refusal(feed(receiver, option, payload, size1))
    assert answer.code == "4.00" and why in answer.diagnostic
    assert len(receiver) == 0


@pytest.mark.parametrize(
    ("second", "payload", "size1", "why"),
    [
        (block(1, True), b"x" * 1024, 4000, "differs from 3000"),  # Size1 changed mid-body
        (block(2, True, szx=5), b"x" * 512, 3000, "block size 512 differs"),
    ],
)
def test_a_body_that_changes_its_size_or_block_size_midway_is_dropped_and_its_tag_answered_4_08_after(
    second, payload, size1, why
) -> None:
    receiver = Q1Receiver(PARAMS)
    assert feed(receiver, block(0, True), b"x" * 1024, 3000) == []
    answer = refusal(feed(receiver, second, payload, size1))
    assert answer.code == "4.00" and why in answer.diagnostic
    assert len(receiver) == 0
    later = refusal(feed(receiver, block(1, True), b"x" * 1024, 3000))
    assert later.code == "4.08" and later.content_format is None and "abandoned" in later.diagnostic


def test_a_never_finished_body_is_released_after_non_max_retransmit_requests_and_its_memory_freed() -> None:
    receiver = Q1Receiver(PARAMS)
    feed(receiver, block(0, True), b"x" * 1024, 5000)
    asked = []
    now = 0.0
    while receiver.next_deadline() is not None:
        now = receiver.next_deadline()
        asked += receiver.poll(now)
    assert [type(out).__name__ for out in asked] == ["Respond"] * 4 + ["BodyAbandoned"]
    assert now == 4 + 8 + 16 + 32 + 64
    assert len(receiver) == 0


def test_a_half_received_body_expires_after_non_partial_timeout_even_if_retransmit_requests_remain() -> None:
    receiver = Q1Receiver(QBlockParameters(non_max_retransmit=10, non_partial_timeout=30.0))
    feed(receiver, block(0, True), b"x" * 1024, 5000)
    outputs = receiver.poll(29.9) + receiver.poll(30.0)
    abandoned = [out for out in outputs if isinstance(out, BodyAbandoned)]
    assert [out.reason for out in abandoned] == ["no progress for NON_PARTIAL_TIMEOUT"]
    assert len(receiver) == 0


def test_a_request_tag_flood_from_one_peer_evicts_only_its_own_oldest_bodies() -> None:
    receiver = Q1Receiver(PARAMS, QBlockLimits(per_peer=4, total=16))
    feed(receiver, block(0, True), b"y" * 1024, 2048, tag=b"good", peer="peer-b")
    evicted = 0
    for n in range(1000):
        outputs = feed(receiver, block(0, True), b"x" * 1024, 1 << 20, tag=n.to_bytes(2, "big"))
        evicted += sum(isinstance(out, BodyAbandoned) for out in outputs)
        assert len(receiver) <= 5
    assert evicted == 1000 - 4
    done = feed(receiver, block(1, False), b"y" * 1024, 2048, tag=b"good", peer="peer-b")
    assert [type(out).__name__ for out in done] == ["BodyComplete"]  # the other peer's body was never touched


def test_when_every_slot_is_taken_a_new_body_is_refused_with_5_03() -> None:
    receiver = Q1Receiver(PARAMS, QBlockLimits(per_peer=2, total=4))
    for peer in ("a", "b"):
        for tag in (b"1", b"2"):
            assert feed(receiver, block(0, True), b"x" * 1024, 2048, tag=tag, peer=peer) == []
    answer = refusal(feed(receiver, block(0, True), b"x" * 1024, 2048, peer="c"))
    assert answer.code == "5.03" and len(receiver) == 4


def test_the_server_remembers_a_bounded_number_of_finished_bodies() -> None:
    receiver = Q1Receiver(PARAMS, QBlockLimits(per_peer=1, total=3))
    for n in range(50):
        feed(receiver, block(0, False), b"z", 1, tag=bytes([n]))
    assert len(receiver._ended) == 3


# --- Q-Block1: the client reading the server's 4.08 ---------------------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [b"\x03\x01", b"\x01\x01", b"", b"\x61a", encode_missing([1, 40])],  # 40 is past a 3-block body
)
def test_a_malformed_or_lying_4_08_is_dropped_without_sending_anything(payload: bytes) -> None:
    sender = Q1Sender(b"q" * 3000, PARAMS, now=0.0)
    sender.poll(0.0)
    sent = sender.sent
    with pytest.raises(QBlockError):
        sender.on_missing(payload, 1.0)
    assert sender.sent == sent and not sender.failed


def test_a_server_asking_for_the_same_block_forever_ends_the_transfer() -> None:
    sender = Q1Sender(b"q" * 3000, PARAMS, now=0.0)
    sender.poll(0.0)
    for attempt in range(4):  # NON_TIMEOUT_RANDOM (at most 3 s) apart: each resend is a set of its own (§7.2)
        assert len(sender.on_missing(encode_missing([1]), 3.5 * attempt)) == 1
    assert sender.on_missing(encode_missing([1]), 20.0) == []
    assert sender.failed is not None and "NON_MAX_RETRANSMIT" in sender.failed


# --- Q-Block2: the server answering requests for blocks -----------------------------------------------------------
def started(responses: Q2Responses, blocks: int = 25) -> None:
    responses.start(PEER, "/r", b"r" * (1024 * blocks), etag=b"e", token=b"\x01", now=0.0)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ([block(3, False), block(1, False)], "increasing"),
        ([block(3, False), block(3, False)], "increasing"),
        ([block(40, False)], "block 40 of a 25-block body"),
        ([block(20, True)], "'Continue' at block 20 before block 10"),
        ([], "without a Q-Block2 option"),
    ],
)
def test_a_request_for_blocks_out_of_order_repeated_or_past_the_body_gets_4_00(options, why) -> None:
    responses = Q2Responses(PARAMS)
    started(responses)
    with pytest.raises(QBlockError) as error:
        responses.on_request(PEER, "/r", options, token=b"\x02", now=1.0)
    assert error.value.code == "4.00" and why in error.value.diagnostic


def test_overlapping_options_send_each_block_once_and_never_more_than_max_payloads() -> None:
    responses = Q2Responses(PARAMS)
    started(responses)
    sent = responses.on_request(
        PEER, "/r", [block(2, True), block(3, False), block(5, True), block(12, True)], token=b"\x02", now=1.0
    )
    assert sent is not None
    assert [b.option.num for b in sent] == [2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    assert all(b.recovery and b.token == b"\x02" for b in sent)


def test_a_request_for_a_body_not_kept_is_left_to_the_shell() -> None:
    assert Q2Responses(PARAMS).on_request(PEER, "/r", [block(1, False)], token=b"\x02", now=0.0) is None


def test_kept_response_bodies_are_bounded_per_peer_and_in_all_and_expire() -> None:
    responses = Q2Responses(PARAMS, QBlockLimits(per_peer=2, total=3))
    for n in range(10):
        responses.start("a", n, b"r" * 2048, etag=b"e", token=b"\x01", now=0.0)
    assert len(responses) == 2
    for peer in ("b", "c"):
        responses.start(peer, 0, b"r" * 2048, etag=b"e", token=b"\x01", now=0.0)
    assert len(responses) == 3
    responses.poll(PARAMS.partial_timeout)
    assert len(responses) == 0


# --- Q-Block2: the client receiving a response body ---------------------------------------------------------------
def receive(receiver: Q2Receiver, option, payload, size2, *, etag=b"e", key="k"):
    return receiver.on_block(key, etag=etag, option=option, payload=payload, size2=size2, now=0.0)


def test_a_response_announcing_a_body_past_the_maximum_is_rejected_before_any_of_it_is_stored() -> None:
    receiver = Q2Receiver(PARAMS, QBlockLimits(max_body=4096))
    [out] = receive(receiver, block(0, True), b"x" * 1024, 1 << 30)
    assert isinstance(out, Rejected) and "the limit is 4096" in out.reason
    assert len(receiver) == 0


@pytest.mark.parametrize(
    ("option", "payload", "size2", "etag", "why"),
    [
        (block(9, True), b"x" * 1024, 3000, b"e", "past the end"),
        (block(1, True), b"x" * 1024, 4000, b"e", "differs from 3000"),
        (block(1, True), b"x" * 1024, 3000, None, "without ETag"),
    ],
)
def test_a_lying_response_block_is_rejected_and_the_body_so_far_kept(option, payload, size2, etag, why) -> None:
    receiver = Q2Receiver(PARAMS)
    assert receive(receiver, block(0, True), b"x" * 1024, 3000) == []
    [out] = receive(receiver, option, payload, size2, etag=etag)
    assert isinstance(out, Rejected) and why in out.reason
    assert len(receiver) == 1


def test_a_flood_of_response_bodies_keeps_at_most_the_configured_number() -> None:
    receiver = Q2Receiver(PARAMS, QBlockLimits(per_peer=4, total=8))
    for n in range(100):
        receive(receiver, block(0, True), b"x" * 1024, 2048, key=n)
    assert len(receiver) == 8


def test_over_con_or_a_reliable_transport_the_server_sends_neither_2_31_nor_missing_block_lists() -> None:
    # RFC 9177 §4.3: 2.31 SHOULD NOT be generated for CON; §5: no missing-blocks 4.08 with CON or RFC 8323.
    receiver = Q1Receiver(PARAMS)
    size = 1024 * 12
    outputs = []
    for num in [*range(10), 11]:
        outputs += receiver.on_block(
            PEER,
            token=b"\x01",
            request_tag=b"c",
            option=block(num, num < 11),
            payload=b"c" * 1024,
            size1=size,
            now=0.0,
            reliable=True,
        )
    assert outputs == []
    assert receiver.next_deadline() == PARAMS.partial_timeout
    [abandoned] = receiver.poll(PARAMS.partial_timeout)
    assert isinstance(abandoned, BodyAbandoned) and len(receiver) == 0
