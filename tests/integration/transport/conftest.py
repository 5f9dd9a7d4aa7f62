"""The DTLS server the transport tests talk to (a module may define its own `server`, as the TLS tests do)."""

from __future__ import annotations

import pytest

from opendots.transport import start_server
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import server_site


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
