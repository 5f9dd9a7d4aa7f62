"""libcoap's coap-client (an independent CoAP stack) through `opendots gateway` to `opendots server`, all real
processes: mitigation PUT and GET relayed over DTLS and TLS, and Hop-Limit (RFC 8768) as libcoap sends it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.lab.processes import ProcessStack
from opendots.model import decode_signal
from tests.helpers.gateway import GatewayProcess, trust
from tests.helpers.libcoap import CoapClient
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessStack, GatewayProcess]]:
    directory = tmp_path_factory.mktemp("gateway-libcoap")
    with ProcessStack(directory, mitigators=[]) as stack:
        gateway = GatewayProcess(directory, "gw1", "client-domain")
        gateway.upstream_to(stack.port)
        gateway.serve(stack.server_config.clients[0])
        trust(stack, gateway.authorization())
        try:
            stack.start_server()
            gateway.start()
            yield stack, gateway
        finally:
            gateway.stop()


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_libcoap_mitigation_put_and_get_go_through_a_client_domain_gateway(
    chain: tuple[ProcessStack, GatewayProcess], tmp_path: Path, scheme: str
) -> None:
    stack, gateway = chain
    client = CoapClient(stack.directory, tmp_path)
    mid = 21 if scheme == "coaps" else 22
    uri = f"{scheme}://127.0.0.1:{gateway.port}/.well-known/dots/mitigate/cuid={stack.cuid}/mid={mid}"
    body = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.50/32"], "lifetime": 600}]}}
    payload, printed = await client.run("-m", "put", uri, payload=body)
    assert decode_signal(payload) == {SCOPE: {"scope": [{"mid": mid, "lifetime": 600}]}}, printed
    payload, printed = await client.run(uri)
    entries = decode_signal(payload)[SCOPE]["scope"]
    assert [(entry["mid"], entry["target-prefix"]) for entry in entries] == [(mid, ["203.0.113.50/32"])], printed
    status = gateway.status()
    assert status is not None
    assert f"cuid={stack.cuid}/mid={mid}" in [link["downstream"] for link in status["links"]]


async def test_a_libcoap_request_whose_hop_limit_runs_out_at_the_gateway_gets_5_08_naming_it_rfc8768(
    chain: tuple[ProcessStack, GatewayProcess], tmp_path: Path
) -> None:
    stack, gateway = chain
    client = CoapClient(stack.directory, tmp_path)
    uri = f"coaps://127.0.0.1:{gateway.port}/.well-known/dots/mitigate/cuid={stack.cuid}/mid=30"
    body = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.51/32"], "lifetime": 600}]}}
    payload, printed = await client.run("-m", "put", "-H", "1", uri, payload=body)
    assert "5.08" in printed, printed
    assert b"gw1" in payload or "gw1" in printed, (payload, printed)
    payload, printed = await client.run("-m", "put", "-H", "2", uri, payload=body)
    assert decode_signal(payload) == {SCOPE: {"scope": [{"mid": 30, "lifetime": 600}]}}, printed
