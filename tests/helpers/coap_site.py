"""A small aiocoap site for the transport tests (who is asking, a body that needs Block2, an observable counter) and
waiting helpers."""

from __future__ import annotations

import asyncio
import time

import aiocoap
import aiocoap.resource as resource

from opendots.transport import peer_identity

BIG_BODY = bytes(range(256)) * 20  # 5 KiB: needs Block2


class Whoami(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.remotes: list = []

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.remotes.append(request.remote)
        identity = peer_identity(request)
        return aiocoap.Message(payload=(identity.common_name if identity else "anonymous").encode())


class Big(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=BIG_BODY)


class Counter(resource.ObservableResource):
    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def bump(self) -> None:
        self.value += 1
        self.updated_state()

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=str(self.value).encode())


def server_site() -> tuple[resource.Site, Whoami, Counter]:
    site = resource.Site()
    whoami, counter = Whoami(), Counter()
    site.add_resource(["whoami"], whoami)
    site.add_resource(["big"], Big())
    site.add_resource(["counter"], counter)
    return site, whoami, counter


async def get(context: aiocoap.Context, uri: str) -> aiocoap.Message:
    return await asyncio.wait_for(context.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 10)


async def eventually(condition, timeout: float = 5.0) -> None:
    """Wait until CONDITION() holds (datagrams on a loaded machine take their time); fail after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
