"""What a client installs besides mitigations, set through one node or worker and looked for through another: its
session configuration (RFC 9132 §4.5, /config) and telemetry setup (RFC 9244 §7, /tm-setup), and the heartbeats a
node sends it (§4.7), counted on the client's side."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiocoap
import aiocoap.resource

from opendots.model import decode_signal, decode_telemetry, encode_signal, encode_telemetry
from tests.helpers.cluster import DotsClient, Node

CONFIG = "ietf-dots-signal-channel:signal-config"
SETUP = "ietf-dots-telemetry:telemetry-setup"
FAST = 1
"""The heartbeat interval a test client asks for (seconds): 30 by default, so a node that did not learn it would
send its first heartbeat 30 s after the session started."""


def pki_with_fast_heartbeats(pki_dir: Path, into: Path) -> Path:
    """A copy of PKI_DIR whose server.toml lets clients ask for heartbeats every second (RFC 9132 §4.5.2 ranges)."""
    copy = Path(shutil.copytree(pki_dir, into))
    with (copy / "server.toml").open("a") as config:
        config.write("\n[signal]\nheartbeat_interval_limits = [1, 240]\n")
    return copy


async def call(client: DotsClient, node: Node, code: aiocoap.Code, path: str, body: Any = None) -> aiocoap.Message:
    """CODE on /.well-known/dots/PATH of NODE; BODY a signal-channel or telemetry body (by its top-level name)."""
    message = aiocoap.Message(code=code, uri=f"coaps://127.0.0.1:{node.port}/.well-known/dots/{path}")
    if body is not None:
        encode = encode_telemetry if SETUP in body else encode_signal
        message.payload, message.opt.content_format = encode(body), 271
    return await asyncio.wait_for(client.context.request(message).response, 15)


def fast_config(sid: int) -> dict[str, Any]:
    parameters = {"heartbeat-interval": {"current-value": FAST}, "missing-hb-allowed": {"current-value": 3}}
    return {CONFIG: {"mitigating-config": parameters, "idle-config": parameters}}


def telemetry_config(cuid: str) -> tuple[str, dict[str, Any]]:
    """(path, body) of a telemetry configuration (RFC 9244 §7.1.2) under tsid 7."""
    body = {SETUP: {"telemetry": [{"current-config": {"measurement-interval": "5-minutes"}}]}}
    return f"tm-setup/cuid={cuid}/tsid=7", body


async def heartbeat_interval(client: DotsClient, node: Node) -> int | None:
    """The idle-config heartbeat interval NODE answers CLIENT's GET /config with."""
    response = await call(client, node, aiocoap.GET, "config")
    assert response.code == aiocoap.CONTENT, response
    return decode_signal(response.payload)[CONFIG]["idle-config"]["heartbeat-interval"]["current-value"]


async def measurement_interval(client: DotsClient, node: Node, path: str) -> str | None:
    """The measurement interval of the telemetry setup at PATH as NODE answers it (None: 4.04, not there)."""
    response = await call(client, node, aiocoap.GET, path)
    if response.code == aiocoap.NOT_FOUND:
        return None
    assert response.code == aiocoap.CONTENT, response
    (entry,) = decode_telemetry(response.payload)[SETUP]["telemetry"]
    return entry["current-config"]["measurement-interval"]


class HeartbeatCounter(aiocoap.resource.Resource):
    """PUT /hb from the server to the client (§4.7), counted and answered 2.04."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.count += 1
        return aiocoap.Message(code=aiocoap.CHANGED)


def count_heartbeats(client: DotsClient) -> HeartbeatCounter:
    """Serve /.well-known/dots/hb on CLIENT's context: the server's heartbeats are counted."""
    site = aiocoap.resource.Site()
    counter = HeartbeatCounter()
    site.add_resource((".well-known", "dots", "hb"), counter)
    client.context.serversite = site
    return counter
