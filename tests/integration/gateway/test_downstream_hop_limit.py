"""RFC 8768 §3 on the gateway's downstream leg, over its real DTLS socket: a Hop-Limit of 0 or above 255 is a bad
request, as at every DOTS server, and nothing of it reaches the upstream server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiocoap
import pytest

from opendots.lab.processes import ProcessStack
from tests.helpers.gateway import in_front_of, server_admin, stack_with_admin
from tests.helpers.raw_coap import CON, DOTS, PUT, RawDtlsCoap, coap

HOP_LIMIT = 16  # RFC 8768 §5


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with stack_with_admin(tmp_path) as stack:
        yield stack


@pytest.mark.parametrize("hop_limit", [b"", b"\x00", b"\x01\x00"], ids=["0-empty", "0-byte", "256"])
def test_the_gateways_downstream_leg_refuses_a_hop_limit_of_0_or_above_255_with_4_00_rfc8768_s3(
    stack: ProcessStack, hop_limit: bytes
) -> None:
    gateway = in_front_of(stack, "client-domain")
    stack.start_server()
    gateway.start()
    try:
        raw = RawDtlsCoap(stack.client_config.tls, gateway.port)
        try:
            path = [*DOTS, (11, b"mitigate"), (11, f"cuid={stack.cuid}".encode()), (11, b"mid=5")]
            answers = raw.exchange(coap(CON, PUT, 0x1234, b"\x07", [*path, (HOP_LIMIT, hop_limit)], b"\xa0"), wait=10)
        finally:
            raw.close()
        assert answers, "no answer from the gateway"
        answer = aiocoap.Message.decode(answers[0])
        assert answer.code.dotted == "4.00" and answer.token == b"\x07"
        assert "Hop-Limit" in answer.payload.decode(), answer.payload
        status = gateway.status()
        assert status is not None and status["links"] == [] and "relayed" not in status["counters"]
        assert server_admin(stack, "mitigations")["mitigations"] == []
    finally:
        gateway.stop()
