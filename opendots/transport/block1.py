"""Block1 (RFC 7959 §2.5) request-body assembly with the server's limits enforced on every block.

aiocoap's own spool checks nothing until the last block and grows the body by `bytes +=` (quadratic copying), so a
peer could stream megabytes before the body-size limit was ever looked at. Here the body is refused with 4.13 as
soon as the announced Size1 or the bytes received so far pass the limit, blocks are kept as a list and joined
once, a block out of sequence gets 4.08 Request Entity Incomplete, and the number of unfinished uploads is bounded
per peer (its oldest one makes room) and in all (new ones are refused with 5.03). Sans-I/O: time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

# RFC 7252 §4.8: MAX_TRANSMIT_WAIT, the longest a client may take to deliver one block with retransmissions.
UPLOAD_IDLE_TIMEOUT = 93.0
DEFAULT_PER_PEER = 4
DEFAULT_TOTAL = 256


@dataclass
class Continue:
    """Answer 2.31 Continue, echoing the block's Block1 option."""


@dataclass
class Refuse:
    code: str  # "4.13", "4.08", "4.00", "5.03"
    diagnostic: str
    size1: int | None = None  # for 4.13: the largest body the server takes (RFC 7959 §2.9.3)


@dataclass
class Complete:
    body: bytes


@dataclass
class _Upload:
    peer: Hashable
    chunks: list[bytes] = field(default_factory=list)
    received: int = 0
    last_seen: float = 0.0


class Block1Assembler:
    """Unfinished Block1 uploads keyed by (peer, request key); every block costs O(its own size)."""

    def __init__(
        self,
        max_body: int,
        *,
        per_peer: int = DEFAULT_PER_PEER,
        total: int = DEFAULT_TOTAL,
        idle_timeout: float = UPLOAD_IDLE_TIMEOUT,
    ) -> None:
        self.max_body = max_body
        self.per_peer = per_peer
        self.total = total
        self.idle_timeout = idle_timeout
        self._uploads: OrderedDict[Hashable, _Upload] = OrderedDict()  # least recently fed first
        self._per_peer: dict[Hashable, int] = {}
        self.refused: dict[str, int] = {}
        """Refusals by code (metrics and tests)."""

    def __len__(self) -> int:
        return len(self._uploads)

    def pending_bytes(self) -> int:
        return sum(upload.received for upload in self._uploads.values())

    def feed(
        self,
        peer: Hashable,
        key: Hashable,
        *,
        start: int,
        more: bool,
        payload: bytes,
        size1: int | None,
        now: float,
    ) -> Continue | Refuse | Complete:
        """One block of the body identified by KEY from PEER: START is its byte offset (block number x size), MORE
        its Block1 M bit; the caller has checked that a block with more to come has the size its option says."""
        self._expire(now)
        if start == 0:
            self._drop(key)  # a new body replaces an unfinished one with the same key (RFC 7959 §2.5)
            if size1 is not None and size1 > self.max_body:
                return self._refuse(key, "4.13", f"Size1 announces {size1} bytes; the limit is {self.max_body}")
            if len(payload) > self.max_body:
                return self._refuse(key, "4.13", f"the body exceeds the {self.max_body}-byte limit")
            if not more:
                return Complete(payload)
            if self._per_peer.get(peer, 0) >= self.per_peer:
                self._drop_oldest_of(peer)
            if len(self._uploads) >= self.total:
                return self._refuse(key, "5.03", "too many unfinished block-wise uploads; retry later")
            upload = _Upload(peer, [payload], len(payload), now)
            self._uploads[key] = upload
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            return Continue()
        upload = self._uploads.get(key)
        if upload is None:
            return self._refuse(key, "4.08", f"a block at byte {start} without the blocks before it")
        if start != upload.received:
            if start + len(payload) == upload.received and upload.chunks and upload.chunks[-1] == payload:
                upload.last_seen = now  # the last block again (its answer was lost): acknowledge it again
                return Continue()
            return self._refuse(key, "4.08", f"a block at byte {start}; the next expected starts at {upload.received}")
        if start + len(payload) > self.max_body:
            return self._refuse(key, "4.13", f"the body exceeds the {self.max_body}-byte limit")
        upload.chunks.append(payload)
        upload.received += len(payload)
        upload.last_seen = now
        self._uploads.move_to_end(key)
        if more:
            return Continue()
        self._drop(key)
        return Complete(b"".join(upload.chunks))

    def refuse(self, key: Hashable, code: str, diagnostic: str) -> Refuse:
        """Refuse a block the caller found malformed; the upload it belonged to is dropped."""
        return self._refuse(key, code, diagnostic)

    def _refuse(self, key: Hashable, code: str, diagnostic: str) -> Refuse:
        self._drop(key)
        self.refused[code] = self.refused.get(code, 0) + 1
        return Refuse(code, diagnostic, self.max_body if code == "4.13" else None)

    def _drop(self, key: Hashable) -> None:
        upload = self._uploads.pop(key, None)
        if upload is not None:
            left = self._per_peer[upload.peer] - 1
            if left:
                self._per_peer[upload.peer] = left
            else:
                del self._per_peer[upload.peer]

    def _drop_oldest_of(self, peer: Hashable) -> None:
        # Only reached when PEER is at its bound: a scan of the (bounded) table, never on the ordinary path.
        for key, upload in self._uploads.items():
            if upload.peer == peer:
                self._drop(key)
                return

    def _expire(self, now: float) -> None:
        uploads = self._uploads
        while uploads:
            key, upload = next(iter(uploads.items()))
            if now - upload.last_seen < self.idle_timeout:
                return
            self._drop(key)

    def forget_peer(self, peer: Any) -> None:
        """PEER's session ended: its unfinished uploads can never complete."""
        if peer in self._per_peer:
            for key in [key for key, upload in self._uploads.items() if upload.peer == peer]:
                self._drop(key)
