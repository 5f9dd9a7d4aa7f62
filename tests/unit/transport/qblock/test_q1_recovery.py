"""How fast a Q-Block1 receiver asks again for blocks lost more than once (RFC 9177 §7.2): on a payload from a later
MAX_PAYLOADS_SET it names "any missing payloads from any previous MAX_PAYLOADS_SET", those an earlier 4.08 named
and their resend did not bring included; its NON_RECEIVE_TIMEOUT 4.08 names everything still missing that fits one
packet. Driven by `now`, no clock; what bench/blocks.py measured at 30 % loss before: re-lost blocks waited for the
end of the body and came back a MAX_PAYLOADS' worth per doubling timeout."""

from __future__ import annotations

from opendots.transport.qblock import BlockOption, Q1Receiver, QBlockParameters, Respond, decode_missing

PARAMS = QBlockParameters()  # MAX_PAYLOADS 10, NON_RECEIVE_TIMEOUT 4 s
PEER = "peer-a"
BLOCK = 16


def send(receiver: Q1Receiver, num: int, count: int, now: float) -> list[list[int]]:
    """Block NUM of a COUNT-block body arrives; the missing-block lists of the 4.08s it caused."""
    outputs = receiver.on_block(
        PEER,
        token=bytes([num]),
        request_tag=b"t",
        option=BlockOption(num, num < count - 1, 0),
        payload=bytes(BLOCK),
        size1=count * BLOCK,
        now=now,
    )
    return [decode_missing(out.payload) for out in outputs if isinstance(out, Respond) and out.code == "4.08"]


def test_a_block_lost_again_on_resend_is_named_again_when_the_next_set_begins_rfc9177_7_2() -> None:
    receiver = Q1Receiver(PARAMS)
    count = 40
    for num in range(10):
        if num != 3:
            send(receiver, num, count, 0.0)
    assert send(receiver, 10, count, 0.1) == [[3]]  # set 1 begins: block 3 of set 0 is missing
    # The client resends 3 before set 2 (§7.2); that resend is lost too. Set 1 arrives whole, then set 2 begins.
    for num in range(11, 20):
        send(receiver, num, count, 2.5)
    assert send(receiver, 20, count, 2.6) == [[3]]  # named again at once, not after the timer
    send(receiver, 3, count, 5.0)
    for num in range(21, 30):
        send(receiver, num, count, 5.0)
    assert send(receiver, 30, count, 5.1) == []  # it arrived: nothing to name


def test_blocks_named_before_that_arrived_meanwhile_are_not_named_again() -> None:
    receiver = Q1Receiver(PARAMS)
    count = 30
    for num in (0, 1, 4, 5, 6, 7, 8, 9):
        send(receiver, num, count, 0.0)
    assert send(receiver, 10, count, 0.1) == [[2, 3]]
    send(receiver, 2, count, 2.5)  # one resend arrives, the other is lost again
    for num in range(11, 20):
        send(receiver, num, count, 2.5)
    assert send(receiver, 20, count, 2.6) == [[3]]


def test_the_timers_4_08_names_every_missing_block_that_fits_a_packet_not_one_max_payloads_worth() -> None:
    receiver = Q1Receiver(PARAMS)
    count = 30
    send(receiver, 0, count, 0.0)
    assert send(receiver, 29, count, 0.0) == [list(range(1, 20))]  # set 2 begins: all of sets 0 and 1
    deadline = receiver.next_deadline()
    assert deadline == PARAMS.receive_timeout
    lists = [decode_missing(out.payload) for out in receiver.poll(deadline) if isinstance(out, Respond)]
    assert lists == [list(range(1, 29))]  # everything still missing, the last set's too
