"""A CoAP site over our DTLS server with Q-Block on, for the transport's Q-Block tests: /big answers a GET with a
body of many blocks, and a PUT or POST with an echo of the body received followed by that body again (so an answer
to a Q-Block1 request is itself a Q-Block2 body, RFC 9177 §4.7, §10.3); /.well-known/core answers the probe (§4.1)."""

from __future__ import annotations

from typing import Any

import aiocoap
import aiocoap.resource as resource

from opendots.transport import start_server
from opendots.transport.aiocoap_hooks import find_message_manager, find_request_interface
from opendots.transport.qblock import QBLOCK1, QBLOCK2, QBlockLimits, QBlockParameters
from opendots.transport.qblock_client import QBlockClient
from opendots.transport.qblock_server import uses_qblock
from tests.conftest import free_port
from tests.helpers import tls_files as files

BIG = bytes(range(251)) * 120  # 30,120 bytes: 30 blocks of 1024 and one of 424
FAST = QBlockParameters(non_timeout=0.5)  # NON_RECEIVE_TIMEOUT 1.75 s: a 4.08 or a request for blocks comes soon


def _qblock(request: aiocoap.Message) -> bool:
    # aiocoap's Site asks a copy of the request (which loses uses_qblock's mark): the options tell the same.
    return uses_qblock(request) or bool(request.opt.get_option(QBLOCK1) or request.opt.get_option(QBLOCK2))


class Big(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []  # every PUT/POST body that reached the resource

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        # Never: the copy aiocoap's Site renders has lost the Q-Block mark, and a Q-Block1 request completed has
        # lost its options; this resource is only for Q-Block peers, whose answers the transport cuts.
        return False

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=BIG)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.bodies.append(request.payload)
        return aiocoap.Message(code=aiocoap.CHANGED, payload=request.payload * 2)

    render_post = render_put


class _WellKnownCore(resource.WKCResource):
    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return not _qblock(request)


async def serve_big(pki_dir: Any, params: QBlockParameters | None = None) -> Any:
    """Our DTLS server with Q-Block and /big; `endpoint.port`, `endpoint.big` (the resource), `endpoint.qblock`."""
    site = resource.Site()
    big = Big()
    site.add_resource(["big"], big)
    site.add_resource([".well-known", "core"], _WellKnownCore(site.get_resources_as_linkheader))
    port = free_port()
    endpoint = await start_server(
        site,
        credentials=files(pki_dir, "server"),
        bind=[("127.0.0.1", port)],
        tls=False,
        qblock=QBlockLimits(),
        qblock_parameters=(lambda request: params) if params is not None else None,
    )
    endpoint.port, endpoint.big = port, big
    return endpoint


async def client_engine(context: aiocoap.Context, uri: str) -> QBlockClient:
    """The Q-Block client of CONTEXT's DTLS session to URI's server (the session is opened if need be)."""
    probe = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await find_request_interface(context, probe)
    manager = await find_message_manager(context, probe.remote)
    assert manager is not None and manager.qblock_client is not None
    return manager.qblock_client
