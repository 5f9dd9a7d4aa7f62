"""Our DOTS client agent against our DOTS server, over real DTLS and real TLS on loopback.

The server runs with a 1-second heartbeat (acceptable range widened for the test) so heartbeats, loss and
recovery happen in seconds; everything else is the production code path: Happy Eyeballs, NON/CON requests,
Observe notifications, the control socket, the SQLite stores of both sides.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from opendots.cli.admin import admin as admin_cli
from opendots.cli.certs import init_pki
from opendots.cli.client import client as client_cli
from opendots.config import ServerConfig
from opendots.signal.client.shell.agent import ClientAgent
from opendots.signal.client.shell.control import ControlClient
from opendots.signal.server.core import Status
from opendots.signal.server.core.server import Redirection
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port
from tests.e2e.client_stack import control, make_setup, server_settings, start_server, wait_until


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_after_module() -> Iterator[None]:
    # Run leftover finalizers (aiocoap observations, transports) now rather than in the middle of a later
    # compile(): CPython 3.11.7 then fails with "AST constructor recursion depth mismatch".
    yield
    gc.collect()


@pytest.fixture(params=["dtls", "tls"])
async def running(request: pytest.FixtureRequest, pki_dir: Path, tmp_path: Path) -> AsyncIterator[tuple]:
    setup = make_setup(pki_dir, tmp_path, request.param)
    server = await start_server(setup.server_config, "127.0.0.1", setup.port)
    agent = ClientAgent(setup.client_config, setup.settings)
    await agent.start()
    try:
        assert await agent.wait_connected(10), "the agent never connected"
        yield setup, server, agent
    finally:
        await agent.stop()
        await server.stop()


async def test_mitigate_observe_efficacy_withdraw(running: tuple) -> None:
    setup, server, agent = running
    assert agent.session_info()["transport"] == setup.client_config.transport
    scope = {"target-prefix": ["192.0.2.0/26"], "target-port-range": [{"lower-port": 53}], "target-protocol": [17]}
    created = await control(setup, "mitigate", scope={**scope, "lifetime": 600})
    assert created["code"] == "2.01" and created["mid"] == 0
    assert created["body"]["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["lifetime"] == 600

    # The agent observes the mitigation: the first notification carries the server's status...
    await wait_until(lambda: agent.core.mitigations[0].status is not None, 5, "a first status")
    assert agent.core.mitigations[0].status == "attack-mitigation-in-progress"
    # ...and a later change (the mitigator reports success) arrives as an Observe notification.
    cuid = agent.cuid
    server.service.report_status(f"{cuid}/0", Status.ATTACK_SUCCESSFULLY_MITIGATED)  # stored, then notified
    await wait_until(lambda: agent.core.mitigations[0].status == "attack-successfully-mitigated", 5, "a notification")
    cached = await control(setup, "status")
    assert [m["status"] for m in cached["mitigations"]] == ["attack-successfully-mitigated"]

    fresh = await control(setup, "status", refresh=True, mid=0)
    (entry,) = fresh["body"]["ietf-dots-signal-channel:mitigation-scope"]["scope"]
    assert fresh["code"] == "2.05" and entry["mid"] == 0 and entry["target-prefix"] == ["192.0.2.0/26"]

    efficacy = await control(setup, "efficacy", mid=0, **{"attack-status": "attack-successfully-mitigated"})
    assert efficacy["code"] == "2.04"
    withdrawn = await control(setup, "withdraw", mid=0)
    assert withdrawn["code"] == "2.02" and agent.core.mitigations == {}
    second = await control(setup, "mitigate", scope={"target-prefix": ["198.51.100.7/32"], "lifetime": 60})
    assert second["code"] == "2.01" and second["mid"] == 1  # mids only go up
    # A prefix outside this client's domain is refused by the server (4.00 naming it); the mid is burnt, not reused.
    outside = await control(setup, "mitigate", scope={"target-prefix": ["10.1.2.0/24"], "lifetime": 60})
    assert outside["code"] == "4.00" and "10.1.2.0/24" in outside["diagnostic"] and outside["mid"] == 2
    assert sorted(agent.core.mitigations) == [1]


async def test_session_configuration_set_get_delete(running: tuple) -> None:
    setup, _, agent = running
    await wait_until(lambda: agent.core.parameters.heartbeat_interval == 1, 5, "the server's configuration")
    created = await control(setup, "config-set", mitigating={"heartbeat_interval": 3}, idle={"heartbeat_interval": 2})
    assert created["code"] == "2.01"
    await wait_until(lambda: agent.core.parameters.heartbeat_interval == 2, 5, "the negotiated configuration")
    current = await control(setup, "config-get", **{"current-sid": True})
    config = current["body"]["ietf-dots-signal-channel:signal-config"]
    assert config["idle-config"]["heartbeat-interval"]["current-value"] == 2
    assert config["mitigating-config"]["heartbeat-interval"]["current-value"] == 3
    refused = await control(setup, "config-set", idle={"heartbeat_interval": 1000})
    assert refused["code"] == "4.22"
    deleted = await control(setup, "config-delete")
    assert deleted["code"] == "2.02"
    await wait_until(lambda: agent.core.parameters.heartbeat_interval == 1, 5, "the server defaults again")


async def test_heartbeats_flow_both_ways(running: tuple) -> None:
    _, server, agent = running
    started = time.time()
    await asyncio.sleep(2.5)
    # The server's heartbeats reached the client (its /hb resource)...
    assert agent.core.last_peer_heartbeat is not None and agent.core.last_peer_heartbeat > started
    assert agent.core.peer_hb_status(time.time())
    # ...and the client's reached the server.
    peer = server.service.core.liveness("client")  # the server's liveness record of this client
    assert peer.last_client_heartbeat is not None and peer.last_client_heartbeat > started
    assert not agent.core.heartbeats_failing and agent.sessions_established == 1


@pytest.mark.parametrize("transport", ["dtls", "tls"])
async def test_server_restart_recreates_the_clients_state(transport: str, pki_dir: Path, tmp_path: Path) -> None:
    setup = make_setup(pki_dir, tmp_path, transport)
    server = await start_server(setup.server_config, "127.0.0.1", setup.port)
    agent = ClientAgent(setup.client_config, setup.settings)
    await agent.start()
    try:
        assert await agent.wait_connected(10)
        created = await control(setup, "mitigate", scope={"target-prefix": ["203.0.113.0/28"], "lifetime": 300})
        assert created["code"] == "2.01"
        assert (await control(setup, "config-set", idle={"heartbeat_interval": 2}))["code"] == "2.01"
        await wait_until(lambda: agent.core.mitigations[0].status is not None, 5, "a first status")
        # The server restarts with an empty database: everything the client had is gone on its side.
        await server.stop()
        setup.server_config.db = tmp_path / "fresh-server.db"
        server = await start_server(setup.server_config, "127.0.0.1", setup.port)
        await wait_until(lambda: agent.sessions_established >= 2, 20, "a new session")
        await wait_until(lambda: len(server.service.core.mitigations()) == 1, 10, "the mitigation re-created")
        (mitigation,) = server.service.core.mitigations()
        assert mitigation.record.mid == 0 and mitigation.record.cuid == agent.cuid
        assert 280 <= mitigation.record.lifetime <= 300  # what remained of the grant
        await wait_until(lambda: server.resource.observer_count("client") >= 1, 10, "the observation re-registered")
        assert server.service.core.session_config("client").idle.heartbeat_interval == 2  # config re-conveyed
    finally:
        await agent.stop()
        await server.stop()


async def test_redirection_to_an_alternate_server(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    init_pki(pki, server_names=["alt.example"])  # the server certificate also names the alternate server
    setup = make_setup(pki, tmp_path, "dtls")
    primary = await start_server(setup.server_config, "127.0.0.1", setup.port)
    alternate_config = ServerConfig.load(pki / "server.toml")
    alternate_config.db = tmp_path / "alternate.db"
    alternate = await start_server(alternate_config, "127.0.0.2", setup.port)
    agent = ClientAgent(setup.client_config, setup.settings)
    await agent.start()
    try:
        assert await agent.wait_connected(10)
        await wait_until(lambda: agent.core.config_body is not None, 5, "the first configuration exchange")
        primary.service.core.set_redirection(Redirection("alt.example", ("127.0.0.2",), ttl=600))
        created = await control(setup, "mitigate", scope={"target-prefix": ["192.0.2.128/25"], "lifetime": 120})
        assert created["code"] == "2.01"  # answered by the alternate server after following the 5.03
        assert agent.session_info()["server"] == f"coaps://127.0.0.2:{setup.port}"
        assert [m.record.mid for m in alternate.service.core.mitigations()] == [created["mid"]]
        assert primary.service.core.mitigations() == []
    finally:
        await agent.stop()
        await primary.stop()
        await alternate.stop()


async def test_happy_eyeballs_falls_back_to_tls_when_dtls_is_unavailable(pki_dir: Path, tmp_path: Path) -> None:
    setup = make_setup(pki_dir, tmp_path, "auto")
    setup.client_config.server_addresses = ["::1", "127.0.0.1"]  # the server listens on IPv4 TCP only
    server = await start_signal_server(
        setup.server_config, bind=[("127.0.0.1", setup.port)], settings=server_settings(setup.server_config), dtls=False
    )
    agent = ClientAgent(setup.client_config, setup.settings)
    started = time.monotonic()
    await agent.start()
    try:
        assert await agent.wait_connected(10)
        elapsed = time.monotonic() - started
        info = agent.session_info()
        assert (info["transport"], info["server"]) == ("tls", f"coaps+tcp://127.0.0.1:{setup.port}")
        # Three losing candidates (DTLS/IPv6, DTLS/IPv4, TLS/IPv6) cost at most a few attempt delays, not timeouts.
        assert elapsed < setup.settings.connect_timeout
        assert agent.eyeballs.next_dtls_probe() is not None  # DTLS will be tried again later (§4.3)
        created = await control(setup, "mitigate", scope={"target-prefix": ["192.0.2.64/27"], "lifetime": 60})
        assert created["code"] == "2.01"
    finally:
        await agent.stop()
        await server.stop()


def test_server_and_client_processes_and_cli(pki_dir: Path, tmp_path: Path) -> None:
    """`opendots server` and `opendots client run` as processes; the CLI verbs go through the agent's socket."""
    directory = tmp_path / "deploy"
    port = free_port()
    server_config, client_config = init_pki(directory, signal_port=port)
    server_config.listen = ["127.0.0.1"]
    server_config.data_port = free_port()  # not 443: other runs on this machine may hold it
    server_config.save(directory / "server.toml")
    client_config.server_addresses = ["127.0.0.1"]
    client_config.control_socket = Path("/tmp") / f"odc-{uuid.uuid4().hex[:12]}.sock"
    client_config.save(directory / "client.toml")
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "PYTHONPATH": str(root)}
    metrics = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "opendots", "server", "--config", str(directory / "server.toml"), "--metrics", metrics],
        cwd=root, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    agent = subprocess.Popen(
        [sys.executable, "-c", "from opendots.cli.client import client; client()", "run",
         "--config", str(directory / "client.toml")],
        cwd=root, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        connected = False
        while not connected:
            assert server.poll() is None, server.stderr.read().decode()
            assert agent.poll() is None, agent.stderr.read().decode()
            assert time.monotonic() < deadline, "the agent never reached the server"
            try:
                with ControlClient(client_config.control_socket, timeout=5) as control_client:
                    session = control_client.session()
                    connected = session["connected"]
            except (ConnectionError, OSError):
                pass
            time.sleep(0.1)
        assert session["event-loop"] == "uvloop"  # the agent's default, as the server's
        runner = CliRunner()
        common = ["--config", str(directory / "client.toml")]
        created = runner.invoke(
            client_cli, ["mitigate", *common, "--target-prefix", "198.51.100.0/25", "--lifetime", "120"]
        )
        assert created.exit_code == 0 and created.output.startswith("mid 0: 2.01"), created.output
        deadline = time.monotonic() + 5
        while True:
            status = json.loads(runner.invoke(client_cli, ["status", *common, "--json"]).output)
            (entry,) = status["ietf-dots-signal-channel:mitigation-scope"]["scope"]
            if entry["status"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert entry["status"] == "attack-mitigation-in-progress"
        efficacy = runner.invoke(client_cli, ["efficacy", *common, "--mid", "0", "--attack-status", "under-attack"])
        assert efficacy.exit_code == 0 and "2.04" in efficacy.output, efficacy.output
        config = runner.invoke(client_cli, ["config", "set", *common, "--heartbeat-interval", "60", "--set", "idle"])
        assert config.exit_code == 0 and config.output.startswith("sid 1: 2.01"), config.output
        shown = runner.invoke(client_cli, ["config", "get", *common])
        assert any(
            line.split()[:3] == ["idle-config", "heartbeat-interval", "60"] for line in shown.output.splitlines()
        )
        admin = json.loads(
            runner.invoke(admin_cli, ["status", "--config", str(directory / "server.toml"), "--json"]).output
        )
        assert admin["event-loop"] == "uvloop"  # `opendots server` runs on uvloop by default (opendots.eventloop)
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as scraped:
            exposition = scraped.read().decode()
        assert 'opendots_signal_requests_total{code="2.01",method="PUT",resource="mitigate"} 1.0' in exposition
        assert 'opendots_mitigations{client="client",status="attack-mitigation-in-progress"} 1.0' in exposition
        withdrawn = runner.invoke(client_cli, ["withdraw", *common, "--mid", "0"])
        assert withdrawn.exit_code == 0 and "2.02" in withdrawn.output, withdrawn.output

        # SIGHUP: the operator narrowed the client to IPv6; the server adopts it without dropping the session.
        edited = ServerConfig.load(directory / "server.toml")
        edited.clients = [replace(c, prefixes=(ipaddress.ip_network("2001:db8::/32"),)) for c in edited.clients]
        edited.save(directory / "server.toml")
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            refused = runner.invoke(client_cli, ["mitigate", *common, "--target-prefix", "198.51.100.128/25"])
            if "4.00" in refused.output or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "4.00" in refused.output and "outside" in refused.output, refused.output
        with ControlClient(client_config.control_socket, timeout=5) as control_client:
            assert control_client.session()["connected"]
    finally:
        for process in (agent, server):
            process.send_signal(signal.SIGTERM)
        assert agent.wait(10) == 0 and server.wait(10) == 0
