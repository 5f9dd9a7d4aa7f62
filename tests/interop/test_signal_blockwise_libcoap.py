"""libcoap's coap-client (4.3.1) uploading mitigation bodies in Block1 blocks to our signal-channel server
(RFC 7959 over RFC 9132): a body of many blocks is assembled, one past the body limit is refused with 4.13."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opendots.model import DEFAULT_MAX_SIZE, decode_signal, encode_signal
from tests.helpers.libcoap import CoapClient
from tests.helpers.signal_harness import SCOPE, figure
from tests.helpers.signal_server import cuid_of

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("scheme", ["coaps", "coaps+tcp"])
async def test_libcoap_uploads_a_mitigation_in_64_byte_blocks(pki_dir: Path, tmp_path: Path, signal_server, scheme):
    running, config = signal_server
    host, port = (running.endpoint.dtls_addresses if scheme == "coaps" else running.endpoint.tls_addresses)[0][:2]
    body = figure("figure07")
    body[SCOPE]["scope"][0]["target-prefix"] = [f"2001:db8:{i:x}::/48" for i in range(60)]
    assert len(encode_signal(body)) > 10 * 64
    uri = f"{scheme}://{host}:{port}/.well-known/dots/mitigate/cuid={cuid_of(config, 'client')}/mid=77"
    payload, printed = await CoapClient(pki_dir, tmp_path).run("-m", "put", "-b", "64", uri, payload=body)
    assert "4." not in printed and "5." not in printed, printed
    assert decode_signal(payload)[SCOPE]["scope"][0]["mid"] == 77


async def test_libcoap_uploading_past_the_body_limit_is_stopped_with_4_13_early(
    pki_dir: Path, tmp_path: Path, signal_server
):
    running, config = signal_server
    host, port = running.endpoint.dtls_addresses[0][:2]
    oversized = tmp_path / "oversized.cbor"
    oversized.write_bytes(b"\xa0" * (4 * DEFAULT_MAX_SIZE))
    uri = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={cuid_of(config, 'client')}/mid=78"
    client = CoapClient(pki_dir, tmp_path)
    process = await asyncio.create_subprocess_exec(
        client.binary, *client.credentials, "-B", "20", "-m", "put", "-b", "1024", "-t", "271", "-f", str(oversized),
        uri, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 40)
    printed = (stdout + stderr).decode(errors="replace")
    assert "4.13" in printed, printed
    # refused by the block assembler at the block that passed the limit, not by the CBOR decoder at the last one
    assert running.resource.uploads.refused == {"4.13": 1}
    assert running.resource.requests[("PUT", "mitigate", "4.13")] == 1
    assert len(running.resource.uploads) == 0
