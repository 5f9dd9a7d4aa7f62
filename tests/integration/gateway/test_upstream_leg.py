"""The gateway's upstream leg (a real `opendots gateway` process between an aiocoap client and a server on loopback,
through a UDP forwarder that can lose a datagram): relayed requests go upstream as they came, CON or NON (RFC 9132
§4.4.1: mitigation requests are NON), and a NON lost upstream is retransmitted by the gateway (RFC 7252 §4.3, as
RFC 9132 §4.4.1 has a client do)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap.numbers.types import CON, NON

from opendots.model import encode_telemetry
from opendots.signal.client.core.telemetry_bodies import config_entry
from tests.helpers.gateway_chain import Chain, chain_in_loop
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import request


@pytest.fixture
async def chain(pki_dir: Path, tmp_path: Path) -> AsyncIterator[Chain]:
    async with chain_in_loop(pki_dir, tmp_path) as chain:
        yield chain


def mitigation(prefix: str = "203.0.113.9/32") -> dict[str, Any]:
    return {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 3600}]}}


async def test_a_non_mitigation_request_goes_upstream_non_and_a_con_one_con_rfc9132_s4_4_1(chain: Chain) -> None:
    put = await request(chain.client, aiocoap.PUT, f"{chain.uri}/mitigate/cuid={chain.cuid}/mid=7", mitigation(),
                        transport_tuning=aiocoap.Unreliable)  # fmt: skip
    assert put.code == aiocoap.CREATED, put.payload
    assert chain.upstream_types("mitigate") == [NON]
    setup = encode_telemetry(
        {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [config_entry(measurement_interval="hour")]}}
    )
    uri = f"{chain.uri}/tm-setup/cuid={chain.cuid}/tsid=1"
    answer = await request(chain.client, aiocoap.PUT, uri, setup, content_format=271, transport_tuning=aiocoap.Reliable)
    assert answer.code == aiocoap.CREATED, answer.payload
    assert chain.upstream_types("tm-setup") == [CON]


async def test_a_non_request_lost_on_the_upstream_leg_is_retransmitted_by_the_gateway_rfc7252_s4_3(
    chain: Chain,
) -> None:
    """The client sends its NON once (aiocoap does not retransmit NON): only the gateway's retransmission can bring
    it to the server. Heartbeats are smaller than the datagram dropped."""
    chain.proxy.drop_next_upstream(larger_than=120)
    put = await request(chain.client, aiocoap.PUT, f"{chain.uri}/mitigate/cuid={chain.cuid}/mid=8", mitigation(),
                        transport_tuning=aiocoap.Unreliable, timeout=20.0)  # fmt: skip
    assert put.code == aiocoap.CREATED, put.payload
    assert chain.proxy.dropped == 1
    assert chain.upstream_types("mitigate") == [NON]
