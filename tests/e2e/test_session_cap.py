"""Past `max_sessions` a server sheds new sessions cleanly (issue #18): a DTLS ClientHello gets no cookie answer, a
TLS connection is closed at once, both counted; a client agent with a second address moves on to it (RFC 9132 §4.3:
the client tries the server's addresses and transports in turn, Happy Eyeballs)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

import aiocoap
import pytest

from opendots.signal.client.shell.agent import ClientAgent
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.e2e.client_stack import make_setup, server_settings
from tests.helpers import tls_files

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("transport", ["dtls", "tls"])
async def test_a_full_server_refuses_the_new_session_and_the_agent_moves_on_to_its_next_address(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    setup = make_setup(pki_dir, tmp_path, transport)
    full_config = replace(setup.server_config, max_sessions=1)
    other_config = replace(setup.server_config, db=tmp_path / f"other-{uuid.uuid4().hex[:6]}.db")
    full = await start_signal_server(
        full_config, bind=[("127.0.0.1", setup.port)], settings=server_settings(full_config)
    )
    other = await start_signal_server(
        other_config, bind=[("127.0.0.2", setup.port)], settings=server_settings(other_config)
    )
    # The one session the full server may hold: another client's, up before the agent starts.
    holder = await create_client_context(tls_files(pki_dir, "other"), server_name="localhost")
    scheme = "coaps" if transport == "dtls" else "coaps+tcp"
    uri = f"{scheme}://127.0.0.1:{setup.port}/.well-known/dots/hb"
    ping = await holder.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
    assert ping.code.is_response()
    setup.client_config.server_addresses = ["127.0.0.1", "127.0.0.2"]
    agent = ClientAgent(setup.client_config, setup.settings)
    started = time.monotonic()
    await agent.start()
    try:
        assert await agent.wait_connected(15)
        info = agent.session_info()
        assert (info["transport"], info["server"]) == (transport, f"{scheme}://127.0.0.2:{setup.port}")
        assert time.monotonic() - started < 15
        if transport == "dtls":
            assert full.endpoint.dtls is not None
            stats = full.endpoint.dtls.stats()
            assert stats.refused_full >= 1 and stats.sessions == 1
        else:
            assert full.endpoint.tls_refused_full() >= 1 and full.endpoint.tls_connection_count() == 1
    finally:
        await agent.stop()
        await holder.shutdown()
        await full.stop()
        await other.stop()
