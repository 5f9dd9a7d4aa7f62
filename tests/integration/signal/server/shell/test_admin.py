"""The operator's control socket of a running server (`opendots admin`): real server, real DTLS client."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from dataclasses import replace
from pathlib import Path

import aiocoap
import pytest
from click.testing import CliRunner

from opendots.cli.admin import admin
from opendots.config import ServerConfig
from opendots.mitigate.router import build_router
from opendots.model import decode_signal
from opendots.signal.client.shell.control import ControlClient, ControlError
from opendots.signal.server.shell.admin import start_admin_socket
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.signal_harness import SCOPE
from tests.helpers.signal_server import BASE, cuid_of, request


@pytest.fixture
async def served(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.admin_socket = Path("/tmp") / f"od-admin-{uuid.uuid4().hex[:10]}.sock"  # short: sun_path is 108 bytes
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    control = await start_admin_socket(running, config.admin_socket)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    config.save(tmp_path / "server.toml")
    try:
        yield running, config, client, tmp_path / "server.toml"
    finally:
        await client.shutdown()
        await control.close()
        await running.stop()


def call(config: ServerConfig, op: str, **args):
    with ControlClient(config.admin_socket, timeout=10) as control:
        return control.call(op, **args)


async def test_status_mitigations_and_manual_status(served):
    running, config, client, _ = served
    host, port = running.endpoint.dtls_addresses[0][:2]
    cuid = cuid_of(config, "client")
    uri = f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid}"
    body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::5/128"], "lifetime": 600}]}}
    assert (await request(client, aiocoap.PUT, f"{uri}/mid=5", body)).code == aiocoap.CREATED

    status = await asyncio.to_thread(call, config, "status")
    assert status["sessions"]["dtls"] == 1 and status["redirection"] is None
    mine = next(c for c in status["clients"] if c["name"] == "client")
    assert mine["mitigations"] == 1 and mine["enforcing"] == 1 and mine["connected"] is True
    listed = (await asyncio.to_thread(call, config, "mitigations", client="client"))["mitigations"]
    assert [(m["mid"], m["status"], m["target-prefix"]) for m in listed] == [
        (5, "attack-mitigation-in-progress", ["2001:db8:6401::5/128"])
    ]
    assert 595 <= listed[0]["lifetime"] <= 600 and listed[0]["pkts-dropped"] is None  # nothing measured yet

    answer = await asyncio.to_thread(call, config, "report-status", cuid=cuid, mid=5, status="attack-stopped")
    assert answer == {"status": "attack-stopped"}
    got = await request(client, aiocoap.GET, f"{uri}/mid=5")
    assert decode_signal(got.payload)[SCOPE]["scope"][0]["status"] == "attack-stopped"

    with pytest.raises(ControlError) as missing:
        await asyncio.to_thread(call, config, "report-status", cuid=cuid, mid=6, status="attack-stopped")
    assert missing.value.code == "4.04"
    with pytest.raises(ControlError, match="must be one of"):
        await asyncio.to_thread(call, config, "report-status", cuid=cuid, mid=5, status="terminated")
    with pytest.raises(ControlError, match="unknown operation"):
        await asyncio.to_thread(call, config, "shutdown")


async def test_the_operator_terminates_a_mitigation_and_its_observer_sees_status_6(served):
    """RFC 9132 §4.4.2: a server may terminate a mitigation (status 6); the owner's observer is notified, the
    mitigator withdraws it, and it is gone from the store."""
    running, config, client, config_path = served
    host, port = running.endpoint.dtls_addresses[0][:2]
    cuid = cuid_of(config, "client")
    uri = f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid}/mid=8"
    body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::8/128"], "lifetime": 600}]}}
    assert (await request(client, aiocoap.PUT, uri, body)).code == aiocoap.CREATED
    observe = client.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
    await asyncio.wait_for(observe.response, 10)
    notifications = observe.observation.__aiter__()
    answer = await asyncio.to_thread(
        CliRunner().invoke,
        admin,
        ["terminate", "--client", "client", "--mid", "8", "--yes", "--config", str(config_path)],
    )
    assert answer.exit_code == 0, answer.output
    assert "attack-mitigation-in-progress -> attack-mitigation-terminated" in answer.output
    notification = await asyncio.wait_for(notifications.__anext__(), 10)
    assert decode_signal(notification.payload)[SCOPE]["scope"][0]["status"] == "attack-mitigation-terminated"
    observe.observation.cancel()
    await running.service.idle()
    assert running.service.outcomes[("withdraw", "ok")] == 1
    assert (await asyncio.to_thread(call, config, "mitigations"))["mitigations"] == []
    assert (await request(client, aiocoap.GET, uri)).code == aiocoap.NOT_FOUND
    with pytest.raises(ControlError) as missing:
        await asyncio.to_thread(call, config, "terminate", client="client", mid=8)
    assert missing.value.code == "4.04"
    unconfirmed = await asyncio.to_thread(
        CliRunner().invoke,
        admin,
        ["terminate", "--client", "client", "--mid", "8", "--config", str(config_path)],
        "n\n",
    )
    assert unconfirmed.exit_code != 0 and "Aborted" in unconfirmed.output


async def test_redirection_is_set_and_cleared_by_the_operator(served):
    running, config, client, _ = served
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid_of(config, 'client')}/mid=1"
    body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::1/128"], "lifetime": 600}]}}
    set_ = await asyncio.to_thread(
        call, config, "redirect", **{"alt-server": "dots2.example.net", "records": ["2001:db8::2"], "ttl": 300}
    )
    assert set_["redirection"] == {"alt-server": "dots2.example.net", "records": ["2001:db8::2"], "ttl": 300}
    redirected = await request(client, aiocoap.PUT, uri, body)
    assert redirected.code == aiocoap.SERVICE_UNAVAILABLE and redirected.opt.max_age == 300
    alt = decode_signal(redirected.payload)["ietf-dots-signal-channel:redirected-signal"]
    assert alt == {"alt-server": "dots2.example.net", "alt-server-record": ["2001:db8::2"]}

    with pytest.raises(ControlError, match="records"):
        await asyncio.to_thread(call, config, "redirect", **{"alt-server": "x.example", "records": ["not-an-ip"]})
    await asyncio.to_thread(call, config, "redirect-clear")
    assert (await request(client, aiocoap.PUT, uri, body)).code == aiocoap.CREATED


async def test_the_admin_cli(served):
    running, _config, _client, config_path = served
    runner = CliRunner()

    async def invoke(*args: str):
        return await asyncio.to_thread(runner.invoke, admin, [*args, "--config", str(config_path)])

    shown = await invoke("status")
    assert shown.exit_code == 0, shown.output
    assert "sessions: 0 DTLS, 0 TLS" in shown.output and "client" in shown.output
    redirected = await invoke("redirect", "--to", "dots2.example.net", "--record", "192.0.2.10", "--ttl", "60")
    assert redirected.exit_code == 0 and "redirecting to dots2.example.net (192.0.2.10), TTL 60 s" in redirected.output
    assert running.service.core.redirection is not None
    cleared = await invoke("redirect", "--clear")
    assert cleared.exit_code == 0 and running.service.core.redirection is None
    empty = await invoke("mitigations", "--json")
    assert empty.exit_code == 0 and '"mitigations": []' in empty.output
    details = await invoke("clients")
    assert details.exit_code == 0 and "HEARTBEAT (IDLE/MITIGATING)" in details.output, details.output
    assert any(line.split()[:1] == ["client"] for line in details.output.splitlines())
    refused = await invoke("report-status", "--cuid", "nope", "--mid", "1", "--status", "attack-stopped")
    assert refused.exit_code != 0 and "no mitigation" in refused.output


def test_the_admin_cli_without_a_server(tmp_path: Path, pki_dir: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.admin_socket = tmp_path / "nobody.sock"
    config.save(tmp_path / "server.toml")
    result = CliRunner().invoke(admin, ["status", "--config", str(tmp_path / "server.toml")])
    assert result.exit_code != 0 and "no server answers" in result.output


async def test_reload_adopts_new_clients_and_prefixes_without_dropping_sessions(pki_dir: Path, tmp_path: Path):
    full = ServerConfig.load(pki_dir / "server.toml")
    other = next(c for c in full.clients if c.name == "other")
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.clients = [c for c in config.clients if c.name != "other"]  # "other" not authorized at first
    config.admin_socket = Path("/tmp") / f"od-admin-{uuid.uuid4().hex[:10]}.sock"
    path = tmp_path / "server.toml"
    config.save(path)
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    control = await start_admin_socket(running, config.admin_socket, path)
    mine = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    theirs = await create_client_context(files(pki_dir, "other"), server_name="localhost")
    try:
        host, port = running.endpoint.dtls_addresses[0][:2]

        def put_uri(cuid: str, mid: int) -> str:
            return f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid}/mid={mid}"

        def body(prefix: str) -> dict:
            return {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 600}]}}

        cuid = cuid_of(config, "client")
        assert (await request(mine, aiocoap.PUT, put_uri(cuid, 1), body("192.0.2.1/32"))).code == aiocoap.CREATED
        refused = await request(theirs, aiocoap.PUT, put_uri(other.cuid, 1), body("198.51.100.1/32"))
        assert refused.code == aiocoap.UNAUTHORIZED

        # The operator authorizes "other" and narrows "client" to 2001:db8::/32, then reloads.
        edited = ServerConfig.load(path)  # the file, not the server's own copy
        narrowed = next(c for c in edited.clients if c.name == "client")
        edited.clients = [replace(narrowed, prefixes=(ipaddress.ip_network("2001:db8::/32"),)), other]
        edited.save(path)
        changes = (await asyncio.to_thread(call, config, "reload"))["clients"]
        assert changes == {"added": ["other"], "removed": [], "changed": ["client"]}

        accepted = await request(theirs, aiocoap.PUT, put_uri(other.cuid, 1), body("198.51.100.1/32"))
        assert accepted.code == aiocoap.CREATED
        outside = await request(mine, aiocoap.PUT, put_uri(cuid, 2), body("192.0.2.2/32"))
        assert outside.code == aiocoap.BAD_REQUEST and b"outside" in outside.payload
        # The session of "client" survived the reload, and its mitigation accepted before it is still held.
        assert running.endpoint.stats().established == 2
        got = await request(mine, aiocoap.GET, put_uri(cuid, 1))
        assert got.code == aiocoap.CONTENT

        # A reload that would leave a [[mitigators]] entry naming a client that is gone changes nothing.
        edited.clients = [other]
        edited.save(path)
        at_start = ServerConfig.load(pki_dir / "server.toml")
        at_start.mitigators = [{"type": "logging", "clients": ["client"]}]
        running.service.mitigator = build_router(at_start)  # as if [[mitigators]] had named "client" from the start
        with pytest.raises(ControlError, match="still name clients"):
            await asyncio.to_thread(call, config, "reload")
        assert (await request(mine, aiocoap.GET, put_uri(cuid, 1))).code == aiocoap.CONTENT
    finally:
        await mine.shutdown()
        await theirs.shutdown()
        await control.close()
        await running.stop()


async def test_mitigations_with_a_limit_lists_the_first_by_client_and_mid_and_counts_them_all(served):
    """The dashboard builds its snapshot on the event loop: with a limit, rendering stays bounded whatever the number
    of mitigations held, and the total says how many there are."""
    running, config, client, _ = served
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid_of(config, 'client')}"
    for mid in (9, 3, 7, 5):
        body = {SCOPE: {"scope": [{"target-prefix": [f"2001:db8:6401::{mid}/128"], "lifetime": 600}]}}
        assert (await request(client, aiocoap.PUT, f"{uri}/mid={mid}", body)).code == aiocoap.CREATED
    listed = await asyncio.to_thread(call, config, "mitigations", limit=2)
    assert [entry["mid"] for entry in listed["mitigations"]] == [3, 5] and listed["total"] == 4
    everything = await asyncio.to_thread(call, config, "mitigations")
    assert [entry["mid"] for entry in everything["mitigations"]] == [3, 5, 7, 9] and everything["total"] == 4
    for bad in (0, -1, "2", True):
        with pytest.raises(ControlError, match="'limit' must be a positive integer"):
            await asyncio.to_thread(call, config, "mitigations", limit=bad)
