"""The client's Q-Block shell (opendots.transport.qblock_client) joined to the server's (qblock_server) in-process, with
real aiocoap messages, a manual clock and chosen messages lost, reordered or duplicated on the way (no socket, no
real time): what reaches aiocoap's token layer is one whole answer on the request's own token, whatever was lost."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import aiocoap
import pytest
from aiocoap.numbers.types import CON, NON
from aiocoap.optiontypes import OpaqueOption

from opendots.transport.qblock import QBLOCK1, QBLOCK2, BlockOption, QBlockParameters
from opendots.transport.qblock_client import QBlockClient, QBlockFailed, probe_answer, probe_message
from opendots.transport.qblock_server import QBlockServer

BLOCK = 256  # SZX 4
BODY = bytes(range(251)) * 12  # 3012 bytes: 12 blocks of 256 (sets of 10 and 2) and one of 196
COUNT = -(-len(BODY) // BLOCK)
PARAMS = QBlockParameters()


class Remote:
    """The session both shells name the peer by (aiocoap's remote); 256-byte blocks."""

    maximum_block_size_exp = 4

    def __repr__(self) -> str:
        return "<session>"


class Clock:
    """Stands for the event loop's clock and timers: time moves only when the link says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Any]] = []
        self._ids = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        handle = _Handle(callback)
        heapq.heappush(self._timers, (when, next(self._ids), handle))
        return handle

    def next_due(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def fire_next(self) -> None:
        when, _, handle = heapq.heappop(self._timers)
        # A microsecond passes, as on a real loop: a deadline computed as a + b may test as a hair short of b.
        self.now = max(self.now, when) + 1e-6
        handle.callback()


class _Handle:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


Lose = Callable[[str, aiocoap.Message], bool]


def never(direction: str, message: aiocoap.Message) -> bool:
    return False


class Link:
    """Client shell ⇄ server shell; the server's resource stores a PUT body and returns it to a GET. LOSE(direction,
    message) drops a message ('up' client to server, 'down' back); TAMPER may rewrite what goes down (a list)."""

    def __init__(self, lose: Lose = never, tamper: Callable[[list[aiocoap.Message]], list] | None = None) -> None:
        self.clock = Clock()
        self.remote = Remote()
        self.lose = lose
        self.tamper = tamper
        self.up: list[aiocoap.Message] = []  # everything the client put on the wire
        self.down: list[aiocoap.Message] = []  # everything the server put on the wire
        self.delivered: list[aiocoap.Message] = []
        self.unmatched: list[aiocoap.Message] = []
        self.failed: list[tuple[bytes, Exception]] = []
        self.stored = BODY  # what a GET gets; a PUT replaces it
        self._queue: list[tuple[str, aiocoap.Message]] = []
        self.client = QBlockClient(
            loop=self.clock,  # type: ignore[arg-type]
            send=lambda message: self._wire("up", [message]),
            deliver=self._deliver,
            fail=lambda remote, token, failure: self.failed.append((token, failure)),
        )
        self.server = QBlockServer(loop=self.clock, send=lambda message: self._wire("down", [message]))  # type: ignore[arg-type]
        self.client.learned(self.remote, True)
        self.client.set_parameters(self.remote, PARAMS)

    def _deliver(self, response: aiocoap.Message) -> bool:
        self.delivered.append(response)
        return True

    def _wire(self, direction: str, messages: list[aiocoap.Message]) -> None:
        # Copies: the shells rewrite messages in place once they are handed over (tokens, options, payloads).
        (self.up if direction == "up" else self.down).extend(m.copy() for m in messages)
        if direction == "down" and self.tamper is not None:
            messages = self.tamper(messages)
        self._queue += [(direction, m) for m in messages if not self.lose(direction, m)]

    def request(self, code: aiocoap.Code, payload: bytes = b"", token: bytes = b"T1") -> None:
        message = aiocoap.Message(code=code, uri_path=["r"], payload=payload, transport_tuning=aiocoap.Unreliable)
        message.remote, message.token = self.remote, token
        assert self.client.on_request(message)

    def run(self, until: float = 600.0) -> None:
        """Deliver what is in flight, then fire the next timer, until both are done (or UNTIL seconds pass)."""
        while True:
            while self._queue:
                direction, message = self._queue.pop(0)
                if direction == "up":
                    self._serve(message)
                elif self.client.on_response(message) is None:  # not the engine's: aiocoap's, as it is
                    # aiocoap matches it to the request still waiting on its token, or drops it (RFC 7252 §5.3.2)
                    waits = message.token == b"T1" and not self.delivered and not self.failed
                    (self.delivered if waits else self.unmatched).append(message)
            due = self.clock.next_due()
            if due is None or due > until or (self.delivered and not self._pending()):
                return
            self.clock.fire_next()

    def _pending(self) -> bool:
        return any(peer.uploads or peer.downloads for peer in self.client._peers.values())

    def _serve(self, request: aiocoap.Message) -> None:
        goes_up, answers = self.server.on_request(request)
        self._wire("down", answers)
        if not goes_up:
            return
        if request.code == aiocoap.PUT:
            self.stored = request.payload
            response = aiocoap.Message(code=aiocoap.CHANGED)
        else:
            response = aiocoap.Message(code=aiocoap.CONTENT, payload=self.stored)
            if request.opt.observe == 0:  # an observation starts: the answer is its first notification
                response.opt.observe = 1
        response.token, response.remote, response.mtype = request.token, request.remote, NON
        blocks = self.server.on_response(response)
        self._wire("down", blocks if blocks is not None else [response])


def q1(message: aiocoap.Message) -> BlockOption | None:
    found = message.opt.get_option(QBLOCK1)
    return BlockOption.decode(found[0].encode()) if found else None


def q2s(message: aiocoap.Message) -> list[BlockOption]:
    return [BlockOption.decode(option.encode()) for option in message.opt.get_option(QBLOCK2)]


def first_copy(direction: str, wanted: set[int], option: Callable[[aiocoap.Message], BlockOption | None]) -> Lose:
    """Lose the first copy of each block in WANTED going DIRECTION."""
    gone: set[int] = set()

    def lose(where: str, message: aiocoap.Message) -> bool:
        found = option(message)
        if where != direction or found is None or found.num not in wanted or found.num in gone:
            return False
        gone.add(found.num)
        return True

    return lose


def q2(message: aiocoap.Message) -> BlockOption | None:
    found = q2s(message)
    return found[0] if found and message.code.is_response() else None


def blocks_up(link: Link) -> list[int]:
    return [q1(m).num for m in link.up if q1(m) is not None]


def the_answer(link: Link, code: aiocoap.Code) -> aiocoap.Message:
    assert len(link.delivered) == 1, link.delivered
    (answer,) = link.delivered
    assert answer.token == b"T1" and answer.code == code
    assert not answer.opt.get_option(QBLOCK1) and not answer.opt.get_option(QBLOCK2)
    return answer


# --- Q-Block1: a request body going up


def test_a_body_of_13_blocks_goes_up_once_each_on_new_tokens_with_one_request_tag_rfc9177_4_3() -> None:
    link = Link()
    link.request(aiocoap.PUT, BODY)
    link.run()
    the_answer(link, aiocoap.CHANGED)
    assert link.stored == BODY and blocks_up(link) == list(range(COUNT))
    assert len({m.token for m in link.up}) == COUNT  # §6: a new token per payload
    assert {m.opt.get_option(292)[0].encode() for m in link.up} == {link.up[0].opt.get_option(292)[0].encode()}
    assert {m.opt.size1 for m in link.up} == {len(BODY)} and {m.mtype for m in link.up} == {NON}  # §4.6, §7
    assert [m.code.dotted for m in link.down] == ["2.31", "2.04"]  # set 0 acknowledged; the last set gets the answer


@pytest.mark.parametrize(
    ("lost", "again"),
    [
        pytest.param({0}, [0], id="first-block-lost"),
        pytest.param({COUNT - 1}, [COUNT - 1], id="last-block-lost"),
        pytest.param(set(range(10)), list(range(10)), id="whole-first-burst-lost"),
    ],
)
def test_blocks_lost_on_the_way_up_are_the_only_ones_sent_again_rfc9177_5_7_2(lost: set[int], again: list[int]) -> None:
    link = Link(lose=first_copy("up", lost, q1))
    link.request(aiocoap.PUT, BODY)
    link.run()
    the_answer(link, aiocoap.CHANGED)
    assert link.stored == BODY
    sent = blocks_up(link)
    assert sorted(sent) == sorted([*range(COUNT), *again])


def test_the_final_answer_lost_is_asked_for_again_with_the_last_block_and_repeated_by_the_server_rfc9177_4_3() -> None:
    lost: list[aiocoap.Message] = []

    def first_final_answer(direction: str, message: aiocoap.Message) -> bool:
        if direction == "down" and message.code == aiocoap.CHANGED and not lost:
            lost.append(message)
            return True
        return False

    link = Link(lose=first_final_answer)
    link.request(aiocoap.PUT, BODY)
    link.run()
    the_answer(link, aiocoap.CHANGED)
    assert lost and blocks_up(link) == [*range(COUNT), COUNT - 1]  # one probe: the last block again, nothing more


def test_a_2_31_lost_costs_a_wait_but_no_block_sent_twice_rfc9177_7_2() -> None:
    link = Link(lose=lambda direction, message: direction == "down" and message.code == aiocoap.CONTINUE)
    link.request(aiocoap.PUT, BODY)
    link.run()
    the_answer(link, aiocoap.CHANGED)
    assert blocks_up(link) == list(range(COUNT))


def test_a_malformed_4_08_is_dropped_and_the_transfer_goes_on_rfc9177_5() -> None:
    def bad_lists(messages: list[aiocoap.Message]) -> list[aiocoap.Message]:
        out = []
        for message in messages:
            if message.code == aiocoap.REQUEST_ENTITY_INCOMPLETE and not getattr(message, "bad_sent", False):
                bad = message.copy(payload=b"\x05\x03")  # not ascending (§5: the client drops it)
                bad.remote, bad.bad_sent = message.remote, True
                out.append(bad)
            out.append(message)
        return out

    link = Link(lose=first_copy("up", {4}, q1), tamper=bad_lists)
    link.request(aiocoap.PUT, BODY)
    link.run()
    the_answer(link, aiocoap.CHANGED)
    assert sorted(blocks_up(link)) == sorted([*range(COUNT), 4])


# --- Q-Block2: a response body coming down


def gets(link: Link) -> list[list[BlockOption]]:
    return [q2s(m) for m in link.up if m.code == aiocoap.GET]


def test_a_get_carries_q_block2_0_m_and_a_13_block_answer_goes_up_whole_on_the_requests_token_rfc9177_4_4() -> None:
    link = Link()
    link.request(aiocoap.GET)
    link.run()
    answer = the_answer(link, aiocoap.CONTENT)
    assert answer.payload == BODY and answer.opt.size2 is None
    assert gets(link)[0] == [BlockOption(0, True, 4)]  # §4.1: the client takes Q-Block2 bodies
    assert link.client.counts["q2_bodies"] == 1 and link.client.counts["q2_blocks"] == COUNT


@pytest.mark.parametrize(
    ("lost", "asked"),
    [
        pytest.param({0}, [[BlockOption(0, False, 4)]], id="first-block-lost"),
        pytest.param({COUNT - 1}, [[BlockOption(COUNT - 1, False, 4)]], id="last-block-lost"),
        pytest.param({10, 11}, [], id="whole-last-set-lost"),  # asked for with the 'Continue' 10/M (§4.4)
        # Block 0 goes in a request of its own (libcoap 4.3.5 answers a request naming block 0 with block 0 only).
        pytest.param({0, 5}, [[BlockOption(0, False, 4)], [BlockOption(5, False, 4)]], id="block-0-asked-alone"),
    ],
)
def test_blocks_lost_on_the_way_down_are_asked_for_and_the_body_goes_up_once_rfc9177_4_4(
    lost: set[int], asked: list[list[BlockOption]]
) -> None:
    link = Link(lose=first_copy("down", lost, q2))
    link.request(aiocoap.GET)
    link.run()
    assert the_answer(link, aiocoap.CONTENT).payload == BODY
    requests = gets(link)[1:]
    assert [r for r in requests if not (len(r) == 1 and r[0].more and r[0].num % 10 == 0)] == asked  # no 'Continue'
    if not asked:
        # Set 0 whole: 'Continue' brings set 1 again (once more if the server's own resend crossed it).
        assert requests and all(r == [BlockOption(10, True, 4)] for r in requests)
    assert all(m.opt.observe is None and m.opt.etag is None for m in link.up[1:])  # §4.4, §4.5


def test_duplicated_and_reordered_blocks_give_the_body_once_rfc9177_4_4() -> None:
    def shuffle(messages: list[aiocoap.Message]) -> list[aiocoap.Message]:
        return list(reversed(messages)) + messages[:3]  # the burst backwards, then its first three again

    link = Link(tamper=shuffle)
    link.request(aiocoap.GET)
    link.run()
    assert the_answer(link, aiocoap.CONTENT).payload == BODY
    # Copies arriving after the body went up reach aiocoap, which knows the token no more and drops them.
    assert link.unmatched and all(q2(m) is not None for m in link.unmatched)


def test_a_get_nobody_answers_is_sent_again_on_its_token_then_left_to_the_callers_timeout_rfc7252_4_8() -> None:
    link = Link(lose=lambda direction, message: direction == "up")
    link.request(aiocoap.GET)
    link.run()
    assert link.delivered == [] and link.failed == []
    assert len(link.up) == 1 + PARAMS.non_max_retransmit and {m.token for m in link.up} == {b"T1"}
    assert len({m.mid for m in link.up}) == 1  # no MID yet: the message manager numbers each anew


def test_a_get_whose_first_answer_is_lost_is_sent_again_and_answered_rfc7252_4_8() -> None:
    link = Link()

    def everything_before_the_get_is_sent_again(direction: str, message: aiocoap.Message) -> bool:
        return direction == "down" and len(gets(link)) < 2

    link.lose = everything_before_the_get_is_sent_again
    link.request(aiocoap.GET)
    link.run()
    assert the_answer(link, aiocoap.CONTENT).payload == BODY
    assert link.client.counts["resends"] == 1


def test_a_response_whose_missing_blocks_never_come_fails_the_request_after_non_max_retransmit_rfc9177_7_2() -> None:
    def recovery(direction: str, message: aiocoap.Message) -> bool:
        option = q2(message)
        return direction == "down" and option is not None and (option.num == 3 or message.token != b"T1")

    link = Link(lose=recovery)
    link.request(aiocoap.GET)
    link.run()
    assert link.delivered == [] and len(link.failed) == 1
    token, failure = link.failed[0]
    assert token == b"T1" and isinstance(failure, QBlockFailed)
    assert not link._pending()  # nothing kept


def test_a_block_sent_again_without_etag_and_size2_is_taken_with_the_bodys_own_values() -> None:
    """libcoap 4.3.5 answers a request for block 0 as a new GET: block 0, no ETag, no Size2."""

    def like_libcoap(messages: list[aiocoap.Message]) -> list[aiocoap.Message]:
        out = []
        for message in messages:
            option = q2(message)
            if option is not None and option.num == 0 and message.token != b"T1":
                message = message.copy()
                message.remote = out[0].remote if out else messages[0].remote
                message.opt.etag, message.opt.size2 = None, None
            out.append(message)
        return out

    link = Link(lose=first_copy("down", {0}, q2), tamper=like_libcoap)
    link.request(aiocoap.GET)
    link.run()
    assert the_answer(link, aiocoap.CONTENT).payload == BODY


def test_a_transfer_its_caller_gives_up_stops_and_late_answers_find_no_request_rfc9177_4_3() -> None:
    link = Link(lose=first_copy("up", {2}, q1))
    link.request(aiocoap.PUT, BODY)
    link.run(until=0.5)  # the first set went, block 2 lost: nothing answered yet
    sent = len(link.up)
    link.client.forget(link.remote, b"T1")
    link.run()
    assert len(link.up) == sent and link.delivered == []  # nothing more sent, nothing delivered
    # The server's 4.08s (it asks NON_MAX_RETRANSMIT times, then drops the body) are left to aiocoap, which knows
    # no such token.
    assert link.unmatched and {m.code for m in link.unmatched} == {aiocoap.REQUEST_ENTITY_INCOMPLETE}
    assert not link._pending()


def test_a_block2_answer_to_a_q_block2_request_fails_it_and_the_session_falls_back_to_block2_rfc9177_4_1() -> None:
    def as_block2(messages: list[aiocoap.Message]) -> list[aiocoap.Message]:
        if not messages:
            return messages
        first = messages[0].copy(payload=messages[0].payload)
        first.remote = messages[0].remote
        first.opt.delete_option(QBLOCK2)
        first.opt.block2 = (0, True, 4)
        return [first]

    link = Link(tamper=as_block2)
    link.request(aiocoap.GET)
    link.run()
    assert link.delivered == [] and [token for token, _ in link.failed] == [b"T1"]
    assert link.client.supports(link.remote) is False


# --- when Q-Block is used at all


def test_only_nonconfirmable_large_bodies_and_gets_to_a_server_known_to_speak_q_block_use_it_rfc9177_4_1_7() -> None:
    link = Link()
    client, remote = link.client, link.remote

    def message(code: aiocoap.Code, payload: bytes = b"", tuning: Any = aiocoap.Unreliable) -> aiocoap.Message:
        built = aiocoap.Message(code=code, uri_path=["r"], payload=payload, transport_tuning=tuning)
        built.remote = remote
        return built

    assert client.applies(message(aiocoap.PUT, BODY)) and client.applies(message(aiocoap.GET))
    assert not client.applies(message(aiocoap.PUT, b"x" * BLOCK))  # fits one block
    assert not client.applies(message(aiocoap.DELETE))
    assert not client.applies(message(aiocoap.PUT, BODY, aiocoap.Reliable))  # CON: Block1 (§7: all CON or all NON)
    blocked = message(aiocoap.GET)
    blocked.opt.add_option(OpaqueOption(QBLOCK2, BlockOption(0, False, 0).encode()))
    assert not client.applies(blocked)  # the probe itself, or a caller doing Q-Block on its own
    other = Remote()
    unknown = message(aiocoap.GET)
    unknown.remote = other
    assert not client.applies(unknown)  # not probed yet
    client.learned(other, False)
    assert not client.applies(unknown)


def test_the_probe_is_libcoaps_and_only_a_success_with_q_block2_counts_as_support_rfc9177_4_1() -> None:
    probe = probe_message(Remote())
    assert probe.code == aiocoap.GET and probe.opt.uri_path == (".well-known", "core")
    assert probe.transport_tuning.reliability is True and q2s(probe) == [BlockOption(0, False, 0)]
    with_option = aiocoap.Message(code=aiocoap.CONTENT, payload=b"</>")
    with_option.opt.add_option(OpaqueOption(QBLOCK2, BlockOption(0, True, 0).encode()))
    assert probe_answer(with_option)
    assert not probe_answer(aiocoap.Message(code=aiocoap.CONTENT, payload=b"</>"))
    bad_option = aiocoap.Message(code=aiocoap.BAD_OPTION, payload=b"Bad Option")
    bad_option.opt.add_option(OpaqueOption(QBLOCK2, b""))  # libcoap 4.3.1 echoes the option it did not know
    assert not probe_answer(bad_option)
    assert CON is not None


def test_a_get_sent_again_on_its_token_gets_block_0_of_the_body_under_way_not_a_second_rendering() -> None:
    # A GET answered slowly (a GET of 10,000 mitigations renders ~450 KiB) is sent again on its token before any
    # block comes back (RFC 7252 §4.8). Rendered twice, its blocks came with two ETags and the client started over
    # (§4.4): at 30 % loss in bench/blocks.py 68 renderings for 20 GETs, 8 of them past 40 s.
    link = Link()
    link.request(aiocoap.GET)
    link.clock.fire_next()  # nothing came back within NON_TIMEOUT_RANDOM: the GET goes again on its token
    assert len(link.up) == 2
    link.run()
    assert len({m.opt.etag for m in link.down if q2(m) is not None}) == 1
    assert not link.failed
    assert the_answer(link, aiocoap.CONTENT).payload == BODY


def test_a_new_etag_partway_through_a_response_body_restarts_it_instead_of_failing_the_request_rfc9177_4_4() -> None:
    # §4.4: the server's resource changed partway through the body; "the client should treat the partial body with
    # the old ETag as no longer being fresh" and "may then request all of the new data by specifying Q-Block2 with
    # block number '0' and the M bit set". The request used to fail (QBlockFailed: "replaced by a body with a new
    # ETag"), although the new body was on its way.
    link = Link(lose=lambda direction, message: direction == "down" and (q2(message) or BlockOption(0, 0, 4)).num > 2)
    link.request(aiocoap.GET)
    link.run(until=0.0)  # blocks 0-2 of the first body arrived, the rest was lost
    assert link.client.counts["q2_blocks"] == 3 and not link.delivered
    new = bytes(300)  # the changed representation: two blocks of 256
    asked_before = len(link.up)
    for num in (0, 1):
        block = aiocoap.Message(code=aiocoap.CONTENT, payload=new[num * BLOCK : (num + 1) * BLOCK])
        block.token, block.remote, block.mtype = b"T1", link.remote, NON
        block.opt.etag, block.opt.size2 = b"new", len(new)
        block.opt.add_option(OpaqueOption(QBLOCK2, BlockOption(num, num == 0, 4).encode()))
        assert link.client.on_response(block) is True
        if num == 0:
            assert not link.failed  # the old partial body is dropped, the request goes on
            # and the whole new body is asked for, on a new token
            [again] = link.up[asked_before:]
            assert q2s(again) == [BlockOption(0, True, 4)] and again.token != b"T1"
        if num == 0:  # a late block of the old body changes nothing: its ETag is stale now
            late = next(m for m in link.down if q2(m) is not None and q2(m).num == 3).copy()
            late.remote = link.remote
            assert link.client.on_response(late) is True and not link.failed
    assert not link.failed
    assert the_answer(link, aiocoap.CONTENT).payload == new


@pytest.mark.parametrize("size", [7, 1000], ids=["one-payload", "q-block2-body"])
def test_notifications_of_a_fetch_observed_with_a_q_block1_body_go_up_on_the_requests_token_rfc9177_4_3_10_3(
    size: int,
) -> None:
    # §4.3 (2.05 for FETCH): "If the FETCH request includes the Observe option, then the server MUST use the same
    # token as used for the 2.05 (Content) response for returning any triggered Observe responses" (Figure 11): the
    # token of the body's last payload. The client released every token of the body with the answer, so later
    # notifications on it reached no observer.
    link = Link()
    fetch = aiocoap.Message(code=aiocoap.FETCH, uri_path=["r"], payload=BODY, transport_tuning=aiocoap.Unreliable)
    fetch.remote, fetch.token, fetch.opt.observe = link.remote, b"T1", 0
    assert link.client.on_request(fetch)
    link.run()
    assert [m.payload for m in link.delivered] == [BODY] and link.delivered[0].token == b"T1"
    answered_on = next(m.token for m in link.up if q1(m) is not None and not q1(m).more)
    note = aiocoap.Message(code=aiocoap.CONTENT, payload=(bytes(range(251)) * 4)[:size])
    note.token, note.remote, note.mtype, note.opt.observe = answered_on, link.remote, NON, 2
    blocks = link.server.on_response(note)
    link._wire("down", blocks if blocks is not None else [note])
    link.run()
    assert not link.failed and not link.unmatched
    assert [m.payload for m in link.delivered] == [BODY, note.payload]
    assert link.delivered[1].token == b"T1" and link.delivered[1].opt.observe == 2
