"""The DTLS server the transport tests talk to (a module may define its own `server`, as the TLS tests do)."""

from __future__ import annotations

import pytest

from opendots.transport import create_client_context, start_server
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import server_site
from tests.helpers.qblock_site import FAST, serve_big


@pytest.fixture
async def server(pki_dir):
    site, whoami, counter = server_site()
    port = free_port()
    endpoint = await start_server(
        site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False, idle_timeout=600
    )
    endpoint.port = port
    endpoint.whoami = whoami
    endpoint.counter = counter
    yield endpoint
    await endpoint.shutdown()


@pytest.fixture
async def big_server(pki_dir):
    """Our DTLS server with Q-Block (qblock_site.FAST parameters) and tests/helpers/qblock_site's /big."""
    endpoint = await serve_big(pki_dir, FAST)
    yield endpoint
    await endpoint.shutdown()


@pytest.fixture
async def client_context(pki_dir):
    """A client context of ours (Q-Block over DTLS once its probe finds it)."""
    context = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    yield context
    await context.shutdown()
