"""A resumed DTLS session is confirmed before a connection attempt (RFC 9132 §4.3) counts it as open.

In an abbreviated handshake (RFC 6347 §4.2.4, RFC 5246 §7.3) the client sends the last flight: it is done when it
has sent its Finished, while the server waits for it. If that flight and its retransmissions are lost, the server
drops the unfinished handshake (its handshake timeout) and the client holds a session the server does not: every
request on it goes unanswered. Only a full handshake proves the server holds the session (its Finished answers our
last flight); after a resumed one the attempt waits for an answer on the session, and drops it when none comes, so
the next attempt handshakes again."""

from __future__ import annotations

import asyncio

import aiocoap
import pytest

from opendots.transport import create_client_context, open_session, reset_session, start_server
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.coap_site import server_site
from tests.helpers.udp_proxy import LossyUdpProxy

CHANGE_CIPHER_SPEC = 20  # the first record of the client's last flight in an abbreviated handshake


async def test_a_resumed_session_whose_finished_never_reached_the_server_is_not_taken_as_open_rfc6347_4_2_4(pki_dir):
    site, _whoami, _counter = server_site()
    port = free_port()
    endpoint = await start_server(
        site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)], tls=False, handshake_timeout=1.5
    )
    proxy = LossyUdpProxy()
    base = f"coaps://127.0.0.1:{await proxy.start(port)}"
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        await open_session(client, base, timeout=10)  # a full handshake: the session to resume
        await reset_session(client, base)
        await asyncio.sleep(0.2)  # the close_notify reaches the server
        assert len(endpoint.dtls.sessions) == 0
        # The client's ChangeCipherSpec + Finished, and each retransmission of them, are lost on the way.
        proxy.upstream_filter = lambda datagram: datagram[0] == CHANGE_CIPHER_SPEC
        with pytest.raises(TimeoutError):  # unconfirmed: before, the attempt succeeded at once on a dead session
            await open_session(client, base, timeout=3)
        for _ in range(100):  # the server gives up on the handshake after its 1.5 s
            if endpoint.dtls.stats().expired_total >= 1:
                break
            await asyncio.sleep(0.05)
        assert endpoint.dtls.stats().expired_total == 1 and len(endpoint.dtls.sessions) == 0
        assert proxy.dropped >= 1
        proxy.upstream_filter = None  # the path heals: the next attempt must open a session the server holds
        await open_session(client, base, timeout=10)
        request = aiocoap.Message(code=aiocoap.GET, uri=f"{base}/whoami")
        answer = await asyncio.wait_for(client.request(request).response, 10)
        assert answer.code == aiocoap.CONTENT
        assert len(endpoint.dtls.sessions) == 1 and endpoint.dtls.stats().established == 1
    finally:
        await client.shutdown()
        proxy.close()
        await endpoint.shutdown()
