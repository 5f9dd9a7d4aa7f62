"""Q-Block2 bodies answering a CON request (RFC 9177 §4.4, §7, Appendix A.2 Figure 18), and a NON body's sets to a
client that says nothing back (§7.2: PROBING_RATE, NON_MAX_RETRANSMIT), on the server's Q2Responses."""

from __future__ import annotations

import itertools
import random

from opendots.transport.qblock import BlockOption, Q2Responses, QBlockParameters, SendBlock

PARAMS = QBlockParameters()


def body_of(blocks: int, size: int = 1024) -> bytes:
    return bytes(n % 251 for n in range(blocks * size - size // 2))


def start(responses: Q2Responses, body: bytes, *, confirmable: bool, now: float = 0.0) -> list[SendBlock]:
    return responses.start(
        "peer",
        "key",
        body,
        etag=b"\x15",
        token=b"\xf0",
        now=now,
        asked=BlockOption(0, True, 6),
        confirmable=confirmable,
    )


def run(responses: Q2Responses, until: float, step: float = 0.25) -> list[tuple[float, SendBlock]]:
    sent: list[tuple[float, SendBlock]] = []
    now = 0.0
    while now <= until:
        sent += [(now, block) for block in responses.poll(now)]
        now += step
    return sent


def test_figure_18_a_con_get_gets_every_block_of_its_body_as_con_at_once_for_the_coap_layer_to_pace() -> None:
    responses = Q2Responses(PARAMS, rng=random.Random(1))
    first = start(responses, body_of(4), confirmable=True)
    assert [(b.option.num, b.option.more, b.confirmable) for b in first] == [
        (0, True, True),
        (1, True, True),
        (2, True, True),
        (3, False, True),
    ]
    assert all(b.token == b"\xf0" for b in first)  # Figure 18: T:0xf0 on every block
    assert run(responses, until=300.0) == []


def test_a_con_body_longer_than_max_payloads_is_not_held_to_non_sets_section_7_1() -> None:
    # §7.1: CON congestion control is RFC 7252 §4.7's (NSTART, ACKs), not NON_TIMEOUT_RANDOM between sets.
    responses = Q2Responses(PARAMS, rng=random.Random(1))
    first = start(responses, body_of(25), confirmable=True)
    assert [b.option.num for b in first] == list(range(25))
    assert all(b.confirmable for b in first)
    assert run(responses, until=300.0) == []


def test_figure_18_an_observe_notification_to_a_con_observer_goes_con_too() -> None:
    responses = Q2Responses(PARAMS, rng=random.Random(1))
    start(responses, body_of(4), confirmable=True)
    again = start(responses, body_of(4)[::-1], confirmable=True, now=5.0)  # [[Observe triggered]], ET=22
    assert [(b.option.num, b.confirmable) for b in again] == [(n, True) for n in range(4)]


def test_a_non_get_keeps_its_body_non_in_max_payloads_sets() -> None:
    responses = Q2Responses(PARAMS, rng=random.Random(1))
    first = start(responses, body_of(25), confirmable=False)
    assert [b.option.num for b in first] == list(range(10))
    assert not any(b.confirmable for b in first)


def test_a_silent_client_gets_two_sets_then_probing_rate_holds_the_rest_past_non_partial_timeout_section_7_2() -> None:
    responses = Q2Responses(PARAMS, rng=random.Random(1))
    first = start(responses, body_of(200), confirmable=False)
    later = run(responses, until=3000.0)
    # The second set goes NON_TIMEOUT_RANDOM after the first (no 'Continue' is not yet silence); the third would
    # wait 20 KiB / PROBING_RATE (1 byte/s), capped at NON_PROBING_WAIT, which is never shorter than
    # NON_PARTIAL_TIMEOUT: the body is forgotten first. Before this, all 200 blocks went out within a minute.
    assert len(first) == len(later) == PARAMS.max_payloads
    assert 2.0 <= later[0][0] <= 3.25
    assert len(responses) == 0  # forgotten NON_PARTIAL_TIMEOUT after the last set


QUICK = QBlockParameters(non_probing_wait=10.0)  # e.g. negotiated (RFC 9362): PROBING_RATE's wait capped at 10 s


def test_a_silent_client_gets_at_most_non_max_retransmit_sets_then_none_until_it_asks_section_7_2() -> None:
    responses = Q2Responses(QUICK, rng=random.Random(1))
    first = start(responses, body_of(200), confirmable=False)
    later = run(responses, until=200.0)
    assert len(first) + len(later) == QUICK.non_max_retransmit * QUICK.max_payloads
    times = sorted({at for at, _ in later})
    assert [round(b - a) for a, b in itertools.pairwise(times)] == [10, 10]  # NON_PROBING_WAIT apart
    assert len(responses) == 1  # still kept for a request for missing blocks


def test_a_client_that_asks_again_after_going_silent_gets_the_rest_of_the_body() -> None:
    responses = Q2Responses(QUICK, rng=random.Random(1))
    start(responses, body_of(200), confirmable=False)
    run(responses, until=200.0)
    missing = responses.on_request("peer", "key", [BlockOption(40, True, 6)], token=b"\xf1", now=201.0)
    assert missing is not None and [b.option.num for b in missing] == list(range(40, 50))
    resumed = [(at, block) for at, block in run(responses, until=400.0) if at > 201.0]
    assert resumed and resumed[0][1].option.num == 50  # 40/M was a 'Continue': the sets go on
