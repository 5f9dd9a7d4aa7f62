"""What both directions share: a body cut into blocks, and a body put together from blocks (RFC 9177 §4.3, §4.4).

Blocks are grouped in MAX_PAYLOADS_SETs: set k holds blocks k x MAX_PAYLOADS to (k+1) x MAX_PAYLOADS - 1.
Size1/Size2 MUST state the exact body size in every payload (§4.6), so a receiver knows from its first payload how
many blocks there are, and checks every later one against that: a peer cannot make it store more than it announced.
"""

from __future__ import annotations

from opendots.transport.qblock.options import BlockOption, QBlockError


def block_count(size: int, block_size: int) -> int:
    return max(1, -(-size // block_size))  # an empty body is one empty block


class OutgoingBody:
    """A body to send, cut into blocks of 2**(SZX+4) bytes; each block is sliced when sent, never copied ahead."""

    def __init__(self, body: bytes, szx: int) -> None:
        self.body = body
        self.szx = szx
        self.block_size = 16 << szx
        self.count = block_count(len(body), self.block_size)

    def option(self, num: int) -> BlockOption:
        return BlockOption(num, num < self.count - 1, self.szx)

    def payload(self, num: int) -> bytes:
        return self.body[num * self.block_size : (num + 1) * self.block_size]


class Reassembly:
    """The blocks of one incoming body received so far; adding a block is O(its size), finding the first missing
    blocks is amortised over the whole transfer (a pointer only moves forward)."""

    def __init__(self, size: int, szx: int, max_payloads: int) -> None:
        self.size = size
        self.szx = szx
        self.block_size = 16 << szx
        self.count = block_count(size, self.block_size)
        self.max_payloads = max_payloads
        self._blocks: dict[int, bytes] = {}
        self._per_set: dict[int, int] = {}
        self._first_missing = 0
        self.highest_set = -1  # the highest MAX_PAYLOADS_SET a block arrived from
        self.scanned = 0  # block numbers looked at by missing(): the work a peer can cause, counted for tests

    def check(self, option: BlockOption, payload: bytes, size: int | None) -> None:
        """Refuse a block that does not belong to this body (QBlockError with a 4.00 and the reason)."""
        if size != self.size:
            raise QBlockError("4.00", f"Size1/Size2 {size} differs from {self.size} announced earlier (RFC 9177 §4.6)")
        if option.szx != self.szx:
            raise QBlockError("4.00", f"block size {option.size} differs from {self.block_size} used earlier")
        if option.num >= self.count:
            raise QBlockError("4.00", f"block {option.num} is past the end of a {self.size}-byte body")
        last = option.num == self.count - 1
        if option.more == last:
            raise QBlockError("4.00", f"block {option.num} has M={int(option.more)}, which contradicts Size {size}")
        expected = self.size - option.num * self.block_size if last else self.block_size
        if len(payload) != expected:
            raise QBlockError("4.00", f"block {option.num} carries {len(payload)} bytes where {expected} belong")

    def add(self, option: BlockOption, payload: bytes) -> bool:
        """Store a checked block; False for a duplicate (its payload is ignored, RFC 9177 §4.3)."""
        num = option.num
        if num in self._blocks:
            return False
        self._blocks[num] = payload
        which = num // self.max_payloads
        self._per_set[which] = self._per_set.get(which, 0) + 1
        self.highest_set = max(self.highest_set, which)
        while self._first_missing in self._blocks:
            self._first_missing += 1
        return True

    def __contains__(self, num: int) -> bool:
        return num in self._blocks

    @property
    def complete(self) -> bool:
        return self._first_missing >= self.count

    @property
    def received(self) -> int:
        return len(self._blocks)

    def set_of(self, num: int) -> int:
        return num // self.max_payloads

    def set_range(self, which: int) -> range:
        return range(which * self.max_payloads, min((which + 1) * self.max_payloads, self.count))

    def set_complete(self, which: int) -> bool:
        return self._per_set.get(which, 0) == len(self.set_range(which))

    def is_last_set(self, which: int) -> bool:
        return (which + 1) * self.max_payloads >= self.count

    def missing(self, start: int = 0, stop: int | None = None, limit: int | None = None) -> list[int]:
        """Block numbers not yet received in [START, STOP), ascending, at most LIMIT of them."""
        stop = self.count if stop is None else min(stop, self.count)
        limit = self.max_payloads if limit is None else limit
        found: list[int] = []
        for num in range(max(start, self._first_missing), stop):
            self.scanned += 1
            if num not in self._blocks:
                found.append(num)
                if len(found) >= limit:
                    break
        return found

    def first_missing(self) -> int:
        return self._first_missing

    def body(self) -> bytes:
        return b"".join(self._blocks[num] for num in range(self.count))
