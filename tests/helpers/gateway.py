"""Gateway chains for the tests: `opendots gateway` (opendots.lab.gateway.GatewayProcess) put between a
ProcessStack's agent and its server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opendots.config import ClientAuthorization, ClientConfig
from opendots.lab.gateway import GatewayProcess, authorization
from opendots.lab.processes import ProcessStack

__all__ = [
    "GatewayProcess",
    "authorization",
    "chain_running",
    "client_details",
    "in_front_of",
    "point_agent_at",
    "relay_core",
    "server_admin",
    "stack_with_admin",
    "trust",
]


@contextlib.contextmanager
def stack_with_admin(directory: Path, **kwargs: Any) -> Iterator[ProcessStack]:
    """A ProcessStack (no mitigator unless KWARGS say) whose server has an admin socket (`server_admin`)."""
    kwargs.setdefault("mitigators", [])
    with ProcessStack(directory, **kwargs) as stack:
        stack.server_config.admin_socket = Path("/tmp") / f"odsrv-{uuid.uuid4().hex[:10]}.sock"
        stack.server_config.save(stack.server_config_path)
        try:
            yield stack
        finally:
            stack.server_config.admin_socket.unlink(missing_ok=True)


def server_admin(stack: ProcessStack, operation: str, **args: Any) -> dict[str, Any]:
    """OPERATION on the stack server's admin socket (opendots.signal.server.shell.admin)."""
    from opendots.signal.client.shell.control import ControlClient

    assert stack.server_config.admin_socket is not None
    with ControlClient(stack.server_config.admin_socket, timeout=10.0) as admin:
        return admin.call(operation, **args)


def point_agent_at(stack: Any, port: int, address: str | None = None) -> None:
    """The stack's client agent (and its one-shot twin) talk to PORT (a gateway) instead of the server, at ADDRESS
    when given (a gateway in another network namespace)."""
    for path in (stack.client_config_path, stack.oneshot_config_path):
        config = ClientConfig.load(path)
        config.signal_port = port
        if address is not None:
            config.server_addresses = [address]
        config.save(path)
    stack.client_config.signal_port = port
    if address is not None:
        stack.client_config.server_addresses = [address]


def trust(stack: Any, *clients: ClientAuthorization) -> None:
    """Add CLIENTS to the stack server's [[clients]] (before it starts)."""
    stack.server_config.clients.extend(clients)
    stack.server_config.save(stack.server_config_path)


def in_front_of(
    stack: Any, kind: str, name: str = "gw1", *, only_gateway: bool = False, extra: dict[str, Any] | None = None
) -> GatewayProcess:
    """A gateway of KIND between the stack's agent and its server, serving the agent's client; the server trusts it
    (as a server-domain gateway when KIND says so). ONLY_GATEWAY: the server knows the gateway alone, not the
    client behind it."""
    gateway = GatewayProcess(stack.directory, name, kind, extra=extra)
    gateway.upstream_to(stack.port, stack.server_config.data_port)
    gateway.serve(stack.server_config.clients[0])
    if only_gateway:
        stack.server_config.clients.clear()
    trust(stack, gateway.authorization(gateway=kind == "server-domain"))
    point_agent_at(stack, gateway.port)
    return gateway


@contextlib.contextmanager
def chain_running(stack: Any, gateway: GatewayProcess) -> Iterator[GatewayProcess]:
    """Server, gateway, then agent started; the gateway stopped at the end (the stack stops the rest)."""
    try:
        stack.start_server()
        gateway.start()
        stack.start_agent()
        yield gateway
    finally:
        gateway.stop()


def relay_core(directory: Any, kind: str = "client-domain", upstream_cuid: str = "gatewaycuid0000000000a") -> Any:
    """A gateway relay core (opendots.gateway.relay.RelayCore) on a real SQLite state in DIRECTORY, upstream up."""
    from opendots.gateway.relay import RelayCore, RelaySettings
    from opendots.store.gateway_state import RelayStore

    relay = RelayCore(
        RelaySettings(kind=kind, identity="gw1", upstream_cuid=upstream_cuid),  # type: ignore[arg-type]
        RelayStore(directory / "relay.db"),
    )
    relay.upstream_changed(True)
    return relay


def client_details(stack: ProcessStack, name: str) -> dict[str, Any]:
    """The stack server's admin view of client NAME (its telemetry setups and reports among the rest)."""
    (details,) = server_admin(stack, "client-details", client=name)["clients"]
    return details
