"""The signal-channel server end to end over real DTLS and TLS sockets on loopback (aiocoap client)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal
from opendots.signal.server.core import Limits, ParameterSet, Redirection, ServerSettings, SessionConfig, Status
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.signal_harness import SCOPE, figure
from tests.helpers.signal_server import BASE, cuid_of, request


async def test_mitigation_over_dtls_with_observe_and_isolation(pki_dir: Path, server):
    host, port = server.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}"
    cuid = cuid_of(server.config, "client")
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    other = await create_client_context(files(pki_dir, "other"), server_name="localhost")
    try:
        body = figure("figure07")
        body[SCOPE]["scope"][0]["target-prefix"] = ["2001:db8:6401::1/128", "2001:db8:6401::2/128"]
        created = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=123", body)
        assert str(created.code) == "2.01 Created"
        assert created.opt.content_format == 271
        assert decode_signal(created.payload) == figure("figure10")

        observe = client.request(
            aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/mitigate/cuid={cuid}/mid=123", observe=0)
        )
        first = await asyncio.wait_for(observe.response, 10)
        assert decode_signal(first.payload)[SCOPE]["scope"][0]["status"] == "attack-mitigation-in-progress"
        notifications = observe.observation.__aiter__()
        server.service.report_status(f"{cuid}/123", Status.ATTACK_SUCCESSFULLY_MITIGATED)
        notification = await asyncio.wait_for(notifications.__anext__(), 10)
        assert notification.mtype == aiocoap.NON
        assert decode_signal(notification.payload)[SCOPE]["scope"][0]["status"] == "attack-successfully-mitigated"

        foreign = await request(other, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}/mid=123")
        assert foreign.code == aiocoap.NOT_FOUND
        collision = await request(other, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=124", body)
        assert collision.code == aiocoap.CONFLICT
        assert decode_signal(collision.payload) == figure("figure11")
        observe.observation.cancel()
    finally:
        await client.shutdown()
        await other.shutdown()


async def test_bad_payloads_and_heartbeat(pki_dir: Path, server):
    host, port = server.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}"
    cuid = cuid_of(server.config, "client")
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        before = server.store.dump()
        broken = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=1", b"\xa1\x01")
        assert broken.code == aiocoap.BAD_REQUEST and broken.payload  # diagnostic text
        json_body = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=1", b"{}", content_format=50)
        assert json_body.code == aiocoap.UNSUPPORTED_CONTENT_FORMAT
        assert server.store.dump() == before
        hb = await request(client, aiocoap.PUT, f"{uri}/hb", figure("figure27"), transport_tuning=aiocoap.Unreliable)
        assert hb.code == aiocoap.CHANGED and hb.payload == b""
        config = await request(client, aiocoap.GET, f"{uri}/config")
        assert config.code == aiocoap.CONTENT and config.opt.max_age == 3600
        assert decode_signal(config.payload)["ietf-dots-signal-channel:signal-config"]["idle-config"]
    finally:
        await client.shutdown()


async def test_mitigation_over_tls(pki_dir: Path, server):
    host, port = server.endpoint.tls_addresses[0][:2]
    uri = f"coaps+tcp://{host}:{port}{BASE}"
    cuid = cuid_of(server.config, "client")
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        body = {SCOPE: {"scope": [{"target-prefix": ["198.51.100.0/28"], "lifetime": 600}]}}
        created = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=7", body)
        assert created.code == aiocoap.CREATED
        listed = await request(client, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}")
        assert [e["mid"] for e in decode_signal(listed.payload)[SCOPE]["scope"]] == [7]
        deleted = await request(client, aiocoap.DELETE, f"{uri}/mitigate/cuid={cuid}/mid=7")
        assert deleted.code == aiocoap.DELETED
    finally:
        await client.shutdown()


class HeartbeatSink(aiocoap.resource.Resource):
    """The client side of server heartbeats: records peer-hb-status and answers 2.04 (Figure 28)."""

    def __init__(self) -> None:
        super().__init__()
        self.received: asyncio.Queue[tuple[bool, object]] = asyncio.Queue()

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        body = decode_signal(request.payload)
        self.received.put_nowait((body["ietf-dots-signal-channel:heartbeat"]["peer-hb-status"], request.mtype))
        return aiocoap.Message(code=aiocoap.CHANGED)


async def test_server_sends_non_confirmable_heartbeats(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    fast = ParameterSet(heartbeat_interval=1, missing_hb_allowed=3)
    settings = ServerSettings(
        clients=config.clients,
        session_defaults=SessionConfig(mitigating=fast, idle=fast),
        limits=Limits(heartbeat_interval=(1, 240)),
    )
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], tls=False, settings=settings)
    sink = HeartbeatSink()
    site = aiocoap.resource.Site()
    site.add_resource((".well-known", "dots", "hb"), sink)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost", site=site)
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}"
    try:
        assert (await request(client, aiocoap.GET, f"{uri}/config")).code == aiocoap.CONTENT
        status, mtype = await asyncio.wait_for(sink.received.get(), 10)
        assert (status, mtype) == (False, aiocoap.NON)  # we have not sent heartbeats of our own yet
        await request(client, aiocoap.PUT, f"{uri}/hb", figure("figure27"), transport_tuning=aiocoap.Unreliable)
        while not (await asyncio.wait_for(sink.received.get(), 10))[0]:
            pass  # the next heartbeat after ours reports that the server hears us
        assert list(running.resource.remotes) == ["client"]
    finally:
        await client.shutdown()
        await running.stop()


async def test_config_and_redirection_notifications(pki_dir: Path, server):
    host, port = server.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}"
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    other = await create_client_context(files(pki_dir, "other"), server_name="localhost")
    try:
        observed = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/config", observe=0))
        first = await asyncio.wait_for(observed.response, 10)
        idle = decode_signal(first.payload)["ietf-dots-signal-channel:signal-config"]["idle-config"]
        assert idle["heartbeat-interval"]["current-value"] == 30
        bystander = other.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/config", observe=0))
        await asyncio.wait_for(bystander.response, 10)
        notifications = observed.observation.__aiter__()
        assert (await request(client, aiocoap.PUT, f"{uri}/config/sid=1", figure("figure23"))).code == aiocoap.CREATED
        changed = await asyncio.wait_for(notifications.__anext__(), 10)
        idle = decode_signal(changed.payload)["ietf-dots-signal-channel:signal-config"]["idle-config"]
        assert idle["heartbeat-interval"]["current-value"] == 0
        # The other client's observation saw nothing of it.
        other_notifications = bystander.observation.__aiter__()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(other_notifications.__anext__()), 0.5)

        server.service.set_redirection(Redirection("alt-server.example", ("2001:db8:6401::1", "2001:db8:6401::2"), 600))
        try:
            redirected = await asyncio.wait_for(notifications.__anext__(), 10)
        except aiocoap.error.ResponseWrappingError as ended:  # aiocoap may raise the final error response
            redirected = ended.coapmessage
        assert redirected.code == aiocoap.SERVICE_UNAVAILABLE and redirected.opt.max_age == 600
        assert decode_signal(redirected.payload) == figure("figure26")
    finally:
        await client.shutdown()
        await other.shutdown()


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_a_get_all_larger_than_one_message_arrives_whole(pki_dir: Path, server, scheme: str):
    """GET of every mitigation (no Observe) takes the resource's direct path; a response over one message's
    payload must still be split into Block2 blocks (over DTLS) and reassembled by the client."""
    addresses = server.endpoint.dtls_addresses if scheme == "coaps" else server.endpoint.tls_addresses
    host, port = addresses[0][:2]
    uri = f"{scheme}://{host}:{port}{BASE}"
    cuid = cuid_of(server.config, "client")
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        for mid in range(1, 41):
            body = {SCOPE: {"scope": [{"target-prefix": [f"2001:db8:6401:{mid:x}::/64"], "lifetime": 3600}]}}
            assert (
                await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid={mid}", body)
            ).code.is_successful()
        everything = await request(client, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}")
        assert everything.code == aiocoap.CONTENT
        assert len(everything.payload) > 1024
        if scheme == "coaps":  # reassembled from blocks: aiocoap keeps the last block's option
            assert everything.opt.block2 is not None and everything.opt.block2.block_number > 0
        scopes = decode_signal(everything.payload)[SCOPE]["scope"]
        assert sorted(entry["mid"] for entry in scopes) == list(range(1, 41))
        if scheme == "coaps":  # a failure while splitting into blocks still answers: 5.00, and the server goes on

            async def broken(*_args):
                raise RuntimeError("a bug")

            server.resource._block2.extract_or_insert = broken
            try:
                failed = await request(client, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}")
                assert failed.code == aiocoap.INTERNAL_SERVER_ERROR and failed.payload == b"internal error"
            finally:
                del server.resource._block2.extract_or_insert
            assert (await request(client, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}")).code == aiocoap.CONTENT
    finally:
        await client.shutdown()


async def test_notifications_of_a_per_mid_observation_honour_its_c_filter(pki_dir: Path, server):
    """RFC 9132 §4.4.2: an observer that asked for 'c=n' (non-configuration data) gets only that in every
    notification; one that asked for 'c=c' only the configuration."""
    host, port = server.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}{BASE}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=7"
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::7/128"], "lifetime": 3600}]}}
        assert (await request(client, aiocoap.PUT, uri, body)).code == aiocoap.CREATED
        observations = {}
        for content in ("n", "c"):
            observe = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}?c={content}", observe=0))
            first = decode_signal((await asyncio.wait_for(observe.response, 10)).payload)[SCOPE]["scope"][0]
            observations[content] = (observe, observe.observation.__aiter__(), first)
        cuid = cuid_of(server.config, "client")
        server.service.report_status(f"{cuid}/7", Status.ATTACK_SUCCESSFULLY_MITIGATED)
        for content, (observe, notifications, first) in observations.items():
            notification = await asyncio.wait_for(notifications.__anext__(), 10)
            entry = decode_signal(notification.payload)[SCOPE]["scope"][0]
            assert set(entry) == set(first), content  # the same members as the observed GET's answer
            if content == "n":
                assert entry["status"] == "attack-successfully-mitigated" and "target-prefix" not in entry
            else:
                assert entry["target-prefix"] == ["2001:db8:6401::7/128"] and "status" not in entry
            observe.observation.cancel()
    finally:
        await client.shutdown()


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_plain_requests_are_answered_without_a_task_and_a_bug_answers_5_00(
    pki_dir: Path, server, scheme: str, monkeypatch: pytest.MonkeyPatch
):
    """PromptAnswerContext: a plain PUT is answered inside the transport callback (aiocoap's per-request task is
    never started), an Observe GET still takes aiocoap's path; an exception in the core becomes a 5.00 with a
    diagnostic and the server keeps serving."""
    import aiocoap.protocol

    tasks = []
    original = aiocoap.protocol.run_driving_pipe
    monkeypatch.setattr(aiocoap.protocol, "run_driving_pipe", lambda *a, **k: (tasks.append(a), original(*a, **k)))
    address = server.endpoint.dtls_addresses[0] if scheme == "coaps" else server.endpoint.tls_addresses[0]
    uri = f"{scheme}://{address[0]}:{address[1]}{BASE}/mitigate/cuid={cuid_of(server.config, 'client')}"
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        body = figure("figure07")
        assert (await request(client, aiocoap.PUT, f"{uri}/mid=123", body)).code == aiocoap.CREATED
        assert tasks == []
        observation = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{uri}/mid=123", observe=0))
        assert (await asyncio.wait_for(observation.response, 10)).code == aiocoap.CONTENT
        assert len(tasks) == 1
        observation.observation.cancel()

        def broken(request):
            raise RuntimeError("a bug")

        monkeypatch.setattr(server.service, "handle", broken)
        failed = await request(client, aiocoap.PUT, f"{uri}/mid=124", body)
        assert failed.code == aiocoap.INTERNAL_SERVER_ERROR and failed.payload
        monkeypatch.undo()
        assert (await request(client, aiocoap.GET, f"{uri}/mid=123")).code == aiocoap.CONTENT
    finally:
        await client.shutdown()


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_refreshes_over_the_wire_follow_the_bytes_sent(pki_dir: Path, server, scheme: str):
    """A refresh repeating the stored request's bytes skips decoding (opendots.signal.server.core.server): over real
    sockets, every PUT still gets the lifetime of its own body, in the answer and in the stored row."""
    addresses = server.endpoint.dtls_addresses if scheme == "coaps" else server.endpoint.tls_addresses
    host, port = addresses[0][:2]
    mitigation = f"{scheme}://{host}:{port}{BASE}/mitigate/cuid={cuid_of(server.config, 'client')}/mid=5"
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")

    def body(lifetime: int) -> dict:
        return {SCOPE: {"scope": [{"target-prefix": ["2001:db8:6401::5/128"], "lifetime": lifetime}]}}

    try:
        expected = [(body(600), "2.01 Created", 600), (body(600), "2.04 Changed", 600)]
        expected += [
            (body(300), "2.04 Changed", 300),
            (body(300), "2.04 Changed", 300),
            (body(600), "2.04 Changed", 600),
        ]
        for sent, code, lifetime in expected:
            answer = await request(client, aiocoap.PUT, mitigation, sent)
            assert str(answer.code) == code
            assert decode_signal(answer.payload)[SCOPE]["scope"][0]["lifetime"] == lifetime
            (row,) = server.store.dump()["signal_mitigations"]
            assert row[5] == lifetime
        garbled = await request(client, aiocoap.PUT, mitigation, b"\xa1\x01")
        assert garbled.code == aiocoap.BAD_REQUEST and server.store.dump()["signal_mitigations"] == [row]
    finally:
        await client.shutdown()
