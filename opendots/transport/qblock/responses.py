"""A server's Q-Block2 response bodies in flight, kept so missing blocks can be sent again (RFC 9177 §4.4: the
server SHOULD keep a copy of the body), keyed by (peer, KEY) with KEY the shell's name for the resource/request.

A body is kept NON_PARTIAL_TIMEOUT after its last activity; a peer has at most QBlockLimits.per_peer of them (a new
one evicts its oldest) and the server QBlockLimits.total (the oldest anyone's goes). A new body for the same key
replaces the old one: a request for missing blocks then gets the new ETag's blocks (§4.4).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Hashable

from opendots.transport.qblock.events import SendBlock
from opendots.transport.qblock.options import BlockOption, QBlockError
from opendots.transport.qblock.params import QBlockLimits, QBlockParameters
from opendots.transport.qblock.sender import Q2Sender


class Q2Responses:
    def __init__(
        self, params: QBlockParameters, limits: QBlockLimits | None = None, rng: random.Random | None = None
    ) -> None:
        self.params = params
        self.limits = limits or QBlockLimits()
        self._rng = rng or random.Random()
        self._bodies: OrderedDict[tuple[Hashable, Hashable], tuple[Q2Sender, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def start(
        self,
        peer: Hashable,
        key: Hashable,
        body: bytes,
        *,
        etag: bytes,
        token: bytes,
        now: float,
        szx: int = 6,
        asked: BlockOption | None = None,
        params: QBlockParameters | None = None,
        confirmable: bool = False,
    ) -> list[SendBlock]:
        """Send BODY (tagged ETAG) as the response on TOKEN: its first MAX_PAYLOADS_SET now, the rest by poll().
        ASKED is the request's Q-Block2 option, if any: its size is the largest block the client takes, and without
        the M bit it asks for that one block only (§4.4), as libcoap's `-L 5` probe does with 0/_/16; the body is
        kept either way for the blocks asked for next. A block past the body raises QBlockError (4.00). PARAMS: the
        peer's own parameters (e.g. negotiated by RFC 9362) when they differ from these responses' defaults.
        CONFIRMABLE: the request was CON, so the body goes CON (§4.4; see Q2Sender)."""
        if asked is not None:
            szx = min(szx, asked.szx)
        full = (peer, key)
        self._bodies.pop(full, None)
        if sum(1 for p, _ in self._bodies if p == peer) >= self.limits.per_peer:
            del self._bodies[next(k for k in self._bodies if k[0] == peer)]
        while len(self._bodies) >= self.limits.total:
            self._bodies.popitem(last=False)
        sender = Q2Sender(
            body,
            params or self.params,
            token=token,
            now=now,
            szx=szx,
            rng=self._rng,
            peer=peer,
            key=key,
            confirmable=confirmable,
        )
        if asked is not None and not (asked.more and asked.num == 0):
            sender.deadline = None  # only what the request names goes out
            sent = sender.on_request([asked], token, now, recovery=False)
            self._bodies[full] = (sender, etag)
            return sent
        self._bodies[full] = (sender, etag)
        return sender.poll(now)

    def etag(self, peer: Hashable, key: Hashable) -> bytes | None:
        entry = self._bodies.get((peer, key))
        return entry[1] if entry else None

    def on_request(
        self, peer: Hashable, key: Hashable, options: list[BlockOption], *, token: bytes, now: float
    ) -> list[SendBlock] | None:
        """A request for blocks of the body kept for KEY; None when none is kept (the shell then builds the
        representation afresh and calls start()). Bad options raise QBlockError (answer 4.00)."""
        entry = self._bodies.get((peer, key))
        if entry is None:
            return None
        self._bodies.move_to_end((peer, key))
        return entry[0].on_request(options, token, now)

    def stop(self, peer: Hashable, token: bytes) -> int:
        """PEER answered a block sent on TOKEN with RST: it does not want that body any more (RFC 7252 §4.2), so
        nothing more of it goes out and it is not kept for requests for missing blocks. Returns how many stopped."""
        stopped = [full for full, (sender, _) in self._bodies.items() if full[0] == peer and sender.token == token]
        for full in stopped:
            del self._bodies[full]
        return len(stopped)

    def forget_peer(self, peer: Hashable) -> None:
        """PEER's session ended: nobody can ask for its bodies' missing blocks any more."""
        for full in [full for full in self._bodies if full[0] == peer]:
            del self._bodies[full]

    def next_deadline(self) -> float | None:
        # A body's own next set, or its expiry NON_PARTIAL_TIMEOUT after it was last asked for.
        deadlines = [
            _either(sender.next_deadline(), sender.last_activity + sender.params.partial_timeout)
            for sender, _ in self._bodies.values()
        ]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> list[SendBlock]:
        out: list[SendBlock] = []
        for full, (sender, _) in list(self._bodies.items()):
            if now - sender.last_activity >= sender.params.partial_timeout:
                del self._bodies[full]
            else:
                out += sender.poll(now)
        return out


def _either(deadline: float | None, otherwise: float) -> float:
    return otherwise if deadline is None else deadline


def is_recovery(options: list[BlockOption]) -> bool:
    """Whether a request's Q-Block2 options ask for blocks of a body already sent (rather than 0/M: a new one)."""
    return bool(options) and not (len(options) == 1 and options[0].num == 0 and options[0].more)


__all__ = ["Q2Responses", "QBlockError", "is_recovery"]
