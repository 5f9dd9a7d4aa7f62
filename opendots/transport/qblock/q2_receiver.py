"""A client receiving response bodies sent with Q-Block2 (RFC 9177 §4.4, §7.2), keyed by the shell's KEY (e.g. the
token of the original request, which Observe notifications keep) and checked against their ETag and Size2.

When a MAX_PAYLOADS_SET is whole and nothing of the next one has come, the client sends the 'Continue' Q-Block2;
when a payload from a later set shows an earlier set incomplete, it asks for the missing blocks at once; otherwise
it asks after NON_RECEIVE_TIMEOUT (doubling per repeat) for the missing blocks of the earliest incomplete set (a
run reaching the end of its set as one `n/M` option, §10.2.4), and gives up after NON_MAX_RETRANSMIT requests.
A payload with a new ETag replaces a partial body (§4.4). Responses cannot be refused, so bad ones are Rejected.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from opendots.transport.qblock.body import Reassembly
from opendots.transport.qblock.events import BodyAbandoned, BodyComplete, Rejected, RequestBlocks
from opendots.transport.qblock.options import BlockOption, QBlockError
from opendots.transport.qblock.params import QBlockLimits, QBlockParameters

Output = RequestBlocks | BodyComplete | BodyAbandoned | Rejected


@dataclass
class _Partial:
    etag: bytes
    blocks: Reassembly
    last_progress: float
    deadline: float
    lifetime: float
    re_requests: int = 0
    reported_below: int = 0
    listed: tuple[int, ...] = ()  # the blocks the last request named


class Q2Receiver:
    def __init__(self, params: QBlockParameters, limits: QBlockLimits | None = None) -> None:
        self.params = params
        self.limits = limits or QBlockLimits()
        self._partial: OrderedDict[Hashable, _Partial] = OrderedDict()

    def __len__(self) -> int:
        return len(self._partial)

    def on_block(
        self,
        key: Hashable,
        *,
        etag: bytes | None,
        option: BlockOption,
        payload: bytes,
        size2: int | None,
        now: float,
        max_age: float | None = None,
    ) -> list[Output]:
        """One response payload carrying Q-Block2 OPTION. MAX_AGE (the response's Max-Age option, if any) shortens
        how long a partial body is kept below NON_PARTIAL_TIMEOUT (§4.4)."""
        out: list[Output] = []
        if etag is None or size2 is None:
            return [Rejected(key, "Q-Block2 response without ETag or Size2 (RFC 9177 §4.4, §4.6)")]
        partial = self._partial.get(key)
        if partial is not None and partial.etag != etag:
            self._partial.pop(key)
            out.append(
                BodyAbandoned(None, key, "replaced by a body with a new ETag (RFC 9177 §4.4)", replaced=partial.etag)
            )
            partial = None
        if partial is None:
            diagnostic = self.limits.too_large(size2, option.size)
            if diagnostic is not None:
                return [*out, Rejected(key, diagnostic)]
            try:
                blocks = Reassembly(size2, option.szx, self.params.max_payloads)
                blocks.check(option, payload, size2)
            except QBlockError as error:
                return [*out, Rejected(key, error.diagnostic)]
            if len(self._partial) >= self.limits.total:
                oldest, _ = self._partial.popitem(last=False)
                out.append(BodyAbandoned(None, oldest, f"evicted: more than {self.limits.total} bodies in progress"))
            lifetime = min(self.params.partial_timeout, 60.0 if max_age is None else max_age)
            partial = _Partial(etag, blocks, now, now + self.params.time_to_wait(1), lifetime)
            self._partial[key] = partial
        else:
            try:
                partial.blocks.check(option, payload, size2)
            except QBlockError as error:
                return [*out, Rejected(key, error.diagnostic)]
        return out + self._add(key, partial, option, payload, now)

    def _add(self, key: Hashable, partial: _Partial, option: BlockOption, payload: bytes, now: float) -> list[Output]:
        blocks = partial.blocks
        if not blocks.add(option, payload):
            return []  # a duplicate with the same ETag: silently ignored (§4.4)
        partial.last_progress = now
        partial.re_requests = 0
        partial.deadline = now + self.params.time_to_wait(1)
        self._partial.move_to_end(key)
        if blocks.complete:
            del self._partial[key]
            return [BodyComplete(None, key, partial.etag, blocks.body())]
        mp = self.params.max_payloads
        which = blocks.set_of(option.num)
        if which > partial.reported_below:
            # "any missing payloads from any previous MAX_PAYLOADS_SET" (§7.2): the sets not looked at yet, and
            # what an earlier request named that has not come (its answer lost too), which otherwise waited for
            # the doubling timer, one set per request (a 1 MiB body at 30 % loss never finished within 60 s).
            again = [num for num in partial.listed if num < which * mp and num not in blocks]
            fresh = blocks.missing(partial.reported_below * mp, which * mp)
            partial.reported_below = which
            missing = sorted(set(again).union(fresh))[:mp]  # the server sends a MAX_PAYLOADS_SET per request
            if missing:
                return [self._request(key, partial, missing)]
        if blocks.set_complete(which) and not blocks.is_last_set(which) and blocks.highest_set == which:
            return [RequestBlocks(key, (BlockOption((which + 1) * mp, True, blocks.szx),), continue_=True)]
        return []

    def _request(self, key: Hashable, partial: _Partial, missing: list[int]) -> RequestBlocks:
        partial.listed = tuple(missing)
        return RequestBlocks(key, self._compose(partial.blocks, missing))

    def _compose(self, blocks: Reassembly, missing: list[int]) -> tuple[BlockOption, ...]:
        """Q-Block2 options for MISSING (ascending): a run of two or more that reaches the end of its set becomes
        one `n/M` (§4.4: n and the rest of its set, §10.2.4), any other block its own `n/_`."""
        options: list[BlockOption] = []
        i = 0
        while i < len(missing):
            num = missing[i]
            end = blocks.set_range(blocks.set_of(num))[-1]
            j = i
            while j + 1 < len(missing) and missing[j + 1] == missing[j] + 1 and missing[j + 1] <= end:
                j += 1
            # n/M with n starting a set is 'Continue' (that whole set, on the original exchange): right for a set
            # lost entirely; 0/M would ask for the whole body again, so block 0 is never folded.
            if j > i and missing[j] == end and num != 0:
                options.append(BlockOption(num, True, blocks.szx))
                i = j + 1
            else:
                options.append(BlockOption(num, False, blocks.szx))
                i += 1
        return tuple(options)

    def next_deadline(self) -> float | None:
        deadlines = [partial.deadline for partial in self._partial.values()]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> list[Output]:
        out: list[Output] = []
        for key, partial in list(self._partial.items()):
            if now < partial.deadline:
                continue  # the lifetime is checked at the request timer, which always runs while a body is partial
            if partial.re_requests >= self.params.non_max_retransmit:
                del self._partial[key]
                reason = f"{partial.re_requests} requests for missing blocks unanswered (NON_MAX_RETRANSMIT)"
                out.append(BodyAbandoned(None, key, reason))
            elif now - partial.last_progress > partial.lifetime:
                del self._partial[key]
                out.append(BodyAbandoned(None, key, "kept longer than NON_PARTIAL_TIMEOUT or Max-Age (§4.4)"))
            else:
                partial.re_requests += 1
                partial.deadline = now + self.params.time_to_wait(partial.re_requests + 1)
                # A MAX_PAYLOADS_SET's worth of what is known missing (below the highest set seen), whichever sets
                # it is in: it was the earliest incomplete set's only, one set per doubling timeout. Sets past the
                # highest seen may not have been sent yet: a set with nothing seen is asked for as 'n/M' (§4.4).
                blocks = partial.blocks
                missing = blocks.missing(0, (blocks.highest_set + 1) * self.params.max_payloads)
                if not missing:
                    first = blocks.first_missing()
                    missing = blocks.missing(first, blocks.set_range(blocks.set_of(first)).stop)
                out.append(self._request(key, partial, missing))
        return out

    def forget(self, key: Hashable) -> None:
        """The shell gave up on KEY (e.g. the observation was cancelled)."""
        self._partial.pop(key, None)
