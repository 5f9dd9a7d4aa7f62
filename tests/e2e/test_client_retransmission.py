"""NON retransmission of the client (RFC 7252 §4.8 schedule from the session parameters) over real DTLS, against
our transport's server with a resource that sits on the first requests it gets."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import aiocoap
import aiocoap.resource
import pytest

from opendots.config import TlsFiles
from opendots.signal.client.core.requests import withdraw_request
from opendots.signal.client.core.timing import SessionParameters
from opendots.signal.client.shell import coap
from opendots.transport import create_client_context, start_server
from tests.conftest import free_port

FAST = SessionParameters(max_retransmit=3, ack_timeout=Decimal("0.20"), ack_random_factor=Decimal("1.00"))


class SlowStart(aiocoap.resource.Resource):
    """Answers 2.02 only from the Nth request on; earlier ones get no timely answer (lost, as far as the client
    can tell)."""

    def __init__(self, answer_from: int) -> None:
        super().__init__()
        self.answer_from = answer_from
        self.seen: list[tuple[float, bytes, str]] = []

    async def render_delete(self, request: aiocoap.Message) -> aiocoap.Message:
        self.seen.append((time.monotonic(), request.token, request.mtype.name))
        if len(self.seen) < self.answer_from:
            await asyncio.sleep(30)
        return aiocoap.Message(code=aiocoap.DELETED)


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_after_module() -> Iterator[None]:
    # Run leftover finalizers (aiocoap observations, transports) now rather than in the middle of a later
    # compile(): CPython 3.11.7 then fails with "AST constructor recursion depth mismatch".
    yield
    gc.collect()


@pytest.fixture
async def slow_server(pki_dir: Path):
    resource = SlowStart(answer_from=3)
    site = aiocoap.resource.Site()
    site.add_resource((".well-known", "dots", "mitigate", "cuid=abc", "mid=1"), resource)
    port = free_port()
    server = await start_server(
        site,
        credentials=TlsFiles(pki_dir / "ca.crt", pki_dir / "server.crt", pki_dir / "server.key"),
        bind=[("127.0.0.1", port)],
        tls=False,
    )
    client = await create_client_context(
        TlsFiles(pki_dir / "ca.crt", pki_dir / "client.crt", pki_dir / "client.key"), server_name="localhost"
    )
    try:
        yield resource, client, f"coaps://127.0.0.1:{port}"
    finally:
        await client.shutdown()
        await server.shutdown()


async def test_non_request_is_retransmitted_and_the_first_answer_wins(slow_server) -> None:
    resource, client, base = slow_server
    started = time.monotonic()
    response = await coap.send(client, base, withdraw_request("abc", 1), reliable=False, parameters=FAST)
    elapsed = time.monotonic() - started
    assert response.code == "2.02"
    assert len(resource.seen) == 3  # sent at 0, 0.2 and 0.6 s; the third was answered
    assert {mtype for _, _, mtype in resource.seen} == {"NON"}
    assert len({token for _, token, _ in resource.seen}) == 3  # each transmission is a new exchange
    gaps = [later[0] - earlier[0] for earlier, later in zip(resource.seen, resource.seen[1:], strict=False)]
    assert gaps[0] == pytest.approx(0.2, abs=0.1) and gaps[1] == pytest.approx(0.4, abs=0.1)
    assert elapsed < 1.2


async def test_non_request_gives_up_after_max_retransmit(slow_server) -> None:
    resource, client, base = slow_server
    resource.answer_from = 100
    parameters = SessionParameters(max_retransmit=2, ack_timeout=Decimal("0.10"), ack_random_factor=Decimal("1.00"))
    started = time.monotonic()
    with pytest.raises(coap.NoAnswer, match="3 transmissions"):
        await coap.send(client, base, withdraw_request("abc", 1), reliable=False, parameters=parameters)
    assert len(resource.seen) == 3  # the first transmission and max-retransmit = 2 retransmissions
    assert time.monotonic() - started == pytest.approx(0.7, abs=0.25)  # given up at (1 + 2 + 4) * 0.1 s
