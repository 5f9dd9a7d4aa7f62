"""What the agent does when its DOTS server is out of reach, over real sockets: control requests fail fast with
the reason instead of waiting a whole request timeout, and a redirection to an alternate server that never answers
ends with its TTL (RFC 9132 §4.6), the agent saying all along what it is doing."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from opendots.signal.client.shell.agent import ClientAgent
from opendots.signal.client.shell.control import ControlError
from tests.e2e.client_stack import control, make_setup, start_server, wait_until

try:
    from opendots.signal.server.core.server import Redirection
except ImportError as missing:
    pytest.skip(f"needs the signal server: {missing}", allow_module_level=True)


async def test_a_request_without_a_session_fails_fast_and_says_why(pki_dir: Path, tmp_path: Path) -> None:
    setup = make_setup(pki_dir, tmp_path, "dtls")  # nothing listens on setup.port
    setup.settings = replace(setup.settings, reconnect_min=30.0, reconnect_max=60.0, connect_timeout=1.0)
    agent = ClientAgent(setup.client_config, setup.settings)
    await agent.start()
    try:
        await wait_until(lambda: agent._state == "waiting", 10, "the first failed connection attempt")
        started = time.monotonic()
        with pytest.raises(ControlError) as failure:
            await control(setup, "mitigate", scope={"target-prefix": ["192.0.2.1/32"], "lifetime": 60})
        assert time.monotonic() - started < setup.settings.request_timeout / 2  # not a whole request timeout
        assert failure.value.code == "5.03"
        message = str(failure.value)
        assert "next attempt to reach localhost in" in message and "last attempt:" in message, message
        info = await control(setup, "session")
        assert info["connected"] is False and info["activity"].startswith("next attempt")
        assert info["last-error"]
    finally:
        await agent.stop()


async def test_redirection_to_an_unreachable_alternate_falls_back_when_its_ttl_expires(tmp_path: Path) -> None:
    from opendots.cli.certs import init_pki

    pki = tmp_path / "pki"
    init_pki(pki, server_names=["alt.example"])
    setup = make_setup(pki, tmp_path, "dtls")
    setup.settings = replace(setup.settings, reconnect_min=0.5, reconnect_max=30.0, connect_timeout=1.0)
    primary = await start_server(setup.server_config, "127.0.0.1", setup.port)
    agent = ClientAgent(setup.client_config, setup.settings)
    await agent.start()
    try:
        assert await agent.wait_connected(10)
        created = await control(setup, "mitigate", scope={"target-prefix": ["192.0.2.1/32"], "lifetime": 120})
        assert created["code"] == "2.01"  # an attack is active: mitigating
        # 127.0.0.3 serves nothing: the alternate never answers.
        primary.service.set_redirection(Redirection("alt.example", ("127.0.0.3",), ttl=3))
        # The redirection reaches the agent as a notification and as the answer to this GET, whichever comes first:
        # the GET is answered 5.03 with the redirection, or refused when the agent already left for the alternate
        # (which is silent). Both are right; what follows is the point of the test.
        try:
            answered = await control(setup, "status", refresh=True)
        except ControlError:
            pass
        else:
            assert answered["code"] == "5.03" and "alt-server" in json.dumps(answered["body"]), answered
        info = await control(setup, "session")
        assert info["redirection"]["alt-server"] == "alt.example" and "redirected" in info["activity"]
        primary.service.set_redirection(None)
        # Back on the provisioned server within the TTL plus one attempt, not after minutes of back-off.
        await wait_until(
            lambda: agent.connection is not None and "127.0.0.1" in agent.connection.candidate.base_uri, 10, "fallback"
        )
        info = await control(setup, "session")
        assert info["redirection"] is None and info["activity"] == "connected to localhost"
    finally:
        await agent.stop()
        await primary.stop()
