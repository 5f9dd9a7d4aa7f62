"""Signal server nodes in the test's own process on one PostgreSQL database (opendots.signal.server.shell.cluster),
each with its own recording mitigator, and the mitigation requests handed to them directly (no sockets needed to
race decisions)."""

from __future__ import annotations

from pathlib import Path

from opendots.config import ServerConfig
from opendots.mitigate.base import LoggingMitigator
from opendots.model import encode_signal
from opendots.signal.server.core import Request
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.store.postgres_cluster import MITIGATIONS_CHANNEL
from tests.conftest import free_port
from tests.helpers.signal_harness import SCOPE


async def start_node(pki_dir: Path, tmp_path: Path, name: str, url: str) -> RunningSignalServer:
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db, config.db_url = tmp_path / f"{name}.db", url
    return await start_signal_server(
        config, bind=[("127.0.0.1", free_port())], tls=False, mitigator=LoggingMitigator(name=name)
    )


async def make_deaf(node: RunningSignalServer) -> None:
    """NODE hears no NOTIFY any more: what it knows of the other's writes comes from the reads before deciding."""
    assert node.cluster is not None and node.cluster._listener is not None
    await node.cluster._listener.remove_listener(MITIGATIONS_CHANNEL, node.cluster._on_mitigation)


def put_request(cuid: str, mid: int, prefix: str, lifetime: int = 3600) -> Request:
    body = {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": lifetime}]}}
    return Request("PUT", ("mitigate", f"cuid={cuid}", f"mid={mid}"), peer=cuid, payload=encode_signal(body))
