"""Interop: libcoap's coap-client (an independent CoAP/DTLS implementation) against our signal server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal, encode_signal
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port, require_binary
from tests.helpers.signal_harness import SCOPE, figure


@pytest.fixture
async def server(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], tls=False)
    yield running, config
    await running.stop()


async def coap_client(pki_dir: Path, tmp_path: Path, *args: str) -> tuple[int, bytes, str]:
    binary = require_binary("coap-client-openssl")
    output = tmp_path / "response.bin"
    output.unlink(missing_ok=True)
    process = await asyncio.create_subprocess_exec(
        binary,
        "-c", str(pki_dir / "client.crt"), "-j", str(pki_dir / "client.key"), "-C", str(pki_dir / "ca.crt"),
        "-o", str(output), "-B", "10",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, output.read_bytes() if output.exists() else b"", stderr.decode(errors="replace")


async def test_libcoap_puts_gets_and_deletes_a_mitigation(pki_dir: Path, tmp_path: Path, server):
    running, config = server
    host, port = running.endpoint.dtls_addresses[0][:2]
    cuid = next(c.cuid for c in config.clients if c.name == "client")
    base = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={cuid}"
    body = figure("figure07")
    body[SCOPE]["scope"][0]["target-prefix"] = ["2001:db8:6401::1/128"]
    payload = tmp_path / "request.cbor"
    payload.write_bytes(encode_signal(body))

    code, response, stderr = await coap_client(
        pki_dir, tmp_path, "-m", "put", "-t", "271", "-f", str(payload), f"{base}/mid=123"
    )
    assert code == 0, stderr
    assert decode_signal(response) == figure("figure10")

    code, response, stderr = await coap_client(pki_dir, tmp_path, "-m", "get", f"{base}/mid=123")
    assert code == 0, stderr
    (entry,) = decode_signal(response)[SCOPE]["scope"]
    assert entry["mid"] == 123 and entry["status"] == "attack-mitigation-in-progress"

    code, _, stderr = await coap_client(pki_dir, tmp_path, "-m", "delete", f"{base}/mid=123")
    assert code == 0, stderr
    assert running.store.dump()["signal_mitigations"][0][6] == 5  # status: withdrawn, terminating


async def test_libcoap_gets_a_diagnostic_for_garbage(pki_dir: Path, tmp_path: Path, server):
    running, config = server
    host, port = running.endpoint.dtls_addresses[0][:2]
    cuid = next(c.cuid for c in config.clients if c.name == "client")
    garbage = tmp_path / "garbage.cbor"
    garbage.write_bytes(b"\xff\x00\x01")
    uri = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={cuid}/mid=1"
    _, response, stderr = await coap_client(pki_dir, tmp_path, "-m", "put", "-t", "271", "-f", str(garbage), uri)
    assert stderr.startswith("4.00 malformed CBOR"), (response, stderr)  # libcoap prints error responses
    assert running.store.dump()["signal_mitigations"] == []
