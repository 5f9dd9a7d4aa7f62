"""Real processes on loopback: a client agent, `opendots gateway` (one or two), `opendots server` (RFC 8811 §2.3,
RFC 9132 §4.4.1, RFC 8768)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.lab.processes import ProcessStack
from opendots.signal.client.shell.control import ControlClient
from tests.helpers.gateway import GatewayProcess, point_agent_at, trust


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with ProcessStack(tmp_path, mitigators=[]) as stack:
        stack.server_config.admin_socket = Path("/tmp") / f"odsrv-{uuid.uuid4().hex[:10]}.sock"
        stack.server_config.save(stack.server_config_path)
        yield stack
        stack.server_config.admin_socket.unlink(missing_ok=True)


def server_mitigations(stack: ProcessStack) -> list[dict]:
    assert stack.server_config.admin_socket is not None
    with ControlClient(stack.server_config.admin_socket, timeout=10.0) as admin:
        return admin.call("mitigations")["mitigations"]


def mitigate(stack: ProcessStack, prefix: str, *extra: str) -> dict:
    result = stack.cli("client", "mitigate", "--target-prefix", prefix, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_client_domain_gateway_relays_an_agents_mitigation_under_its_own_cuid_and_maps_the_mid_back(
    stack: ProcessStack,
) -> None:
    """RFC 9132 §4.4.1: a client-domain gateway aggregates its clients upstream under one cuid; the client sees its
    own mid, the server the gateway's."""
    gateway = GatewayProcess(stack.directory, "gw1", "client-domain")
    gateway.upstream_to(stack.port)
    gateway.serve(stack.server_config.clients[0])
    trust(stack, gateway.authorization())
    point_agent_at(stack, gateway.port)
    try:
        stack.start_server()
        gateway.start()
        stack.start_agent()
        answer = mitigate(stack, "203.0.113.7/32", "--mid", "40")
        print(answer)
        held = server_mitigations(stack)
        assert [(m["client"], m["cuid"]) for m in held] == [("gw1", gateway.cuid)]
        upstream_mid = held[0]["mid"]
        status = gateway.status()
        assert status is not None
        assert [(link["downstream"], link["upstream"]) for link in status["links"]] == [
            (f"cuid={stack.cuid}/mid=40", f"cuid={gateway.cuid}/mid={upstream_mid}")
        ]
        entries = stack.status_entries()
        assert [entry["mid"] for entry in entries] == [40]
    finally:
        gateway.stop()
