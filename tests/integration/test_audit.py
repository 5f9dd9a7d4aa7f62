"""The audit log of a running server (`[audit] file`): every change a client makes over the real channels is one
JSON line saying who, what, before and after: a mitigation requested and withdrawn (RFC 9132 §4.4), a session
configuration (§4.5), the data channel's entries (RFC 8783), telemetry reports (RFC 9244 §8.2)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path

import aiocoap
import aiohttp
import pytest

from opendots.app import start_server
from opendots.config import TlsFiles
from opendots.model import encode_signal, encode_telemetry
from opendots.pki.setup import init_pki
from opendots.signal.client.core.telemetry_bodies import report_entry, report_put_request
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers.data_harness import ROOT, Peer
from tests.helpers.signal_harness import SCOPE, figure


@pytest.fixture
async def audited(tmp_path: Path):
    config, _ = init_pki(tmp_path)
    config.listen = ["127.0.0.1"]
    config.signal_port = free_port()
    config.data_port = free_port(socket.SOCK_STREAM)
    config.audit_file = tmp_path / "audit.jsonl"
    running = await start_server(config, tls=False)
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")
    context = await create_client_context(tls, server_name="localhost")
    try:
        yield running, context, tmp_path
    finally:
        await context.shutdown()
        await running.stop()


async def _coap(context, method, uri: str, payload: bytes | None = None) -> aiocoap.Message:
    message = aiocoap.Message(code=method, uri=uri, payload=payload or b"", content_format=271 if payload else None)
    return await asyncio.wait_for(context.request(message).response, 15)


async def test_every_change_a_client_makes_is_one_audit_line_with_before_and_after(audited):
    running, context, directory = audited
    cuid = running.config.clients[0].cuid
    base = f"coaps://127.0.0.1:{running.config.signal_port}/.well-known/dots"
    mitigation = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.0/28"], "lifetime": 600}]}}
    assert (await _coap(context, aiocoap.PUT, f"{base}/mitigate/cuid={cuid}/mid=1", encode_signal(mitigation))).code
    answer = await _coap(context, aiocoap.PUT, f"{base}/config/sid=1", encode_signal(figure("figure23")))
    assert answer.code == aiocoap.CREATED, answer
    report = report_put_request(cuid, 1, [report_entry(["203.0.113.0/28"], total_attack_traffic=["100:pps"])])
    path = "/".join(report.path)
    answer = await _coap(context, aiocoap.PUT, f"coaps://127.0.0.1:{running.config.signal_port}/{path}",
                         encode_telemetry(report.body))  # fmt: skip
    assert answer.code.is_successful(), answer
    tls = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    tls.load_cert_chain(directory / "client.crt", directory / "client.key")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
        peer = Peer(f"https://localhost:{running.config.data_port}", session, cuid)
        assert (
            await peer.request("POST", ROOT, {"ietf-dots-data-channel:dots-client": [{"cuid": cuid}]})
        ).status == 201
        alias = {"name": "web", "target-prefix": ["203.0.113.0/28"]}
        body = {"ietf-dots-data-channel:aliases": {"alias": [alias]}}
        assert (await peer.request("POST", f"{ROOT}/dots-client={cuid}", body)).status == 201
    assert (await _coap(context, aiocoap.DELETE, f"{base}/mitigate/cuid={cuid}/mid=1")).code == aiocoap.DELETED
    await running.signal.service.idle()

    lines = [json.loads(line) for line in (directory / "audit.jsonl").read_text().splitlines()]
    seen = [(e["who"], e["what"], e["subject"], e["before"], e["after"]) for e in lines]
    assert ("client client", "mitigation requested", f"{cuid}/1", None, "attack-mitigation-in-progress") in seen
    withdrawn = "dots-client-withdrawn-mitigation"
    assert ("client client", "mitigation status", f"{cuid}/1", "attack-mitigation-in-progress", withdrawn) in seen
    config = next(e for e in lines if e["what"] == "session configuration")
    assert config["before"].startswith("server defaults") and config["after"].startswith("sid 1: heartbeat")
    assert ("client client", "telemetry reports held", cuid, None, 1) in seen
    assert ("client client", "data channel entries held", cuid, 0, 1) in seen
    assert all(isinstance(e["at"], float) for e in lines)
