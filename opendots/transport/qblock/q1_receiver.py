"""A server receiving request bodies sent with Q-Block1 (RFC 9177 §4.3, §5, §7.2), any number of peers at once.

Bodies are keyed by (peer, Request-Tag). The receiver answers 2.31 Continue when a whole MAX_PAYLOADS_SET has
arrived, 4.08 with the missing block numbers (Content-Format 272) when a payload from a later set shows blocks of an
earlier set missing, or when NON_RECEIVE_TIMEOUT (doubling per repeat) passes without progress, and gives up after
NON_MAX_RETRANSMIT such requests or NON_PARTIAL_TIMEOUT of silence. Duplicates are ignored; a duplicate of a body
already delivered asks the shell to repeat its final answer. Memory is bounded by QBlockLimits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from opendots.transport.qblock.body import Reassembly
from opendots.transport.qblock.events import AlreadyComplete, BodyAbandoned, BodyComplete, Respond
from opendots.transport.qblock.options import (
    MISSING_BLOCKS_CONTENT_FORMAT,
    BlockOption,
    QBlockError,
    encode_missing,
)
from opendots.transport.qblock.params import QBlockLimits, QBlockParameters

MAX_MISSING_LISTED = 200
_Key = tuple[Hashable, bytes]  # (peer, Request-Tag)
Output = Respond | BodyComplete | AlreadyComplete | BodyAbandoned


@dataclass
class _Partial:
    peer: Hashable
    tag: bytes
    blocks: Reassembly
    token: bytes
    last_progress: float
    deadline: float
    re_requests: int = 0  # 4.08s sent since the last new block
    reported_below: int = 0  # sets below this one were already listed in a 4.08 when a later set began
    continued: int = -1  # the highest set acknowledged with 2.31
    reliable: bool = False  # CON or RFC 8323: no 2.31 and no missing-blocks 4.08 (§4.3, §5), only the expiry
    params: QBlockParameters | None = None  # the peer's own (e.g. negotiated by RFC 9362), kept for the whole body
    listed: list[int] = field(default_factory=list)  # the blocks the last 4.08 named (at most MAX_MISSING_LISTED)


class Q1Receiver:
    def __init__(self, params: QBlockParameters, limits: QBlockLimits | None = None) -> None:
        self.params = params
        self.limits = limits or QBlockLimits()
        self._partial: OrderedDict[_Key, _Partial] = OrderedDict()  # least recent progress first
        self._per_peer: dict[Hashable, int] = {}
        # Bodies delivered (True) or abandoned (False), kept NON_PARTIAL_TIMEOUT: key -> (when, delivered).
        self._ended: OrderedDict[_Key, tuple[float, bool]] = OrderedDict()
        self.refused: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._partial)

    def on_block(
        self,
        peer: Hashable,
        *,
        token: bytes,
        request_tag: bytes | None,
        option: BlockOption,
        payload: bytes,
        size1: int | None,
        now: float,
        reliable: bool = False,
        params: QBlockParameters | None = None,
    ) -> list[Output]:
        """One request carrying Q-Block1 OPTION. Returns what to answer (if anything) and what completed. RELIABLE
        is for a CON request or a reliable transport, where the peer learns of losses itself. PARAMS, the peer's
        parameters when they differ from the receiver's, apply to a new body (a body keeps those it started with)."""
        out: list[Output] = []  # timers are the shell's to drive: poll() at next_deadline()
        if request_tag is None or size1 is None:
            return [*out, self._refuse(peer, token, "4.00", "Q-Block1 without Request-Tag or Size1 (RFC 9177 §4.3)")]
        key = (peer, request_tag)
        ended = self._ended.get(key)
        if ended is not None:
            if not ended[1]:  # a 4.08 without a missing-blocks list is final (RFC 7959 §2.9.2): the body is gone
                diagnostic = "this Request-Tag's body was abandoned; send the body again with a new Request-Tag"
                return [*out, self._refuse(peer, token, "4.08", diagnostic)]
            # Only the last block's duplicate is answered: it is the client's probe for a lost final response,
            # and the other blocks were not answered the first time either (§4.3: respond as the first time).
            return [*out, AlreadyComplete(peer, key, token)] if not option.more else out
        partial = self._partial.get(key)
        if partial is None:
            diagnostic = self.limits.too_large(size1, option.size)
            if diagnostic is not None:
                return [*out, self._refuse(peer, token, "4.13", diagnostic, size1=self.limits.max_body)]
            params = params or self.params
            try:
                blocks = Reassembly(size1, option.szx, params.max_payloads)
                blocks.check(option, payload, size1)
            except QBlockError as error:
                return [*out, self._refuse(peer, token, error.code, error.diagnostic)]
            if self._per_peer.get(peer, 0) >= self.limits.per_peer:
                out.append(self._evict_oldest_of(peer, now))
            if len(self._partial) >= self.limits.total:
                return [*out, self._refuse(peer, token, "5.03", "too many Q-Block1 bodies in progress; retry later")]
            deadline = now + (params.partial_timeout if reliable else params.time_to_wait(1))
            partial = _Partial(peer, request_tag, blocks, token, now, deadline, reliable=reliable, params=params)
            self._partial[key] = partial
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        else:
            try:
                partial.blocks.check(option, payload, size1)
            except QBlockError as error:  # a lying block ends the body: what it said before cannot be trusted
                self._drop(key, now)
                return [*out, self._refuse(peer, token, error.code, error.diagnostic)]
        return out + self._add(key, partial, option, payload, token, now)

    def _add(
        self,
        key: _Key,
        partial: _Partial,
        option: BlockOption,
        payload: bytes,
        token: bytes,
        now: float,
    ) -> list[Output]:
        blocks = partial.blocks
        if not blocks.add(option, payload):
            # A duplicate: payload ignored, no progress, timers unchanged; but "respond as if the block was received
            # for the first time" (§4.3). The client sends the last block again only when nothing came back (its
            # probe): after a 4.08 of ours, that says the 4.08 or the blocks it asked for were lost, so it gets the
            # missing list now instead of at our next Time-to-Wait, which doubles (at 30 % loss a lost 4.08 left a
            # body's last blocks to 7 s, 14 s, 28 s waits). One answer per probe: the client paces them.
            if option.more or partial.reliable or not partial.listed:
                return []
            partial.token = token
            return [self._missing(partial, blocks.missing(limit=MAX_MISSING_LISTED))]
        partial.token = token  # answers go on the token of the last payload received (§5)
        partial.last_progress = now
        partial.re_requests = 0
        params = partial.params or self.params
        partial.deadline = now + (params.partial_timeout if partial.reliable else params.time_to_wait(1))
        self._partial.move_to_end(key)
        if blocks.complete:
            self._drop(key)
            self._remember(key, now)
            return [BodyComplete(partial.peer, key, partial.tag, blocks.body(), token)]
        if partial.reliable:
            return []
        which = blocks.set_of(option.num)
        out: list[Output] = []
        if which > partial.reported_below:
            # A payload from a later set: list "any missing payloads from any previous MAX_PAYLOADS_SET" (§7.2).
            # The sets not looked at yet are scanned once; what an earlier 4.08 named and its resend did not bring
            # (lost again) is named again, so it is not left to the NON_RECEIVE_TIMEOUT timer, which only runs
            # after progress stops (at 30 % loss that left a growing tail of re-lost blocks to the end of a body,
            # one 4.08 every 4, 8, 16 s). Bounded: one earlier list plus one scan of sets never scanned.
            mp = params.max_payloads
            again = [num for num in partial.listed if num < which * mp and num not in blocks]
            fresh = blocks.missing(partial.reported_below * mp, which * mp, limit=MAX_MISSING_LISTED)
            partial.reported_below = which
            missing = sorted(set(again).union(fresh))
            if missing:
                out.append(self._missing(partial, missing))
        last = blocks.set_range(which)[-1]
        # §4.3: 2.31 acknowledges blocks "all having the M bit set": never the set holding the body's last block,
        # which is answered by the final response (libcoap 4.3.5 takes a 2.31 for it as the end of the transfer).
        final_set = last == blocks.count - 1
        if not final_set and blocks.set_complete(which) and which > partial.continued and blocks.highest_set == which:
            partial.continued = which
            out.append(Respond(partial.peer, token, "2.31", option=BlockOption(last, True, blocks.szx)))
        return out

    def _missing(self, partial: _Partial, missing: list[int]) -> Respond:
        # §5: the list MUST fit one packet; 200 numbers of at most 5 bytes stay within RFC 7252 §4.6's 1024 bytes
        # whatever MAX_PAYLOADS is (the rest is asked for next time).
        missing = missing[:MAX_MISSING_LISTED]
        partial.listed = missing
        return Respond(
            partial.peer,
            partial.token,
            "4.08",
            payload=encode_missing(missing),
            content_format=MISSING_BLOCKS_CONTENT_FORMAT,
            key=(partial.peer, partial.tag),
        )

    def next_deadline(self) -> float | None:
        deadlines = [partial.deadline for partial in self._partial.values()]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> list[Output]:
        """Timers: 4.08 for what is still missing after Time-to-Wait; abandon after NON_MAX_RETRANSMIT of them or
        NON_PARTIAL_TIMEOUT without progress. Linear in the bodies in progress (bounded by QBlockLimits.total)."""
        out: list[Output] = []
        for key, partial in list(self._partial.items()):
            params = partial.params or self.params
            if now - partial.last_progress >= params.partial_timeout:
                self._drop(key, now)
                out.append(BodyAbandoned(partial.peer, key, "no progress for NON_PARTIAL_TIMEOUT"))
            elif now >= partial.deadline:
                if partial.re_requests >= params.non_max_retransmit:
                    self._drop(key, now)
                    reason = f"{partial.re_requests} requests for missing blocks unanswered (NON_MAX_RETRANSMIT)"
                    out.append(BodyAbandoned(partial.peer, key, reason))
                    continue
                partial.re_requests += 1
                partial.deadline = now + params.time_to_wait(partial.re_requests + 1)
                # Everything still missing that fits one packet: the client resends it before its next set
                # (§7.2), instead of one MAX_PAYLOADS' worth per doubling timeout.
                out.append(self._missing(partial, partial.blocks.missing(limit=MAX_MISSING_LISTED)))
        while self._ended and now - next(iter(self._ended.values()))[0] >= self.params.partial_timeout:
            self._ended.popitem(last=False)
        return out

    def reset(self, key: _Key, now: float) -> BodyAbandoned | None:
        """The client answered a 4.08 about body KEY with RST: it forgot the body's tokens, so it stopped sending it
        (RFC 9177 §4.3: the server SHOULD then delete the partial body). Its late blocks get a final 4.08."""
        partial = self._partial.get(key)
        if partial is None:
            return None
        self._drop(key, now)
        return BodyAbandoned(partial.peer, key, "reset: the client forgot the body (RFC 9177 §4.3)")

    def forget_peer(self, peer: Hashable) -> None:
        """PEER's session ended: its bodies can never complete."""
        for key in [key for key, partial in self._partial.items() if partial.peer == peer]:
            self._drop(key)

    def _remember(self, key: _Key, now: float, delivered: bool = True) -> None:
        self._ended[key] = (now, delivered)
        while len(self._ended) > self.limits.total:
            self._ended.popitem(last=False)

    def _evict_oldest_of(self, peer: Hashable, now: float) -> BodyAbandoned:
        # Only when PEER is at its bound: a scan of the bounded table, never on the ordinary path.
        key = next(key for key, partial in self._partial.items() if partial.peer == peer)
        self._drop(key, now)
        return BodyAbandoned(peer, key, f"evicted: the peer started more than {self.limits.per_peer} bodies")

    def _drop(self, key: _Key, abandoned_at: float | None = None) -> None:
        if abandoned_at is not None:  # its late blocks get a final 4.08 instead of starting the body over
            self._remember(key, abandoned_at, delivered=False)
        partial = self._partial.pop(key, None)
        if partial is not None:
            left = self._per_peer[partial.peer] - 1
            if left:
                self._per_peer[partial.peer] = left
            else:
                del self._per_peer[partial.peer]

    def _refuse(self, peer: Hashable, token: bytes, code: str, diagnostic: str, size1: int | None = None) -> Respond:
        self.refused[code] = self.refused.get(code, 0) + 1
        return Respond(peer, token, code, size1=size1, diagnostic=diagnostic)
