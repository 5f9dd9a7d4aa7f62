"""RFC 9177 §10.3: a FETCH whose request body goes with Q-Block1 and whose response (and its Observe notifications)
comes back with Q-Block2 (Figures 11-15): the four engines joined by the lossy link, the shell's part played by it."""

from __future__ import annotations

from opendots.transport.qblock import QBlockParameters
from tests.unit.transport.qblock.link import Link, body_of


def test_figure_11_a_three_block_fetch_is_answered_with_four_blocks_on_the_last_request_token() -> None:
    link = Link()
    request, response, notification = body_of(3), body_of(4), body_of(4, last=1)
    link.response_body = response
    link.put(request)
    link.run()
    link.notify(notification, b"\x00\x03")  # Observe triggered: same token, new ETag
    link.run()
    answer = [f"← T:3 QB2:{n}/M/1024" for n in range(3)] + ["← T:3 QB2:3/_/1024"]
    assert link.trace == ["→ T:1 QB1:0/M/1024", "→ T:2 QB1:1/M/1024", "→ T:3 QB1:2/_/1024", *answer, *answer]
    assert link.server_got == [request]
    assert link.client_got == [(b"\x18", response), (b"\x19", notification)]


def test_figure_12_eleven_payloads_each_way_use_2_31_one_way_and_continue_the_other() -> None:
    link = Link()
    request, response, notification = body_of(11), body_of(11, last=2), body_of(11, last=3)
    link.response_body = response
    link.put(request)
    link.run()
    link.notify(notification, b"\x00\x0b")
    link.run()
    answer = [f"← T:11 QB2:{n}/M/1024" for n in range(10)]
    assert link.trace == [
        *(f"→ T:{n + 1} QB1:{n}/M/1024" for n in range(10)),
        "← T:10 2.31 QB1:9/M/1024",
        "→ T:11 QB1:10/_/1024",
        *answer,
        "→ T:12 QB2:10/M/1024 Continue",
        "← T:11 QB2:10/_/1024",  # the Continue is answered on the original token (§10.3.2)
        *answer,
        "→ T:13 QB2:10/M/1024 Continue",
        "← T:11 QB2:10/_/1024",
    ]
    assert link.client_got == [(b"\x18", response), (b"\x19", notification)]


def test_figures_13_to_15_blocks_lost_both_ways_are_recovered_by_4_08_and_by_requests_for_missing_blocks() -> None:
    lost_once = {
        "→ QB1:1/M/1024",
        "→ QB1:2/M/1024",
        "← QB2:1/M/1024",
        "← QB2:3/_/1024",
        "← QB2:1/M/1024 (no Observe)",
    }
    link = Link(lose=lambda label, nth: label in lost_once and nth == 1)
    request, response = body_of(4), body_of(4, last=7)
    link.response_body = response
    link.put(request)
    link.run()
    assert link.trace == [
        # Figure 13
        "→ T:1 QB1:0/M/1024",
        "→✗ T:2 QB1:1/M/1024",
        "→✗ T:3 QB1:2/M/1024",
        "→ T:4 QB1:3/_/1024",
        # Figure 14: after NON_RECEIVE_TIMEOUT the server asks for both, then answers
        "← T:4 4.08 [1, 2]",
        "→ T:5 QB1:1/M/1024",
        "→ T:6 QB1:2/M/1024",
        "← T:6 QB2:0/M/1024",
        "←✗ T:6 QB2:1/M/1024",
        "← T:6 QB2:2/M/1024",
        "←✗ T:6 QB2:3/_/1024",
        # Figure 15: after NON_RECEIVE_TIMEOUT the client asks for both, then for the one lost again
        "→ T:7 QB2:1/_/1024 QB2:3/_/1024",
        "←✗ T:7 QB2:1/M/1024 (no Observe)",
        "← T:7 QB2:3/_/1024 (no Observe)",
        "→ T:8 QB2:1/_/1024",
        "← T:8 QB2:1/M/1024 (no Observe)",
    ]
    assert link.times[4] == 4.0 and link.times[11] == 8.0 and link.times[14] == 12.0
    assert link.server_got == [request] and link.client_got == [(b"\x18", response)]

    # Figure 15, continued: Observe triggered, a 3-block notification loses block 1
    link.lose = lambda label, nth: label == "← QB2:1/M/1024" and nth == 2
    notification = body_of(3, last=5)
    link.notify(notification, b"\x00\x06")
    link.run()
    assert link.trace[16:] == [
        "← T:6 QB2:0/M/1024",
        "←✗ T:6 QB2:1/M/1024",
        "← T:6 QB2:2/_/1024",
        "→ T:9 QB2:1/_/1024",
        "← T:9 QB2:1/M/1024 (no Observe)",
    ]
    assert link.client_got[-1] == (b"\x19", notification)


def test_max_payloads_set_per_session_shapes_the_bursts_both_ways() -> None:
    # RFC 9362 will set MAX_PAYLOADS per DOTS session: the engine follows whatever value its parameters hold.
    link = Link(params=QBlockParameters(max_payloads=4))
    request, response = body_of(6), body_of(6, last=4)
    link.response_body = response
    link.put(request)
    link.run()
    assert "← T:4 2.31 QB1:3/M/1024" in link.trace
    assert "→ T:7 QB2:4/M/1024 Continue" in link.trace
    assert link.server_got == [request] and link.client_got == [(b"\x18", response)]
