"""Which received CoAP messages are duplicates (RFC 7252 §4.5), remembered without a timer per message.

A recipient keeps each (remote, message ID) it received for EXCHANGE_LIFETIME (247 s) so a retransmission is not
acted on twice, and a repeated CON gets the same response again. aiocoap does this with one `loop.call_later` per
message; under uvloop that keeps ~930 bytes per message and costs ~6 µs once a few hundred thousand are pending
(`bench/dedup.py`), so a server under sustained load held hundreds of MB of timers. Here the entries wait in a FIFO
of (deadline, key): every message of an endpoint gets the same lifetime, so deadlines come in arrival order and
expiry only ever looks at the front. One timer, for the oldest entry, frees the memory of an idle server too.

Sans-I/O: the caller passes the time; opendots.transport.aiocoap_hooks plugs it into aiocoap's MessageManager.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any


class RecentMessages:
    """Messages received within their lifetime, with the response sent to each (None until there is one)."""

    def __init__(self) -> None:
        self.responses: dict[Hashable, Any] = {}
        self._deadlines: deque[tuple[float, Hashable]] = deque()

    def __len__(self) -> int:
        return len(self.responses)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.responses

    def remember(self, key: Hashable, now: float, lifetime: float) -> None:
        """KEY was just received (and is not a duplicate): keep it for LIFETIME seconds."""
        self.responses[key] = None
        self._deadlines.append((now + lifetime, key))

    def answered(self, key: Hashable, response: Any) -> None:
        """The response to KEY, sent again if KEY arrives again; ignored once KEY was forgotten."""
        if key in self.responses:
            self.responses[key] = response

    def expire(self, now: float) -> float | None:
        """Forget every entry whose lifetime has passed; returns the next deadline (None when empty).

        A key can only be remembered again after it was forgotten, so the entry popped here is always the key's
        current one: popping it never cuts a later reception short."""
        deadlines = self._deadlines
        responses = self.responses
        while deadlines and deadlines[0][0] <= now:
            responses.pop(deadlines.popleft()[1], None)
        return deadlines[0][0] if deadlines else None
