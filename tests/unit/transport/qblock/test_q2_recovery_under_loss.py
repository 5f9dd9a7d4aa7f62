"""How a Q-Block2 body recovers under heavy loss (RFC 9177 §4.4, §7.2), what bench/blocks.py measured with our client
and server before (a 1 MiB GET at 30 % loss never finished within 60 s): the client named blocks lost again (their
answer lost too) only on its doubling timer, one set per request, and the server took two sets in a row without a
request for silence and held the rest to PROBING_RATE until the client's timer fired. Driven by `now`, no clock."""

from __future__ import annotations

import random

from opendots.transport.qblock import BlockOption, Q2Receiver, Q2Sender, QBlockParameters, RequestBlocks

PARAMS = QBlockParameters()  # MAX_PAYLOADS 10, NON_TIMEOUT 2 s, NON_RECEIVE_TIMEOUT 4 s
LOSSY = QBlockParameters(max_payloads=32, non_timeout=0.5, non_receive_timeout=1.55, ack_random_factor=1.1)


def receive(receiver: Q2Receiver, num: int, count: int, now: float) -> list[list[int]]:
    """Block NUM of a COUNT-block body arrives; the blocks each resulting request names (n/M: to its set's end)."""
    outputs = receiver.on_block(
        "key", etag=b"e", option=BlockOption(num, num < count - 1, 0), payload=bytes(16), size2=count * 16, now=now
    )
    named = []
    for out in outputs:
        if isinstance(out, RequestBlocks):
            nums: list[int] = []
            for option in out.options:
                end = (option.num // 10 + 1) * 10 if option.more else option.num + 1
                nums += range(option.num, min(end, count))
            named.append(nums)
    return named


def test_a_block_asked_for_and_lost_again_is_named_again_when_the_next_set_begins_rfc9177_7_2() -> None:
    receiver = Q2Receiver(PARAMS)
    count = 40
    for num in range(10):
        if num != 3:
            receive(receiver, num, count, 0.0)
    assert receive(receiver, 10, count, 2.5) == [[3]]
    for num in range(11, 20):  # block 3's answer is lost; set 1 arrives whole
        receive(receiver, num, count, 2.5)
    assert receive(receiver, 20, count, 5.0) == [[3]]  # was []: block 3 waited for the timer


def test_the_timers_request_names_what_is_missing_in_every_set_seen_not_only_the_earliest() -> None:
    receiver = Q2Receiver(PARAMS)
    count = 40
    for num in range(30):
        if num not in (3, 14, 25):
            receive(receiver, num, count, 0.0)
    [request] = receiver.poll(4.0)  # NON_RECEIVE_TIMEOUT after the last progress
    assert isinstance(request, RequestBlocks)
    assert [option.num for option in request.options] == [3, 14, 25]  # was [3]: one set per doubling timeout


def test_a_server_sending_sets_holds_them_only_after_nothing_is_heard_for_non_receive_timeout() -> None:
    # With NON_TIMEOUT_RANDOM about 0.5 s the sets at 0, 0.5, 1 and 1.5 s go before one would leave later than
    # NON_RECEIVE_TIMEOUT (1.55 s) after the last request heard: a live client's requests lost at 30 % still get
    # them. Two sets without a request used to hold the third to PROBING_RATE, capped at NON_PROBING_WAIT (247 s).
    sender = Q2Sender(bytes(16 * 200), LOSSY, token=b"t", now=0.0, szx=0, rng=random.Random(1))
    times = []
    now = 0.0
    while now < 5.0:
        if sender.poll(now):
            times.append(now)
        now = round(now + 0.01, 2)
    assert len(times) == 4 and times[0] == 0.0
    # A request heard lifts the hold: the sets go on NON_TIMEOUT_RANDOM apart again.
    sender.on_request([BlockOption(5, False, 0)], b"u", 5.0)
    assert sender.next_deadline() is not None and sender.next_deadline() <= 5.0 + 0.55


def test_with_rfc_9177s_defaults_a_silent_client_still_gets_two_sets_before_probing_rate_holds_the_rest() -> None:
    sender = Q2Sender(bytes(1024 * 200), PARAMS, token=b"t", now=0.0, rng=random.Random(1))
    sets = [step / 10 for step in range(4000) if sender.poll(step / 10)]
    assert len(sets) == 3 and sets[1] <= 3.0 and sets[2] - sets[1] > 200  # the third waits NON_PROBING_WAIT
