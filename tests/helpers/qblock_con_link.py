"""RFC 7252's message layer in miniature, for the Q-Block figures with CON and reliable transports (RFC 9177
Appendices A and B): the Q-Block engines (opendots.transport.qblock) at both ends, CON/ACK, NSTART, retransmission
and deduplication here, as aiocoap's message layer does it for our shells. Deterministic: no jitter (ACK_TIMEOUT
exactly 2 s, doubling), every message takes LATENCY, LOSE(line, nth) decides which copies vanish (nth counts the
copies of that line, from 1: a retransmission is the same line again).

Every message lands in `trace` as the figure prints it, `→ CON PUT /path M:0x01 T:0xf0 RT=10 QB1:0/1/1024` from the
client or `← ACK 0.00 M:0x01` from the server (`→✗`, `←✗` when lost), in the order each side sent them. Between the
two directions the order depends on latencies the figures do not fix, so `direction(trace, arrow)` gives each one's
own sequence to compare with the figure's.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from opendots.transport.qblock import BlockOption

ACK_TIMEOUT = 2.0
MAX_RETRANSMIT = 4
NSTART = 3  # "The following examples assume NSTART has been increased to 3" (Appendix A)
LATENCY = 0.05

Lose = Callable[[str, int], bool]
# What a receiving end does with a CON: the ACK's code and the rest of its line, and what its arrival does.
Handler = Callable[["Con"], tuple[str, str, Callable[[], None] | None]]


def never(line: str, nth: int) -> bool:
    return False


def qb(name: str, option: BlockOption) -> str:
    """An option as the figures print it: QB1:0/1/1024."""
    return f"{name}:{option.num}/{int(option.more)}/{option.size}"


class Wire:
    def __init__(self, lose: Lose = never) -> None:
        self.now = 0.0
        self.lose = lose
        self.trace: list[str] = []
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._copies: Counter[str] = Counter()
        self.timers: list[tuple[Callable[[], float | None], Callable[[float], None]]] = []  # (deadline, poll)

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def transmit(self, arrow: str, line: str, arrives: Callable[[], None]) -> None:
        self._copies[line] += 1
        lost = self.lose(line, self._copies[line])
        self.trace.append(f"{arrow}{'✗' if lost else ''} {line}")
        if not lost:
            self.at(self.now + LATENCY, arrives)

    def run(self, until: float) -> None:
        """Deliver and fire everything due up to UNTIL (the engines' timers included), in time order; the clock
        then reads UNTIL."""
        while True:
            due = [d for deadline, _ in self.timers if (d := deadline()) is not None]
            engine_next = min(due) if due else None
            event_next = self._events[0][0] if self._events else None
            if event_next is not None and (engine_next is None or event_next <= engine_next):
                if event_next > until:
                    break
                self.now, _, action = heapq.heappop(self._events)
                action()
            elif engine_next is not None and engine_next <= until:
                self.now = max(self.now, engine_next)
                for deadline, poll in self.timers:
                    if (d := deadline()) is not None and d <= self.now:
                        poll(self.now)
            else:
                break
        self.now = max(self.now, until)


@dataclass
class Con:
    mid: int
    code: str  # "PUT /path", "2.05"
    rest: str  # "T:0xf0 RT=10 QB1:0/1/1024"
    payload: object  # what the receiving engine is given (the handler knows its shape)

    def line(self, mtype: str = "CON") -> str:
        return f"{mtype} {self.code} M:{self.mid:#04x} {self.rest}".rstrip()


class MessageLayer:
    """One end's CON sending (NSTART, retransmission, giving up after MAX_RETRANSMIT) and CON receiving (an ACK for
    each, the same ACK again for a duplicate, RFC 7252 §4.5)."""

    def __init__(self, wire: Wire, arrow: str, first_mid: int) -> None:
        self.wire = wire
        self.arrow = arrow
        self.peer: MessageLayer | None = None
        self.handler: Handler | None = None
        self._mids = itertools.count(first_mid)
        self._outstanding: dict[int, Con] = {}
        self._held: deque[Con] = deque()
        self._answered: dict[int, tuple[str, str, Callable[[], None] | None]] = {}
        self.given_up: list[int] = []

    def send(self, code: str, rest: str, payload: object) -> None:
        message = Con(next(self._mids), code, rest, payload)
        if len(self._outstanding) < NSTART:
            self._start(message)
        else:
            self._held.append(message)

    def _start(self, message: Con) -> None:
        self._outstanding[message.mid] = message
        self._transmit(message, 0)

    def _transmit(self, message: Con, attempt: int) -> None:
        assert self.peer is not None
        peer = self.peer
        self.wire.transmit(self.arrow, message.line(), lambda: peer._receive(message))
        self.wire.at(self.wire.now + ACK_TIMEOUT * 2**attempt, lambda: self._timeout(message, attempt))

    def _timeout(self, message: Con, attempt: int) -> None:
        if message.mid not in self._outstanding:
            return
        if attempt < MAX_RETRANSMIT:
            self._transmit(message, attempt + 1)
        else:  # the exchange failed: the next held-back CON may go
            del self._outstanding[message.mid]
            self.given_up.append(message.mid)
            self._release()

    def _acked(self, mid: int) -> None:
        if self._outstanding.pop(mid, None) is not None:
            self._release()

    def _release(self) -> None:
        while self._held and len(self._outstanding) < NSTART:
            self._start(self._held.popleft())

    def _receive(self, message: Con) -> None:
        assert self.handler is not None and self.peer is not None
        answer = self._answered.get(message.mid)
        if answer is None:  # a duplicate gets the same ACK and is not handed up again
            answer = self._answered[message.mid] = self.handler(message)
        code, rest, arrives = answer
        peer = self.peer
        line = f"ACK {code} M:{message.mid:#04x} {rest}".rstrip()

        def ack_arrives() -> None:
            peer._acked(message.mid)
            if arrives is not None:
                arrives()

        self.wire.transmit(self.arrow, line, ack_arrives)


def pair(wire: Wire, client_mid: int, server_mid: int) -> tuple[MessageLayer, MessageLayer]:
    client, server = MessageLayer(wire, "→", client_mid), MessageLayer(wire, "←", server_mid)
    client.peer, server.peer = server, client
    return client, server


def direction(trace: list[str], arrow: str) -> list[str]:
    """One side's own sequence of messages (lost ones included)."""
    return [line for line in trace if line.startswith(arrow)]
