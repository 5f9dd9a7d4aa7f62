"""The agent's side of server-initiated heartbeats (RFC 9132 §4.7): the server PUTs /.well-known/dots/hb over the
client's session and the agent answers, noting that the server is alive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiocoap
import aiocoap.resource

from opendots.model import ModelError, decode_signal

if TYPE_CHECKING:
    from opendots.signal.client.shell.agent import ClientAgent


class HeartbeatResource(aiocoap.resource.Resource):
    """PUT /.well-known/dots/hb from the server (RFC 9132 §4.7): answer 2.04 and note that the server is alive."""

    def __init__(self, agent: ClientAgent) -> None:
        super().__init__()
        self.agent = agent

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            body = decode_signal(request.payload) if request.payload else None
        except ModelError as error:
            return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=error.diagnostic.encode())
        code, diagnostic = self.agent.core.handle_peer_heartbeat(body, self.agent.clock())
        self.agent.pump()
        if code == "2.04":
            return aiocoap.Message(code=aiocoap.CHANGED)
        return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=(diagnostic or "").encode())
