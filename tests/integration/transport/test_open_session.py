"""A connection attempt (RFC 9132 §4.3) over a real DTLS session and TLS connection: over DTLS the completed
handshake is the attempt's success and its last round trip the RTT, so no CoAP ping travels; under loss that ping
was one more exchange to lose (bench/dtls_loss.py measures the difference)."""

from __future__ import annotations

import asyncio

import aiocoap

from opendots.transport import create_client_context, open_session, start_server
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import server_site


async def test_a_dtls_connection_attempt_ends_with_the_handshake_and_sends_no_coap_message_rfc9132_4_3(pki_dir):
    site, _whoami, _counter = server_site()
    port = free_port()
    endpoint = await start_server(site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)])
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        rtt = await open_session(client, f"coaps://127.0.0.1:{port}", timeout=10)
        assert 0 < rtt < 5
        assert endpoint.dtls.messages_received == 0  # no ping: the handshake proved the server is there
        request = aiocoap.Message(code=aiocoap.GET, uri=f"coaps://127.0.0.1:{port}/whoami")
        answer = await asyncio.wait_for(client.request(request).response, 10)
        assert answer.code == aiocoap.CONTENT
        assert endpoint.dtls.messages_received == 1  # over the session the attempt opened
        assert len(endpoint.dtls.sessions) == 1
        # Over TLS the attempt still ends with a 7.02 Ping answered (RFC 8323 §5.4).
        assert 0 < await open_session(client, f"coaps+tcp://127.0.0.1:{port}", timeout=10) < 5
    finally:
        await client.shutdown()
        await endpoint.shutdown()


async def test_an_attempt_at_a_port_where_nobody_answers_times_out(pki_dir):
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        started = asyncio.get_running_loop().time()
        try:
            await open_session(client, f"coaps://127.0.0.1:{free_port()}", timeout=1.5)
        except TimeoutError:
            pass
        else:
            raise AssertionError("no server, yet the attempt succeeded")
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await client.shutdown()
