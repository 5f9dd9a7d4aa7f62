"""A signal server with fast heartbeats and a client agent's configuration on a free loopback port, shared by the
client-server end-to-end tests; waiting for a condition; one control-API call from a thread."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendots.config import ClientConfig, ServerConfig
from opendots.signal.client.shell.control import ControlClient
from opendots.signal.client.shell.settings import AgentSettings
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.core.sessionconfig import Limits, ParameterSet, SessionConfig
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from tests.conftest import free_port

FAST = ParameterSet(heartbeat_interval=1, missing_hb_allowed=2)


WIDE = Limits(heartbeat_interval=(1, 240), missing_hb_allowed=(1, 20))


def server_settings(config: ServerConfig) -> ServerSettings:
    return ServerSettings(
        clients=config.clients, session_defaults=SessionConfig(mitigating=FAST, idle=FAST), limits=WIDE
    )


async def start_server(config: ServerConfig, host: str, port: int) -> RunningSignalServer:
    return await start_signal_server(config, bind=[(host, port)], settings=server_settings(config))


@dataclass
class Setup:
    server_config: ServerConfig
    client_config: ClientConfig
    settings: AgentSettings
    port: int


def make_setup(pki: Path, tmp_path: Path, transport: str) -> Setup:
    server_config = ServerConfig.load(pki / "server.toml")
    server_config.db = tmp_path / f"server-{uuid.uuid4().hex[:6]}.db"
    port = free_port()
    client_config = ClientConfig.load(pki / "client.toml")
    client_config.server_addresses = ["127.0.0.1"]
    client_config.signal_port = port
    client_config.transport = transport  # type: ignore[assignment]
    client_config.control_socket = Path("/tmp") / f"odc-{uuid.uuid4().hex[:12]}.sock"
    settings = AgentSettings(
        state_file=tmp_path / "client-state.db",
        reconnect_min=0.2,
        reconnect_max=1.0,
        attempt_delay=0.1,
        connect_timeout=2.0,
        request_timeout=6.0,
    )
    return Setup(server_config, client_config, settings, port)


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def control(setup: Setup, operation: str, **args: Any) -> Any:
    async def call() -> dict[str, Any]:
        def blocking() -> dict[str, Any]:
            with ControlClient(setup.client_config.control_socket, timeout=20) as client:
                return client.call(operation, **args)

        return await asyncio.to_thread(blocking)

    return call()
