"""A chain in one test's event loop: an aiocoap client, a real `opendots gateway` process (client-domain), a UDP
forwarder that can lose datagrams on the upstream leg (tests/helpers/udp_proxy.py), and a signal server in-process
whose requests are noted as it takes them (CoAP type, Uri-Path)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendots.config import ServerConfig
from opendots.lab.gateway import GatewayProcess, authorization
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files
from tests.helpers.signal_server import BASE, cuid_of
from tests.helpers.udp_proxy import LossyUdpProxy


@dataclass
class Chain:
    server: RunningSignalServer
    proxy: LossyUdpProxy
    gateway: GatewayProcess
    client: Any
    uri: str
    cuid: str
    seen: list[tuple[Any, tuple[str, ...]]]
    """(CoAP type, Uri-Path after /.well-known/dots) of every request the server took."""

    def upstream_types(self, resource: str) -> list[Any]:
        return [mtype for mtype, path in self.seen if path[:1] == (resource,)]


@contextlib.asynccontextmanager
async def chain_in_loop(
    pki_dir: Path, tmp_path: Path, *, signal: dict[str, Any] | None = None, **start: Any
) -> AsyncIterator[Chain]:
    """The chain on a copy of the test PKI in PKI_DIR (the gateway's certificates are issued into it); SIGNAL: more
    [signal] settings of the server, START: more arguments of start_signal_server (a mitigator, a clock)."""
    pki = Path(shutil.copytree(pki_dir, tmp_path / "pki"))
    config = ServerConfig.load(pki / "server.toml")
    cuid = cuid_of(config, "client")
    gateway = GatewayProcess(pki, "gw1", "client-domain")
    gateway.serve(authorization("client", cuid))
    config.clients.append(gateway.authorization())
    config.db = tmp_path / "signal.db"
    config.signal = {**config.signal, **(signal or {})}
    server = await start_signal_server(config, bind=[("127.0.0.1", free_port())], **start)
    seen: list[tuple[Any, tuple[str, ...]]] = []
    answer_now = server.resource.answer_now

    def noted(pipe: Any) -> bool:  # the server's own handling, with what it was given noted first
        seen.append((pipe.request.mtype, tuple(pipe.request.opt.uri_path)))
        return answer_now(pipe)

    server.resource.answer_now = noted  # type: ignore[method-assign]
    proxy = LossyUdpProxy()
    gateway.upstream_to(await proxy.start(server.endpoint.dtls_addresses[0][1]))
    await asyncio.to_thread(gateway.start)  # waits for its upstream session: this loop must keep serving
    client = await create_client_context(tls_files(pki, "client"), server_name="localhost")
    try:
        yield Chain(server, proxy, gateway, client, f"coaps://127.0.0.1:{gateway.port}{BASE}", cuid, seen)
    finally:
        await client.shutdown()
        await asyncio.to_thread(gateway.stop)
        proxy.close()
        await server.stop()
