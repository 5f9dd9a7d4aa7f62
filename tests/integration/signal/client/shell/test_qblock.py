"""Our DOTS client agent and one-shot CLI against our DOTS server over real DTLS: a mitigation request with hundreds of
targets goes up in Q-Block1 payloads (RFC 9177 §4.3), a GET of all mitigations and the Observe notifications of
large mitigations come back as Q-Block2 bodies (§4.4, §4.5), without the caller doing anything; over TLS the same
bodies use Block1/Block2 (BERT) and no Q-Block option is sent (§3)."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from pathlib import Path
from typing import Any

import pytest

from opendots.config import ClientConfig, ServerConfig
from opendots.signal.client.shell.agent import ClientAgent
from opendots.signal.client.shell.control import ControlClient
from opendots.signal.client.shell.oneshot import run_once
from opendots.signal.client.shell.settings import AgentSettings
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
TARGETS = 300  # about 6 KB of CBOR: seven 1024-byte blocks


def targets(mid: int) -> list[str]:
    return [str(ipaddress.IPv6Network(f"2001:db8:{mid:x}:{i:x}::/64")) for i in range(TARGETS)]


@pytest.fixture(params=["dtls", "tls"])
async def running(request: pytest.FixtureRequest, pki_dir: Path, tmp_path: Path):
    server_config = ServerConfig.load(pki_dir / "server.toml")
    server_config.db = tmp_path / "server.db"
    port = free_port()
    server = await start_signal_server(server_config, bind=[("127.0.0.1", port)])
    config = ClientConfig.load(pki_dir / "client.toml")
    config.server_addresses = ["127.0.0.1"]
    config.signal_port = port
    config.transport = request.param
    config.control_socket = Path("/tmp") / f"odc-{uuid.uuid4().hex[:12]}.sock"
    settings = AgentSettings(
        state_file=tmp_path / "client-state.db",
        reconnect_min=0.2,
        reconnect_max=1.0,
        attempt_delay=0.1,
        connect_timeout=2.0,
        request_timeout=10.0,
    )
    agent = ClientAgent(config, settings)
    await agent.start()
    try:
        assert await agent.wait_connected(10), "the agent never connected"
        yield request.param, server, agent, config, settings
    finally:
        await agent.stop()
        await server.stop()


async def control(config: ClientConfig, operation: str, **args: Any) -> dict[str, Any]:
    def blocking() -> dict[str, Any]:
        with ControlClient(config.control_socket, timeout=30) as client:
            return client.call(operation, **args)

    return await asyncio.to_thread(blocking)


async def test_large_mitigations_go_up_in_q_block1_and_come_back_in_q_block2_over_dtls_only_rfc9177_4_3_4_4(running):
    transport, server, agent, config, settings = running
    counts = server.endpoint.qblock.counts
    for mid in range(3):
        created = await control(config, "mitigate", scope={"target-prefix": targets(mid), "lifetime": 600})
        assert created["code"] == "2.01", created
    stored = server.service.core.render_mitigations("client", agent.cuid, 2, (), 0.0)
    assert stored.body[SCOPE]["scope"][0]["target-prefix"] == targets(2)
    # The agent observes each mitigation: its first notification is as large as the mitigation itself.
    for _ in range(200):
        if all(m.status is not None for m in agent.core.mitigations.values()) and len(agent.core.mitigations) == 3:
            break
        await asyncio.sleep(0.05)
    assert all(m.status == "attack-mitigation-in-progress" for m in agent.core.mitigations.values())
    # `opendots client status` without an agent: a GET of all mitigations (about 18 KB).
    result = await run_once(config, settings, "status", {})
    scopes = result["body"][SCOPE]["scope"]
    assert sorted(s["mid"] for s in scopes) == [0, 1, 2]
    assert all(s["target-prefix"] == targets(s["mid"]) for s in scopes)
    if transport == "dtls":
        assert counts["q1_bodies"] == 3  # each mitigation request in Q-Block1 payloads
        assert counts["q2_bodies"] >= 3 + 1  # the observations' first answers and the one-shot GET
    else:
        assert not any(counts.values()), counts  # over TLS nothing goes through Q-Block (RFC 9177 §3)
