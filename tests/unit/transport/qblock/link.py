"""A deterministic lossy link between a client and a server engine, with the shell's small part played here.

No socket, no clock: time jumps from one engine deadline to the next, messages are delivered in the order they were
sent, and LOSE(label, nth) decides which ones vanish (nth counts earlier messages with the same label, from 1).
Every message lands in `trace` as `→ T:n QB1:...` (client to server) or `← T:n ...` (server to client), with `✗`
after the arrow when lost, so a test compares the exchange with the RFC figure line by line. Tokens are numbered
1, 2, 3... in the order requests are made, like the figures' T: values.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable

from opendots.transport.qblock import (
    MISSING_BLOCKS_CONTENT_FORMAT,
    AlreadyComplete,
    BodyAbandoned,
    BodyComplete,
    Q1Receiver,
    Q1Sender,
    Q2Receiver,
    Q2Responses,
    QBlockLimits,
    QBlockParameters,
    Rejected,
    RequestBlocks,
    Respond,
    SendBlock,
    decode_missing,
)

PEER = ("192.0.2.1", 5684)
KEY = "/path"
TAG = b"\x0b"


def never(label: str, nth: int) -> bool:
    return False


class Link:
    def __init__(
        self,
        *,
        params: QBlockParameters | None = None,
        limits: QBlockLimits | None = None,
        lose: Callable[[str, int], bool] = never,
        final_code: str = "2.04",
        seed: int = 9177,
    ) -> None:
        self.params = params or QBlockParameters()
        self.now = 0.0
        self.lose = lose
        self.final_code = final_code
        self.rng = random.Random(seed)
        self.server = Q1Receiver(self.params, limits)
        self.responses = Q2Responses(self.params, limits, self.rng)
        self.receiver = Q2Receiver(self.params, limits)
        self.sender: Q1Sender | None = None
        self.response_body: bytes | None = None  # when set, a completed request body is answered with it (Q-Block2)
        self.trace: list[str] = []
        self.times: list[float] = []
        self.server_got: list[bytes] = []
        self.client_got: list[tuple[bytes, bytes]] = []  # (ETag, body)
        self.abandoned: list[str] = []
        self.rejected: list[str] = []
        self._labels: Counter[str] = Counter()
        self._tokens = 0
        self._etag = 0x17
        self._queue: deque[Callable[[], None]] = deque()

    # --- what the shells would do ------------------------------------------------------------------------
    def token(self) -> bytes:
        self._tokens += 1
        return self._tokens.to_bytes(2, "big")

    def put(self, body: bytes, szx: int = 6) -> None:
        """The client starts sending BODY with Q-Block1."""
        self.sender = Q1Sender(body, self.params, now=self.now, szx=szx, rng=self.rng)
        self._client_blocks(self.sender.poll(self.now))

    def notify(self, body: bytes, token: bytes, szx: int = 6) -> None:
        """The server sends BODY with Q-Block2 on TOKEN (a response, or an Observe notification with a new ETag)."""
        self._etag += 1
        self._server_blocks(self.responses.start(PEER, KEY, body, etag=bytes([self._etag]), token=token, now=self.now))

    def _client_blocks(self, blocks: list[SendBlock]) -> None:
        for block in blocks:
            token = self.token()
            self._transmit("→", token, f"QB1:{block.option}", lambda b=block, t=token: self._to_server(b, t))

    def _to_server(self, block: SendBlock, token: bytes) -> None:
        outputs = self.server.on_block(
            PEER,
            token=token,
            request_tag=TAG,
            option=block.option,
            payload=block.payload,
            size1=block.size,
            now=self.now,
        )
        self._server_outputs(outputs)

    def _server_outputs(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, Respond):
                label = out.code + (f" [{', '.join(map(str, decode_missing(out.payload)))}]" if out.payload else "")
                label += f" QB1:{out.option}" if out.option else ""
                self._transmit("←", out.token, label, lambda r=out: self._response_to_client(r))
            elif isinstance(out, BodyComplete):
                self.server_got.append(out.body)
                if self.response_body is None:
                    self._final(out.token)
                else:
                    self.notify(self.response_body, out.token)
            elif isinstance(out, AlreadyComplete):
                self._final(out.token)
            elif isinstance(out, BodyAbandoned):
                self.abandoned.append(f"server: {out.reason}")

    def _final(self, token: bytes) -> None:
        self._transmit("←", token, self.final_code, lambda: self.sender and self.sender.on_final())

    def _response_to_client(self, response: Respond) -> None:
        assert self.sender is not None
        if response.code == "2.31":
            assert response.option is not None
            self._client_blocks(self.sender.on_continue(response.option, self.now))
        elif response.code == "4.08" and response.content_format == MISSING_BLOCKS_CONTENT_FORMAT:
            self._client_blocks(self.sender.on_missing(response.payload, self.now))
        else:
            self.sender.on_final()

    def _server_blocks(self, blocks: list[SendBlock]) -> None:
        for block in blocks:
            assert block.token is not None
            label = f"QB2:{block.option}" + (" (no Observe)" if block.recovery else "")
            etag = bytes([self._etag])  # the ETag of the body being sent when the block leaves
            self._transmit("←", block.token, label, lambda b=block, e=etag: self._to_client(b, e))

    def _to_client(self, block: SendBlock, etag: bytes) -> None:
        if self.sender is not None and not self.sender.done:
            self.sender.on_final()  # the first payload of the response body ends the request's transfer
        self._client_outputs(
            self.receiver.on_block(
                KEY, etag=etag, option=block.option, payload=block.payload, size2=block.size, now=self.now
            )
        )

    def _client_outputs(self, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, RequestBlocks):
                token = self.token()
                label = " ".join(f"QB2:{option}" for option in out.options) + (" Continue" if out.continue_ else "")
                self._transmit("→", token, label, lambda o=out, t=token: self._request_to_server(o, t))
            elif isinstance(out, BodyComplete):
                self.client_got.append((out.tag, out.body))
            elif isinstance(out, BodyAbandoned):
                self.abandoned.append(f"client: {out.reason}")
            elif isinstance(out, Rejected):
                self.rejected.append(out.reason)

    def _request_to_server(self, request: RequestBlocks, token: bytes) -> None:
        blocks = self.responses.on_request(PEER, KEY, list(request.options), token=token, now=self.now)
        self._server_blocks(blocks or [])

    # --- the link ------------------------------------------------------------------------------------------
    def _transmit(self, arrow: str, token: bytes, label: str, deliver: Callable[[], None]) -> None:
        self._labels[f"{arrow}{label}"] += 1
        lost = self.lose(f"{arrow} {label}", self._labels[f"{arrow}{label}"])
        self.trace.append(f"{arrow}{'✗' if lost else ''} T:{int.from_bytes(token, 'big')} {label}")
        self.times.append(self.now)
        if not lost:
            self._queue.append(deliver)

    def run(self, until: float = 3600.0) -> None:
        """Deliver everything in flight, then jump to the next deadline, until nothing is due before UNTIL."""
        while True:
            while self._queue:
                self._queue.popleft()()
            engines = [self.server, self.responses, self.receiver] + ([self.sender] if self.sender else [])
            deadlines = [d for d in (engine.next_deadline() for engine in engines) if d is not None]
            if not deadlines or min(deadlines) > until:
                return
            self.now = max(self.now, min(deadlines))
            if self.sender is not None:
                self._client_blocks(self.sender.poll(self.now))
            self._server_outputs(self.server.poll(self.now))
            self._server_blocks(self.responses.poll(self.now))
            self._client_outputs(self.receiver.poll(self.now))


def body_of(blocks: int, last: int = 100, size: int = 1024) -> bytes:
    """A body of BLOCKS blocks of SIZE bytes, the last one LAST bytes long, every byte telling where it is."""
    length = (blocks - 1) * size + last
    return bytes((i * 7 + i // 256) % 251 for i in range(length))


# A lossy path's RFC 9362 values (bench/blocks.py's LOSSY_PATH had NON_TIMEOUT 0.5 s until it went to 0.30 s):
# NON_TIMEOUT_RANDOM 0.5-0.55 s.
LOSSY = QBlockParameters(
    max_payloads=32,
    non_max_retransmit=8,
    non_timeout=0.5,
    non_receive_timeout=1.55,
    non_probing_wait=10.0,
    non_partial_timeout=60.0,
    ack_random_factor=1.1,
)


def transfers_at_30_percent_loss(params: QBlockParameters, count: int = 40) -> tuple[int, list[float]]:
    """COUNT seeded transfers of a 64-block body, 30 % of the messages lost each way: (how many failed, the link
    times at which the others' final response arrived). Link time is the engines' `now`, not a clock."""
    failed, finished = 0, []
    for seed in range(count):
        chance = random.Random(seed)
        link = Link(params=params, lose=lambda label, nth, c=chance: c.random() < 0.3, seed=seed)
        body = body_of(64)
        link.put(body)
        link.run(until=120.0)
        final = [
            t for t, line in zip(link.times, link.trace, strict=True) if line.startswith("← T:") and "2.04" in line
        ]
        if link.server_got != [body] or link.sender is None or link.sender.failed or not final:
            failed += 1
        else:
            finished.append(final[0])
    return failed, finished
