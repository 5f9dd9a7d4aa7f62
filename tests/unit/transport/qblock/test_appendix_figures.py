"""RFC 9177 Appendix A (CON, Figures 16-18) and Appendix B (reliable transports, Figures 19-20): each figure's message
sequence between the sans-I/O engines, with the CoAP message layer of RFC 7252 played by tests/helpers/qblock_con_link
(NSTART 3, ACK_TIMEOUT 2 s doubling, MAX_RETRANSMIT 4) and the figure's losses applied deterministically.

Q-Block1 over CON or a reliable transport: the client sends every block (the message layer paces CONs), the server's
Q1Receiver (reliable=True, as our server takes a CON block) answers nothing until the body is whole: no 2.31 and no
4.08 listing missing blocks (§4.3, §5). Q-Block2 for a CON request: the server's Q2Responses hands every block over
at once, CON, for the message layer to pace (§4.4, §7.1). (Over CoAP over TLS our transport does not use Q-Block:
RFC 9177 §3 sees little gain there; Appendix B is checked at the engine level.)"""

from __future__ import annotations

import random

from opendots.transport.qblock import (
    BlockOption,
    BodyAbandoned,
    BodyComplete,
    Q1Receiver,
    Q2Receiver,
    Q2Responses,
    QBlockParameters,
    RequestBlocks,
)
from opendots.transport.qblock.body import OutgoingBody
from tests.helpers.qblock_con_link import Con, Wire, direction, pair, qb
from tests.unit.transport.qblock.link import body_of

PARAMS = QBlockParameters()
PEER = "client"


class Q1Server:
    """The server end of a Q-Block1 body over CON or a reliable transport: its Q1Receiver and what it answered."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.receiver = Q1Receiver(PARAMS)
        self.bodies: list[bytes] = []
        self.others: list[object] = []  # anything else the engine said (a 2.31 or 4.08 would land here)
        wire.timers.append((self.receiver.next_deadline, self.poll))

    def block(self, token: int, option: BlockOption, payload: bytes, size: int) -> str:
        """The answer to one block: the final code once the body is whole, else none (the empty ACK)."""
        answer = "0.00"
        for event in self.receiver.on_block(
            PEER,
            token=bytes([token]),
            request_tag=b"\x0a",
            option=option,
            payload=payload,
            size1=size,
            now=self.wire.now,
            reliable=True,
        ):
            if isinstance(event, BodyComplete):
                self.bodies.append(event.body)
                answer = "2.04"
            else:
                self.others.append(event)
        return answer

    def poll(self, now: float) -> None:
        self.others += self.receiver.poll(now)


def put_con(body: bytes, *, first_mid: int, first_token: int, tag: int, lose) -> tuple[Wire, Q1Server, list[str]]:
    wire = Wire(lose)
    client, server_layer = pair(wire, first_mid, 0xE1)
    server = Q1Server(wire)

    def handler(message: Con) -> tuple[str, str, None]:
        token, option, payload = message.payload  # type: ignore[misc]
        return server.block(token, option, payload, len(body)), "", None

    server_layer.handler = handler
    out = OutgoingBody(body, 6)
    for num in range(out.count):
        option = out.option(num)
        rest = f"T:{first_token + num:#04x} RT={tag} {qb('QB1', option)}"
        client.send("PUT /path", rest, (first_token + num, option, out.payload(num)))
    return wire, server, client.given_up  # type: ignore[return-value]


def test_figure_16_a_con_put_of_four_blocks_is_acked_block_by_block_and_answered_2_04_on_the_last_ack() -> None:
    body = body_of(4)
    wire, server, _ = put_con(body, first_mid=0x01, first_token=0xF0, tag=10, lose=lambda line, nth: False)
    wire.run(until=300.0)
    assert direction(wire.trace, "→") == [
        "→ CON PUT /path M:0x01 T:0xf0 RT=10 QB1:0/1/1024",
        "→ CON PUT /path M:0x02 T:0xf1 RT=10 QB1:1/1/1024",
        "→ CON PUT /path M:0x03 T:0xf2 RT=10 QB1:2/1/1024",
        # [[NSTART(3) limit reached]]: the fourth waits for the first ACK
        "→ CON PUT /path M:0x04 T:0xf3 RT=10 QB1:3/0/1024",
    ]
    assert direction(wire.trace, "←") == [
        "← ACK 0.00 M:0x01",
        "← ACK 0.00 M:0x02",
        "← ACK 0.00 M:0x03",
        "← ACK 2.04 M:0x04",
    ]
    assert wire.trace.index("→ CON PUT /path M:0x04 T:0xf3 RT=10 QB1:3/0/1024") > wire.trace.index("← ACK 0.00 M:0x01")
    assert server.bodies == [body] and server.others == []  # no 2.31, no 4.08 over CON (§4.3)


def figure_17_loss(m7_copies_lost: int):
    def lose(line: str, nth: int) -> bool:
        if line == "CON PUT /path M:0x06 T:0xf5 RT=11 QB1:1/1/1024":
            return nth == 1
        return line == "CON PUT /path M:0x07 T:0xf6 RT=11 QB1:2/1/1024" and nth <= m7_copies_lost

    return lose


FIGURE_17_CLIENT = [
    "→ CON PUT /path M:0x05 T:0xf4 RT=11 QB1:0/1/1024",
    "→✗ CON PUT /path M:0x06 T:0xf5 RT=11 QB1:1/1/1024",
    "→✗ CON PUT /path M:0x07 T:0xf6 RT=11 QB1:2/1/1024",
    # [[NSTART(3) limit reached]]
    "→ CON PUT /path M:0x08 T:0xf7 RT=11 QB1:3/1/1024",
    "→ CON PUT /path M:0x09 T:0xf8 RT=11 QB1:4/0/1024",  # the body's last block, which the figure leaves out
    # [[ACK TIMEOUT (client) for M:0x06 delay expires]]
    "→ CON PUT /path M:0x06 T:0xf5 RT=11 QB1:1/1/1024",
    # [[ACK TIMEOUT (client) for M:0x07 delay expires]]
    "→✗ CON PUT /path M:0x07 T:0xf6 RT=11 QB1:2/1/1024",
    # [[ACK TIMEOUT exponential backoff (client) delay expires]]
    "→✗ CON PUT /path M:0x07 T:0xf6 RT=11 QB1:2/1/1024",
]


def test_figure_17_blocks_lost_on_con_are_retransmitted_by_the_message_layer_and_the_body_completes() -> None:
    body = body_of(5)
    wire, server, given_up = put_con(body, first_mid=0x05, first_token=0xF4, tag=11, lose=figure_17_loss(3))
    wire.run(until=300.0)
    assert direction(wire.trace, "→") == [*FIGURE_17_CLIENT, "→ CON PUT /path M:0x07 T:0xf6 RT=11 QB1:2/1/1024"]
    assert direction(wire.trace, "←") == [
        "← ACK 0.00 M:0x05",
        "← ACK 0.00 M:0x08",
        "← ACK 0.00 M:0x09",
        "← ACK 0.00 M:0x06",
        "← ACK 2.04 M:0x07",  # [[... or successfully transmitted]]
    ]
    assert server.bodies == [body] and server.others == [] and given_up == []


def test_figure_17_a_block_never_acked_ends_the_exchange_and_the_server_drops_the_partial_body_silently() -> None:
    body = body_of(5)
    wire, server, given_up = put_con(body, first_mid=0x05, first_token=0xF4, tag=11, lose=figure_17_loss(5))
    wire.run(until=3600.0)
    m7 = "→✗ CON PUT /path M:0x07 T:0xf6 RT=11 QB1:2/1/1024"
    assert direction(wire.trace, "→") == [*FIGURE_17_CLIENT, m7, m7]  # 1 + MAX_RETRANSMIT copies, all lost
    assert given_up == [0x07]  # [[Either body transmission failure (acknowledge retry timeout) ...]]
    assert direction(wire.trace, "←") == [
        "← ACK 0.00 M:0x05",
        "← ACK 0.00 M:0x08",
        "← ACK 0.00 M:0x09",
        "← ACK 0.00 M:0x06",
    ]
    assert server.bodies == []
    # The server asked for nothing over CON (no 4.08 listing block 2): it let the body go after NON_PARTIAL_TIMEOUT.
    assert [type(event) for event in server.others] == [BodyAbandoned]
    assert len(server.receiver) == 0


class Q2Ends:
    """A server sending Q-Block2 bodies for a CON GET with Observe (its Q2Responses), and the client putting them
    together (its Q2Receiver); the client asks for what is still missing with a CON GET of its own (§4.4)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.client, self.server = pair(wire, 0x01, 0xE1)
        self.responses = Q2Responses(PARAMS, rng=random.Random(1))
        self.receiver = Q2Receiver(PARAMS)
        self.got: list[tuple[bytes, bytes]] = []
        self.observe = 1234
        self.etag = 21
        self.tokens = iter(range(0xF1, 0x100))
        self.client.handler = self.client_gets
        self.server.handler = self.server_gets
        wire.timers.append((self.receiver.next_deadline, self.client_polls))

    def label(self, block, observe: bool = True) -> str:
        seen = f" O:{self.observe}" if observe and not block.recovery else ""
        return f"T:{block.token[0]:#04x}{seen} ET={self.etag} {qb('QB2', block.option)}"

    def server_gets(self, request: Con) -> tuple[str, str, object]:
        token, options, body = request.payload  # type: ignore[misc]
        if body is not None:  # the GET with Observe: the first body, block 0 piggybacked on the ACK
            blocks = self.responses.start(
                PEER, "/path", body, etag=bytes([self.etag]), token=token, now=self.wire.now, confirmable=True
            )
        else:
            blocks = self.responses.on_request(PEER, "/path", options, token=token, now=self.wire.now) or []
        first, rest = blocks[0], blocks[1:]
        self.wire.at(self.wire.now, lambda: self.send_blocks(rest))  # after the ACK carrying the first
        return "2.05", self.label(first), self.delivery(first)

    def notify(self, body: bytes) -> None:
        """[[Observe triggered]]: a new body, a new ETag, every block CON on the observation's token."""
        self.observe += 1
        self.etag += 1
        self.send_blocks(
            self.responses.start(
                PEER, "/path", body, etag=bytes([self.etag]), token=b"\xf0", now=self.wire.now, confirmable=True
            )
        )

    def send_blocks(self, blocks) -> None:
        for block in blocks:
            assert block.confirmable
            self.server.send("2.05", self.label(block), block)

    def delivery(self, block, etag: int | None = None):
        etag = self.etag if etag is None else etag
        return lambda: self.client_takes(block, etag)

    def client_gets(self, response: Con) -> tuple[str, str, None]:
        self.client_takes(response.payload, int(response.rest.split("ET=")[1].split()[0]))
        return "0.00", "", None

    def client_takes(self, block, etag: int) -> None:
        self.handle(
            self.receiver.on_block(
                "/path",
                etag=bytes([etag]),
                option=block.option,
                payload=block.payload,
                size2=block.size,
                now=self.wire.now,
            )
        )

    def client_polls(self, now: float) -> None:
        self.handle(self.receiver.poll(now))

    def handle(self, events) -> None:
        for event in events:
            if isinstance(event, BodyComplete):
                self.got.append((event.tag, event.body))
            elif isinstance(event, RequestBlocks):
                token = next(self.tokens)
                asked = " ".join(qb("QB2", option) for option in event.options)
                self.client.send("GET /path", f"T:{token:#04x} {asked}", (bytes([token]), list(event.options), None))

    def get(self, body: bytes) -> None:
        self.client.send("GET /path", "T:0xf0 O:0 QB2:0/1/1024", (b"\xf0", [BlockOption(0, True, 6)], body))


def test_figure_18_con_notifications_go_con_block_by_block_and_a_block_the_server_gave_up_on_is_asked_for() -> None:
    lost = {
        "CON 2.05 M:0xe9 T:0xf0 O:1236 ET=23 QB2:1/1/1024": 1,
        "CON 2.05 M:0xea T:0xf0 O:1236 ET=23 QB2:2/1/1024": 5,
    }
    wire = Wire(lambda line, nth: nth <= lost.get(line, 0))
    ends = Q2Ends(wire)
    bodies = [bytes((b + n) % 256 for b in body_of(4)) for n in range(3)]
    ends.get(bodies[0])
    wire.run(until=10.0)
    ends.notify(bodies[1])
    wire.run(until=20.0)
    ends.notify(bodies[2])
    wire.run(until=26.02)  # the figure ends with the second retransmission of M:0xea, lost
    assert direction(wire.trace, "→") == [
        "→ CON GET /path M:0x01 T:0xf0 O:0 QB2:0/1/1024",
        "→ ACK 0.00 M:0xe1",
        "→ ACK 0.00 M:0xe2",
        "→ ACK 0.00 M:0xe3",
        # [[Observe triggered]]
        "→ ACK 0.00 M:0xe4",
        "→ ACK 0.00 M:0xe5",
        "→ ACK 0.00 M:0xe6",
        "→ ACK 0.00 M:0xe7",
        # [[Observe triggered]]
        "→ ACK 0.00 M:0xe8",
        "→ ACK 0.00 M:0xeb",
        "→ ACK 0.00 M:0xe9",
    ]
    assert direction(wire.trace, "←") == [
        "← ACK 2.05 M:0x01 T:0xf0 O:1234 ET=21 QB2:0/1/1024",
        "← CON 2.05 M:0xe1 T:0xf0 O:1234 ET=21 QB2:1/1/1024",
        "← CON 2.05 M:0xe2 T:0xf0 O:1234 ET=21 QB2:2/1/1024",
        "← CON 2.05 M:0xe3 T:0xf0 O:1234 ET=21 QB2:3/0/1024",
        "← CON 2.05 M:0xe4 T:0xf0 O:1235 ET=22 QB2:0/1/1024",
        "← CON 2.05 M:0xe5 T:0xf0 O:1235 ET=22 QB2:1/1/1024",
        "← CON 2.05 M:0xe6 T:0xf0 O:1235 ET=22 QB2:2/1/1024",
        # [[NSTART(3) limit reached]]
        "← CON 2.05 M:0xe7 T:0xf0 O:1235 ET=22 QB2:3/0/1024",
        "← CON 2.05 M:0xe8 T:0xf0 O:1236 ET=23 QB2:0/1/1024",
        "←✗ CON 2.05 M:0xe9 T:0xf0 O:1236 ET=23 QB2:1/1/1024",
        "←✗ CON 2.05 M:0xea T:0xf0 O:1236 ET=23 QB2:2/1/1024",
        # [[NSTART(3) limit reached]]
        "← CON 2.05 M:0xeb T:0xf0 O:1236 ET=23 QB2:3/0/1024",
        # [[ACK TIMEOUT (server) for M:0xe9 delay expires]]
        "← CON 2.05 M:0xe9 T:0xf0 O:1236 ET=23 QB2:1/1/1024",
        # [[ACK TIMEOUT (server) for M:0xea delay expires]]
        "←✗ CON 2.05 M:0xea T:0xf0 O:1236 ET=23 QB2:2/1/1024",
        # [[ACK TIMEOUT exponential backoff (server) delay expires]]
        "←✗ CON 2.05 M:0xea T:0xf0 O:1236 ET=23 QB2:2/1/1024",
    ]
    assert ends.got == [(bytes([21]), bodies[0]), (bytes([22]), bodies[1])]
    # "[[Either body transmission failure ... or successfully transmitted]]": every copy of block 2 is lost, the
    # server's message layer gives up on it; the client asks for that block alone (§4.4: "a separate GET ... for
    # any missing blocks"), without Observe (§4.5), and gets it piggybacked, with the body's ETag.
    wire.run(until=300.0)
    assert direction(wire.trace, "→")[11:] == ["→ CON GET /path M:0x02 T:0xf1 QB2:2/0/1024"]
    assert direction(wire.trace, "←")[15:] == [
        "← ACK 2.05 M:0x02 T:0xf1 ET=23 QB2:2/1/1024",
        "←✗ CON 2.05 M:0xea T:0xf0 O:1236 ET=23 QB2:2/1/1024",
        "←✗ CON 2.05 M:0xea T:0xf0 O:1236 ET=23 QB2:2/1/1024",
    ]
    assert ends.got[2] == (bytes([23]), bodies[2])
    assert ends.server.given_up == [0xEA]


def test_figure_19_over_a_reliable_transport_four_q_block1_payloads_get_one_2_04_and_nothing_else() -> None:
    wire = Wire()
    server = Q1Server(wire)
    body = body_of(4)
    out = OutgoingBody(body, 6)

    def arrives(num: int) -> None:
        code = server.block(0xF0 + num, out.option(num), out.payload(num), len(body))
        if code != "0.00":  # no message-layer ACK on a reliable transport: only the final response
            wire.transmit("←", code, lambda: None)

    for num in range(out.count):
        wire.transmit(
            "→", f"PUT /path T:{0xF0 + num:#04x} RT=10 {qb('QB1', out.option(num))}", lambda n=num: arrives(n)
        )
    wire.run(until=300.0)
    assert wire.trace == [
        "→ PUT /path T:0xf0 RT=10 QB1:0/1/1024",
        "→ PUT /path T:0xf1 RT=10 QB1:1/1/1024",
        "→ PUT /path T:0xf2 RT=10 QB1:2/1/1024",
        "→ PUT /path T:0xf3 RT=10 QB1:3/0/1024",
        "← 2.04",
    ]
    assert server.bodies == [body] and server.others == []


def test_figure_20_over_a_reliable_transport_each_notification_goes_out_whole_at_once_and_arrives_whole() -> None:
    wire = Wire()
    responses = Q2Responses(PARAMS, rng=random.Random(1))
    receiver = Q2Receiver(PARAMS)
    got: list[tuple[bytes, bytes]] = []
    bodies = [bytes((b + n) % 256 for b in body_of(4)) for n in range(2)]

    def send(body: bytes, etag: int, observe: int) -> None:
        blocks = responses.start(PEER, "/path", body, etag=bytes([etag]), token=b"\xf0", now=wire.now, confirmable=True)
        for block in blocks:
            line = f"2.05 T:0xf0 O:{observe} ET={etag} {qb('QB2', block.option)}"
            wire.transmit("←", line, lambda b=block, e=etag: take(b, e))

    def take(block, etag: int) -> None:
        for event in receiver.on_block(
            "/path", etag=bytes([etag]), option=block.option, payload=block.payload, size2=block.size, now=wire.now
        ):
            assert isinstance(event, BodyComplete)
            got.append((event.tag, event.body))

    wire.transmit("→", "GET /path T:0xf0 O:0 QB2:0/1/1024", lambda: send(bodies[0], 21, 1234))
    wire.run(until=10.0)
    send(bodies[1], 22, 1235)  # [[Observe triggered]]
    wire.run(until=300.0)
    assert wire.trace == [
        "→ GET /path T:0xf0 O:0 QB2:0/1/1024",
        *(f"← 2.05 T:0xf0 O:1234 ET=21 QB2:{n}/{int(n < 3)}/1024" for n in range(4)),
        *(f"← 2.05 T:0xf0 O:1235 ET=22 QB2:{n}/{int(n < 3)}/1024" for n in range(4)),
    ]
    assert got == [(bytes([21]), bodies[0]), (bytes([22]), bodies[1])]
    assert receiver.next_deadline() is None and responses.next_deadline() is not None  # kept, never resent
