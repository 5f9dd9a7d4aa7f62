"""RFC 9177 §10.2: the Q-Block2 example flows (Figures 7-10), Observe notifications sent as Q-Block2 bodies, between
Q2Responses (server) and a Q2Receiver (client), and the loss patterns the figures do not draw."""

from __future__ import annotations

import pytest

from tests.unit.transport.qblock.link import Link, body_of


def lose_first(*labels: str):
    return lambda label, nth: label in labels and nth == 1


def test_figure_7_two_notifications_of_four_blocks_arrive_whole_each_with_its_own_etag() -> None:
    link = Link()
    token = link.token()  # the GET with Observe and QB2:0/M/1024 (the shell's request)
    first, second = body_of(4), body_of(4, last=3)
    link.notify(first, token)
    link.run()
    link.notify(second, token)  # Observe triggered
    link.run()
    blocks = ["← T:1 QB2:0/M/1024", "← T:1 QB2:1/M/1024", "← T:1 QB2:2/M/1024", "← T:1 QB2:3/_/1024"]
    assert link.trace == blocks + blocks
    assert link.client_got == [(b"\x18", first), (b"\x19", second)]


def test_figure_8_eleven_blocks_the_client_sends_continue_and_the_server_goes_on_with_the_original_token() -> None:
    link = Link()
    token = link.token()
    bodies = [body_of(11), body_of(11, last=1)]
    for body in bodies:
        link.notify(body, token)
        link.run(until=100.0)  # before NON_PARTIAL_TIMEOUT lets the server forget the body
    one = [f"← T:1 QB2:{n}/M/1024" for n in range(10)]
    assert link.trace == [
        *one,
        "→ T:2 QB2:10/M/1024 Continue",
        "← T:1 QB2:10/_/1024",
        *one,
        "→ T:3 QB2:10/M/1024 Continue",
        "← T:1 QB2:10/_/1024",
    ]
    assert set(link.times) == {0.0}  # Continue, not NON_TIMEOUT_RANDOM, paced the second set
    assert [body for _, body in link.client_got] == bodies


def test_figure_9_the_client_asks_for_blocks_1_and_9_on_seeing_the_next_set_then_for_1_again_after_a_timeout() -> None:
    link = Link(lose=lose_first("← QB2:1/M/1024", "← QB2:9/M/1024", "← QB2:1/M/1024 (no Observe)"))
    token = link.token()
    body = body_of(11)
    link.notify(body, token)
    link.run()
    delay = link.trace and link.times[10]
    assert 2.0 <= delay <= 3.0  # NON_TIMEOUT_RANDOM of the server
    assert link.trace == [
        "← T:1 QB2:0/M/1024",
        "←✗ T:1 QB2:1/M/1024",
        *(f"← T:1 QB2:{n}/M/1024" for n in range(2, 9)),
        "←✗ T:1 QB2:9/M/1024",
        "← T:1 QB2:10/_/1024",
        "→ T:2 QB2:1/_/1024 QB2:9/_/1024",
        "←✗ T:2 QB2:1/M/1024 (no Observe)",
        "← T:2 QB2:9/M/1024 (no Observe)",
        "→ T:3 QB2:1/_/1024",
        "← T:3 QB2:1/M/1024 (no Observe)",
    ]
    assert link.times[-2] == pytest.approx(delay + 4.0)  # NON_RECEIVE_TIMEOUT after the last payload received
    assert link.client_got == [(b"\x18", body)]


def test_figure_10_the_client_asks_for_the_rest_of_a_set_with_the_m_bit_then_continues() -> None:
    lost = {f"← QB2:{n}/M/1024" for n in range(2, 10)} | {"← QB2:10/_/1024"}
    link = Link(lose=lambda label, nth: label in lost and nth == 1)
    token = link.token()
    body = body_of(11)
    link.notify(body, token)
    link.run()
    assert link.trace == [
        "← T:1 QB2:0/M/1024",
        "← T:1 QB2:1/M/1024",
        *(f"←✗ T:1 QB2:{n}/M/1024" for n in range(2, 10)),
        "←✗ T:1 QB2:10/_/1024",
        "→ T:2 QB2:2/M/1024",
        *(f"← T:2 QB2:{n}/M/1024 (no Observe)" for n in range(2, 10)),
        "→ T:3 QB2:10/M/1024 Continue",
        "← T:1 QB2:10/_/1024",
    ]
    assert link.times[11] == 4.0
    assert link.client_got == [(b"\x18", body)]


def test_the_first_block_of_a_response_lost_is_asked_for_alone() -> None:
    link = Link(lose=lose_first("← QB2:0/M/1024"))
    body = body_of(3)
    link.notify(body, link.token())
    link.run()
    assert link.trace[3:] == ["→ T:2 QB2:0/_/1024", "← T:2 QB2:0/M/1024 (no Observe)"]
    assert link.client_got == [(b"\x18", body)]


def test_the_last_block_of_a_response_lost_is_known_from_size2() -> None:
    link = Link(lose=lose_first("← QB2:2/_/1024"))
    body = body_of(3)
    link.notify(body, link.token())
    link.run()
    assert link.trace[3:] == ["→ T:2 QB2:2/_/1024", "← T:2 QB2:2/_/1024 (no Observe)"]
    assert link.client_got == [(b"\x18", body)]


def test_a_whole_set_of_a_response_lost_is_asked_for_with_one_continue() -> None:
    lost = {f"← QB2:{n}/M/1024" for n in range(10, 20)}
    link = Link(lose=lambda label, nth: label in lost and nth == 1)
    body = body_of(25)
    link.notify(body, link.token())
    link.run()
    requests = [line for line in link.trace if line.startswith("→")]
    assert requests == ["→ T:2 QB2:10/M/1024 Continue", "→ T:3 QB2:10/M/1024"]
    assert link.client_got == [(b"\x18", body)]
    assert len(link.trace) == 2 + 25 + 10  # two requests, every block once, set 1 once more: nothing else
    assert link.times[link.trace.index("→ T:3 QB2:10/M/1024")] == link.times[-1]  # on seeing set 2, not a timer


def test_a_lost_request_for_missing_blocks_is_repeated_after_twice_the_receive_timeout() -> None:
    link = Link(lose=lose_first("← QB2:1/M/1024", "→ QB2:1/_/1024"))
    body = body_of(3)
    link.notify(body, link.token())
    link.run()
    requests = [(t, line) for t, line in zip(link.times, link.trace, strict=True) if line.startswith("→")]
    assert requests == [(4.0, "→✗ T:2 QB2:1/_/1024"), (12.0, "→ T:3 QB2:1/_/1024")]
    assert link.client_got == [(b"\x18", body)]


def test_the_client_abandons_a_response_after_non_max_retransmit_unanswered_requests() -> None:
    link = Link(lose=lambda label, nth: label.startswith("← QB2:1/"))
    link.notify(body_of(3), link.token())
    link.run()
    requests = [t for t, line in zip(link.times, link.trace, strict=True) if line.startswith("→")]
    assert requests == [4.0, 12.0, 28.0, 60.0]
    assert link.abandoned == ["client: 4 requests for missing blocks unanswered (NON_MAX_RETRANSMIT)"]
    assert len(link.receiver) == 0 and link.client_got == []


def test_duplicate_and_reordered_response_blocks_give_the_body_once() -> None:
    from opendots.transport.qblock import Q2Sender

    link = Link()
    body = body_of(4, last=10)
    sender = Q2Sender(body, link.params, token=b"\x00\x01", now=0.0)
    blocks = sender.poll(0.0)
    link._etag = 0x30
    link._server_blocks([blocks[i] for i in (3, 1, 1, 0, 3, 2, 0)])
    link.run()
    assert link.client_got == [(b"\x30", body)]


def test_a_notification_with_a_new_etag_replaces_a_partial_body() -> None:
    link = Link(lose=lose_first("← QB2:1/M/1024"))
    first, second = body_of(3), body_of(3, last=9)
    token = link.token()
    link.notify(first, token)  # block 1 lost: partial
    link.notify(second, token)  # Observe triggered before the client asked
    link.run()
    assert link.abandoned == ["client: replaced by a body with a new ETag (RFC 9177 §4.4)"]
    assert link.client_got == [(b"\x19", second)]


def test_a_lost_continue_is_made_up_by_the_servers_own_next_set() -> None:
    link = Link(lose=lose_first("→ QB2:10/M/1024 Continue"))
    body = body_of(12)
    link.notify(body, link.token())
    link.run()
    assert link.trace[10:13] == ["→✗ T:2 QB2:10/M/1024 Continue", "← T:1 QB2:10/M/1024", "← T:1 QB2:11/_/1024"]
    assert 2.0 <= link.times[11] <= 3.0  # NON_TIMEOUT_RANDOM
    assert link.client_got == [(b"\x18", body)]


def test_a_short_max_age_releases_a_partial_response_before_non_max_retransmit() -> None:
    from opendots.transport.qblock import BlockOption, BodyAbandoned, Q2Receiver, QBlockParameters

    receiver = Q2Receiver(QBlockParameters())
    receiver.on_block(
        "k", etag=b"e", option=BlockOption(0, True, 6), payload=bytes(1024), size2=3000, now=0.0, max_age=10.0
    )
    assert [type(out).__name__ for out in receiver.poll(4.0)] == ["RequestBlocks"]
    [gone] = receiver.poll(12.0)
    assert isinstance(gone, BodyAbandoned) and "Max-Age" in gone.reason and len(receiver) == 0


def test_libcoaps_probe_for_block_0_of_16_bytes_gets_exactly_that_block_and_the_body_is_kept_for_the_rest() -> None:
    from opendots.transport.qblock import BlockOption, Q2Responses, QBlockParameters, is_recovery

    responses = Q2Responses(QBlockParameters())
    probe = BlockOption(0, False, 0)  # Q-Block2:0/_/16 on GET /.well-known/core (field notes)
    assert is_recovery([probe]) and not is_recovery([BlockOption(0, True, 0)])
    core = b'</.well-known/dots>;rt="dots"'
    [first] = responses.start("p", "/.well-known/core", core, etag=b"e", token=b"\x01", now=0.0, asked=probe)
    assert (str(first.option), first.payload, first.size, first.recovery) == ("0/M/16", core[:16], len(core), False)
    assert responses.next_deadline() == QBlockParameters().partial_timeout  # nothing more goes unasked
    rest = responses.on_request("p", "/.well-known/core", [BlockOption(1, True, 0)], token=b"\x02", now=1.0)
    assert rest is not None and b"".join(b.payload for b in [first, *rest]) == core
    with pytest.raises(Exception, match="another size"):
        responses.on_request("p", "/.well-known/core", [BlockOption(1, False, 6)], token=b"\x03", now=1.0)
