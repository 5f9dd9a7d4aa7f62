"""A one-shot run shuts its client context down right after the answer: NON transmissions that were still
unanswered must be gone by then, or aiocoap fails their (cancelled) response futures and the run crashes with
InvalidStateError after the server has acted (seen under 30 % loss over DTLS)."""

from __future__ import annotations

import asyncio
import gc
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


class AnswersTheSecond(aiocoap.resource.Resource):
    """Sits on the first request (as if its answer were lost) and answers the retransmission at once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    async def render_delete(self, request: aiocoap.Message) -> aiocoap.Message:
        self.seen += 1
        if self.seen == 1:
            await asyncio.sleep(30)
        return aiocoap.Message(code=aiocoap.DELETED)


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_after_module() -> Iterator[None]:
    yield
    gc.collect()


async def test_context_shuts_down_cleanly_right_after_a_retransmitted_non_was_answered(pki_dir: Path) -> None:
    """RFC 7252 §4.8 NON retransmission: the first transmission is still pending when the second is answered."""
    resource = AnswersTheSecond()
    site = aiocoap.resource.Site()
    site.add_resource((".well-known", "dots", "mitigate", "cuid=abc", "mid=1"), resource)
    port = free_port()
    server = await start_server(
        site,
        credentials=TlsFiles(pki_dir / "ca.crt", pki_dir / "server.crt", pki_dir / "server.key"),
        bind=[("127.0.0.1", port)],
        tls=False,
    )
    try:
        for _ in range(3):
            resource.seen = 0
            client = await create_client_context(
                TlsFiles(pki_dir / "ca.crt", pki_dir / "client.crt", pki_dir / "client.key"), server_name="localhost"
            )
            try:
                response = await coap.send(
                    client, f"coaps://127.0.0.1:{port}", withdraw_request("abc", 1), reliable=False, parameters=FAST
                )
            finally:
                await client.shutdown()  # no await in between, as in a one-shot run
            assert response.code == "2.02"
            assert resource.seen == 2
    finally:
        await server.shutdown()
