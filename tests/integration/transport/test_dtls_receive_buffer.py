"""The DTLS server's one UDP socket receives every session's datagrams: its receive buffer is raised (issue #18,
20,000 sessions: heartbeats arriving during a pause of the event loop must not overflow Linux's 208 KiB default)."""

from __future__ import annotations

import socket
from pathlib import Path

from opendots.transport import start_server
from opendots.transport.dtls_server import RECEIVE_BUFFER
from tests.conftest import free_port
from tests.helpers import tls_files


async def test_the_listening_udp_socket_asks_for_a_receive_buffer_of_megabytes(pki_dir) -> None:
    import aiocoap.resource

    endpoint = await start_server(
        aiocoap.resource.Site(), credentials=tls_files(pki_dir, "server"), bind=[("127.0.0.1", free_port())], tls=False
    )
    try:
        assert endpoint.dtls is not None
        sock = endpoint.dtls.sockets[0].transport.get_extra_info("socket")
        ceiling = int(Path("/proc/sys/net/core/rmem_max").read_text())
        # Linux doubles what is asked (bookkeeping overhead) and caps the request at rmem_max.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * min(RECEIVE_BUFFER, ceiling)
    finally:
        await endpoint.shutdown()
