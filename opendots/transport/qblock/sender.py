"""The sending side of both options: one body out in MAX_PAYLOADS_SETs (RFC 9177 §7.2).

`Q1Sender` is a client sending a request body (Q-Block1): it reacts to 2.31 Continue, to 4.08 with the missing
blocks, and to the final response. `Q2Sender` is a server sending a response body (Q-Block2): it reacts to the
'Continue' Q-Block2 request and to requests for missing blocks. Both wait NON_TIMEOUT_RANDOM between sets unless the
peer says Continue, and send at most MAX_PAYLOADS payloads at a time, retransmissions included.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable

from opendots.transport.qblock.body import OutgoingBody
from opendots.transport.qblock.events import SendBlock
from opendots.transport.qblock.options import BlockOption, QBlockError, decode_missing
from opendots.transport.qblock.params import QBlockParameters


class _Bursts:
    def __init__(self, body: bytes, params: QBlockParameters, szx: int, now: float, rng: random.Random | None) -> None:
        self.out = OutgoingBody(body, szx)
        self.params = params
        self.delay = params.timeout_random(rng or random.Random())  # NON_TIMEOUT_RANDOM, kept for the whole body
        self.next_new = 0  # the first block never sent
        self._queue: set[int] = set()  # blocks to send again at the next opportunity
        self.deadline: float | None = now  # the first set goes at once
        self.last_activity = now
        self.sent = 0  # payloads handed out, retransmissions included (tests and metrics count these)
        self.token: bytes | None = None  # Q-Block2: the exchange the body goes out on; Q-Block1: a new one each
        self.peer: Hashable = None
        self.key: Hashable = None
        self.confirmable = False  # Q-Block2 only: the body answers a CON request

    @property
    def all_sent(self) -> bool:
        return self.next_new >= self.out.count and not self._queue

    def next_deadline(self) -> float | None:
        return self.deadline

    def _block(self, num: int, token: bytes | None = None, recovery: bool = False) -> SendBlock:
        self.sent += 1
        token = self.token if token is None else token
        out = self.out
        return SendBlock(
            out.option(num), out.payload(num), len(out.body), token, recovery, self.peer, self.key, self.confirmable
        )

    def _burst(self, now: float) -> list[SendBlock]:
        """One MAX_PAYLOADS_SET: blocks asked for again first (ascending), then blocks never sent."""
        budget = self._budget()
        again = sorted(self._queue)[:budget]
        self._queue.difference_update(again)
        nums = again + list(range(self.next_new, min(self.out.count, self.next_new + budget - len(again))))
        self.next_new = max(self.next_new, nums[-1] + 1) if nums else self.next_new
        self.deadline = now + self.delay if not self.all_sent else None
        self.last_activity = now
        return [self._block(num) for num in nums]

    def _budget(self) -> int:
        return self.params.max_payloads


class Q1Sender(_Bursts):
    """A request body sent with Q-Block1. The shell gives each SendBlock a fresh token (RFC 9177 §6) and the same
    Request-Tag and Size1, remembers which token belongs to this sender, and routes the responses back here."""

    def __init__(
        self,
        body: bytes,
        params: QBlockParameters,
        *,
        now: float,
        szx: int = 6,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(body, params, szx, now, rng)
        self.done = False
        self.failed: str | None = None
        self._probes = 0  # unanswered re-sends of the last block after everything went out
        self._resends: dict[int, int] = {}  # block -> times a 4.08 asked for it since the peer last made progress
        self._named: set[int] = set()  # the blocks the last 4.08 named
        self._arrived: set[int] = set()  # blocks a 4.08 named and a later one showed arrived
        self._resent_at = float("-inf")  # when the last blocks a 4.08 asked for went
        self._heard_at = now  # when the peer last answered (2.31, 4.08); the body's start at first
        self._quick = 0  # probes sent while the peer had been heard within NON_RECEIVE_TIMEOUT

    def poll(self, now: float) -> list[SendBlock]:
        if self.deadline is None or now < self.deadline or self.done or self.failed:
            return []
        if not self.all_sent:
            return self._sent_then_probe(self._burst(now), now)
        # Everything went out and nothing came back (the final response may be lost): send the last block again so
        # the server repeats its answer or lists what it misses; NON_MAX_RETRANSMIT times, doubling the wait.
        if self._probes - self._quick >= self.params.non_max_retransmit:
            self.failed = f"no response after {self._probes} re-sends of the last block (NON_MAX_RETRANSMIT)"
            self.deadline = None
            return []
        self._probes += 1
        self.deadline = now + self._probe_wait(now)
        return [self._block(self.out.count - 1)]

    def _probe_wait(self, now: float) -> float:
        if not self._named and not self._probes:
            # The first probe of a body no 4.08 has been heard for goes past the receiver's own NON_RECEIVE_TIMEOUT,
            # so that a body it still misses blocks of gets its 4.08 first: the probe is for a lost final response.
            return self.params.time_to_wait(1) + self.delay
        # By then the receiver has asked for missing blocks, and it answers a probe (the last block again) with the
        # 4.08 again (Q1Receiver), so the probe goes NON_TIMEOUT_RANDOM after the last set or resend (§7.2's pause
        # between sets; it is one payload). While the peer was heard within NON_RECEIVE_TIMEOUT (by which a live
        # receiver asks for what it misses) it is not "a peer that does not respond" (§7.2, PROBING_RATE), so
        # unanswered probes keep that pace; past it they back off, doubling as the receiver's Time-to-Wait does.
        # At 30 % loss each way a probe and its answer both arrive half the time: doubling from the first probe
        # (0.5, 1, 2, 4 s) left one body in ten past 10 s (bench/blocks.py, README "Block transfers under loss").
        if now + self.delay - self._heard_at <= self.params.receive_timeout:
            self._quick = self._probes
            return self.delay
        return self.delay * 2 ** max(0, self._probes - self._quick - 1)

    def _sent_then_probe(self, blocks: list[SendBlock], now: float) -> list[SendBlock]:
        if self.all_sent and self.deadline is None:
            self.deadline = now + self._probe_wait(now)
        return blocks

    def on_continue(self, option: BlockOption, now: float) -> list[SendBlock]:
        """2.31 Continue echoing block OPTION: the server has the set up to it; the next set may go at once."""
        self._probes = 0
        self._heard_at = now
        if self.done or self.failed or option.num >= self.next_new or not option.more:
            return []  # acknowledges nothing we sent: ignore
        if self.next_new >= self.out.count:
            return []
        return self._sent_then_probe(self._burst(now), now)

    def on_missing(self, payload: bytes, now: float) -> list[SendBlock]:
        """4.08 with application/missing-blocks+cbor-seq: send those blocks again, at most MAX_PAYLOADS now and the
        rest at the next set. A malformed list, or one naming blocks this body does not have, raises QBlockError
        and changes nothing (the client drops such a 4.08, RFC 9177 §5)."""
        numbers = decode_missing(payload)
        if numbers[-1] >= self.out.count:
            raise QBlockError("4.00", f"4.08 names block {numbers[-1]} of a {self.out.count}-block body")
        self._probes = 0
        self._heard_at = now
        if self.done or self.failed:
            return []
        # Blocks never sent yet will go in order anyway; only the ones already sent are retransmissions. A block
        # asked for more than NON_MAX_RETRANSMIT times ends the transfer: the path or the peer is not working.
        again = [num for num in numbers if num < self.next_new]
        # "Without a response from the remote peer" (§7.2): blocks the last 4.08 named that this one leaves out
        # below its highest number have arrived, so the peer is making progress and the counts start again (a
        # block named by a set's 4.08, the timer's and a probe's answer before its resend arrived is not a peer
        # gone wrong: at 30 % loss that ended one transfer in six). Bounded: each block counts as arrived once.
        arrived = {num for num in self._named if num < numbers[-1]}.difference(numbers, self._arrived)
        if arrived:
            self._arrived.update(arrived)
            self._resends.clear()
        self._named = set(numbers)
        for num in again:
            self._resends[num] = self._resends.get(num, 0) + 1
            if self._resends[num] > self.params.non_max_retransmit:
                self.failed = f"block {num} asked for again more than NON_MAX_RETRANSMIT times"
                self.deadline = None
                return []
        self._queue.update(again)
        self.last_activity = now
        if now < self._resent_at + self.delay:
            # §7.2: "a NON_TIMEOUT_RANDOM delay is still observed between each MAX_PAYLOADS_SET" of missing
            # payloads: a 4.08 within it of the last resend (a set's, the timer's and a probe's answer can come
            # close together) has its blocks wait for the next set.
            due = self._resent_at + self.delay
            if self.deadline is None or self.deadline > due:
                self.deadline = due
            return []
        budget = self.params.max_payloads
        now_nums = sorted(self._queue)[:budget]
        self._queue.difference_update(now_nums)
        if now_nums:
            self._resent_at = now
        if self.all_sent:
            self.deadline = now + self._probe_wait(now)
        elif self.deadline is None or self.deadline > now + self.delay:
            self.deadline = now + self.delay
        self.last_activity = now
        return [self._block(num) for num in now_nums]

    def on_final(self) -> None:
        """The final response (2.01, 2.04, 2.05 or an error) arrived: the body is delivered or refused."""
        self.done = True
        self.deadline = None


class Q2Sender(_Bursts):
    """A response body sent with Q-Block2 on TOKEN, with one ETag and Size2 for all its payloads (§4.4, §4.6).

    CONFIRMABLE (the request was CON): every payload after the piggybacked first goes CON, the whole body at once,
    and the CoAP layer's own CON congestion control (RFC 7252 §4.7: NSTART, retransmission, giving up after
    MAX_RETRANSMIT) paces it (RFC 9177 §4.4, §7, §7.1, Figure 18). Otherwise (NON) the sets go NON_TIMEOUT_RANDOM
    apart; to a peer that says nothing back (no 'Continue', no request for missing blocks) the sets after the
    second are held back to PROBING_RATE (at most NON_PROBING_WAIT apart), and after NON_MAX_RETRANSMIT sets in a
    row unanswered no more go until the peer asks again (§7.2): a client that went away stops costing packets."""

    def __init__(
        self,
        body: bytes,
        params: QBlockParameters,
        *,
        token: bytes,
        now: float,
        szx: int = 6,
        rng: random.Random | None = None,
        peer: Hashable = None,
        key: Hashable = None,
        confirmable: bool = False,
    ) -> None:
        super().__init__(body, params, szx, now, rng)
        self.token = token
        self.peer = peer
        self.key = key
        self.confirmable = confirmable
        self.unanswered_sets = 0  # sets sent on the timer since the peer last asked for anything
        self._unanswered_bytes = 0
        self._heard_at = now  # when the peer last asked for anything (the body's request at first)

    def _budget(self) -> int:
        return self.out.count if self.confirmable else self.params.max_payloads

    def poll(self, now: float) -> list[SendBlock]:
        if self.deadline is None or now < self.deadline:
            return []
        if self.confirmable:
            return self._burst(now)
        if self.unanswered_sets >= self.params.non_max_retransmit:
            self.deadline = None  # the peer is silent: stop until it asks again (on_request)
            return []
        blocks = self._burst(now)
        self.unanswered_sets += 1
        self._unanswered_bytes += sum(len(block.payload) for block in blocks)
        if self.deadline is not None and now + self.delay - self._heard_at > self.params.receive_timeout:
            # §7.2: a body to a peer that does not respond is subject to PROBING_RATE, the wait capped at
            # NON_PROBING_WAIT. A live receiver asks (a 'Continue', missing blocks) within NON_RECEIVE_TIMEOUT,
            # so silence is nothing heard for longer than that (it was two sets in a row: at 30 % loss, with a
            # request per set, the body stalled every few sets for as long as the client's timer took).
            wait = self._unanswered_bytes / self.params.probing_rate
            self.deadline = now + max(self.delay, min(wait, self.params.probing_wait(self.delay)))
        return blocks

    def _heard(self, now: float) -> None:
        self.unanswered_sets = 0
        self._heard_at = now
        self._unanswered_bytes = 0
        if not self.all_sent and (self.deadline is None or self.deadline > now + self.delay):
            self.deadline = now + self.delay

    def on_request(
        self, options: list[BlockOption], token: bytes, now: float, *, recovery: bool = True
    ) -> list[SendBlock]:
        """A request carrying Q-Block2 OPTIONS for this body (§4.4): 0/M asks for all of it again, n/M with n a
        multiple of MAX_PAYLOADS is 'Continue', n/M otherwise is n and the rest of its set, n/_ just block n.
        Overlaps are sent once (no amplification); options out of order, repeated or past the body raise 4.00."""
        if not options:
            raise QBlockError("4.00", "a request for blocks without a Q-Block2 option")
        for before, after in itertools.pairwise(options):
            if after.num <= before.num:
                raise QBlockError("4.00", "Q-Block2 options not in increasing block order (RFC 9177 §4.4)")
        if any(option.szx != self.out.szx for option in options):
            # Block numbers count blocks of the body's size: another size would name other bytes.
            raise QBlockError(
                "4.00", f"Q-Block2 asks for blocks of another size than this body's {self.out.block_size}"
            )
        if options[-1].num >= self.out.count:
            raise QBlockError("4.00", f"Q-Block2 asks for block {options[-1].num} of a {self.out.count}-block body")
        mp = self.params.max_payloads
        first = options[0]
        self.last_activity = now
        if recovery:  # the peer asked for something: it is not silent (a new body's first request is not this)
            self._heard(now)
        if len(options) == 1 and first.more and first.num == 0:  # the whole body again, on the new exchange
            self.token = token
            self.next_new = 0
            self._queue.clear()
            return self._burst(now)
        if len(options) == 1 and first.more and first.num % mp == 0:  # 'Continue': same token, Observe kept
            if first.num > self.next_new:
                raise QBlockError("4.00", f"'Continue' at block {first.num} before block {self.next_new} was sent")
            self._queue.discard(first.num)
            nums = list(range(first.num, min(first.num + mp, self.out.count)))
            self.next_new = max(self.next_new, nums[-1] + 1)
            self.deadline = now + self.delay if not self.all_sent else None
            return [self._block(n) for n in nums]
        wanted: set[int] = set()
        for option in options:
            end = (option.num // mp + 1) * mp if option.more else option.num + 1
            wanted.update(range(option.num, min(end, self.out.count)))
        nums = sorted(wanted)[:mp]  # one MAX_PAYLOADS_SET at a time; the client asks again for the rest
        return [self._block(n, token, recovery) for n in nums]
