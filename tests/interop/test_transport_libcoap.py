"""Interop with the real libcoap 4.3.1 binaries (OpenSSL build), both directions, over DTLS and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import aiocoap
import aiocoap.resource as resource
import cbor2
import pytest

from opendots.pki.certs import TestPki
from opendots.transport import create_client_context, peer_identity, ping, start_server
from tests.conftest import free_port, libcoap_port_pair, require_binary
from tests.helpers import tls_files as files

pytestmark = pytest.mark.interop

BIG_BODY = b"".join(b"%05d dots-signal block2 body line\n" % n for n in range(160))  # > 4 KiB
CBOR = 60


class Recorder(resource.ObservableResource):
    """PUT stores a CBOR body, GET returns it; records who asked and which Hop-Limit came along."""

    def __init__(self) -> None:
        super().__init__()
        self.body = cbor2.dumps({"state": 0})
        self.seen: list[dict] = []
        self.counter = 0

    def _record(self, request: aiocoap.Message) -> None:
        identity = peer_identity(request)
        self.seen.append(
            {
                "method": str(request.code),
                "cn": identity.common_name if identity else None,
                "hop_limit": request.opt.hop_limit,
                "content_format": request.opt.content_format,
                "payload": request.payload,
            }
        )

    def bump(self) -> None:
        self.counter += 1
        self.body = cbor2.dumps({"state": self.counter})
        self.updated_state()

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self._record(request)
        return aiocoap.Message(payload=self.body, content_format=CBOR)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self._record(request)
        cbor2.loads(request.payload)  # a broken body would make this handler fail with 5.00
        self.body = request.payload
        return aiocoap.Message(code=aiocoap.CHANGED)


class Big(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=BIG_BODY)


@pytest.fixture
def coap_client() -> str:
    return require_binary("coap-client-openssl")


@pytest.fixture
async def server(pki_dir):
    site = resource.Site()
    recorder = Recorder()
    site.add_resource(["mitigate"], recorder)
    site.add_resource(["big"], Big())
    port = free_port()
    endpoint = await start_server(site, credentials=files(pki_dir, "server"), bind=[("127.0.0.1", port)])
    endpoint.port = port
    endpoint.recorder = recorder
    yield endpoint
    await endpoint.shutdown()


async def run(*argv: str, timeout: float = 20) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, out, err


def pki_args(directory: Path, stem: str = "client", ca: Path | None = None) -> list[str]:
    return [
        "-c",
        str(directory / f"{stem}.crt"),
        "-j",
        str(directory / f"{stem}.key"),
        "-C",
        str(ca or directory / "ca.crt"),
    ]


SCHEMES = ["coaps", "coaps+tcp"]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_libcoap_client_puts_cbor_and_gets_it_back_with_hop_limit(pki_dir, server, coap_client, scheme, tmp_path):
    uri = f"{scheme}://127.0.0.1:{server.port}/mitigate"
    body = cbor2.dumps({"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": 123, "lifetime": 3600}]}})
    (tmp_path / "body.cbor").write_bytes(body)
    code, _, err = await run(
        coap_client,
        *pki_args(pki_dir),
        "-B",
        "10",
        "-m",
        "put",
        "-t",
        "60",
        "-H",
        "7",
        "-f",
        str(tmp_path / "body.cbor"),
        uri,
    )
    assert code == 0, err.decode()
    code, _, err = await run(coap_client, *pki_args(pki_dir), "-B", "10", "-o", str(tmp_path / "out"), uri)
    assert code == 0, err.decode()
    assert cbor2.loads((tmp_path / "out").read_bytes()) == cbor2.loads(body)
    put, get = server.recorder.seen
    assert put == {"method": "PUT", "cn": "client", "hop_limit": 7, "content_format": CBOR, "payload": body}
    assert get["method"] == "GET" and get["cn"] == "client"


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_libcoap_client_observes_several_notifications(pki_dir, server, coap_client, scheme):
    async def bump_every_300ms() -> None:
        await asyncio.sleep(0.5)
        for _ in range(6):
            server.recorder.bump()
            await asyncio.sleep(0.3)

    bumper = asyncio.create_task(bump_every_300ms())
    try:
        code, out, err = await run(
            coap_client, *pki_args(pki_dir), "-B", "10", "-s", "3", "-w", f"{scheme}://127.0.0.1:{server.port}/mitigate"
        )
    finally:
        bumper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bumper
    assert code == 0, err.decode()
    states = {cbor2.loads(bytes([0xA1]) + chunk)["state"] for chunk in out.split(bytes([0xA1]))[1:] if chunk.strip()}
    assert len(states) >= 4, out  # the initial state plus at least three notifications


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_libcoap_client_fetches_a_block2_body(pki_dir, server, coap_client, scheme, tmp_path):
    assert len(BIG_BODY) >= 4096
    code, _, err = await run(
        coap_client, *pki_args(pki_dir), "-B", "10", "-b", "512", "-o", str(tmp_path / "big"),
        f"{scheme}://127.0.0.1:{server.port}/big",
    )  # fmt: skip
    assert code == 0, err.decode()
    assert (tmp_path / "big").read_bytes() == BIG_BODY


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_libcoap_client_with_an_untrusted_certificate_is_rejected(pki_dir, server, coap_client, scheme, tmp_path):
    rogue = TestPki(tmp_path)
    rogue.issue_client("client")
    code, out, _ = await run(
        coap_client,
        *pki_args(tmp_path, ca=pki_dir / "ca.crt"),
        "-B",
        "5",
        f"{scheme}://127.0.0.1:{server.port}/mitigate",
    )
    assert server.recorder.seen == []
    assert cbor2.dumps({"state": 0}) not in out
    await asyncio.sleep(0.1)
    assert server.stats().sessions == 0 and server.tls_connection_count() == 0
    # and the server still serves a legitimate client
    code, out, err = await run(
        coap_client, *pki_args(pki_dir), "-B", "10", f"{scheme}://127.0.0.1:{server.port}/mitigate"
    )
    assert code == 0 and server.recorder.seen[-1]["cn"] == "client", err.decode()


# ---- our client against coap-server-openssl


@pytest.fixture
async def libcoap_server(pki_dir):
    binary = require_binary("coap-server-openssl")
    port = libcoap_port_pair()
    process = await asyncio.create_subprocess_exec(
        binary, "-A", "127.0.0.1", "-p", str(port),
        "-c", str(pki_dir / "server.crt"), "-j", str(pki_dir / "server.key"), "-C", str(pki_dir / "ca.crt"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):  # wait until the DTLS port is bound
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port + 1))
                except OSError:
                    break
            await asyncio.sleep(0.05)
        yield port + 1
    finally:
        process.terminate()
        await process.wait()


async def test_our_client_against_libcoap_server_get_put_observe_ping(pki_dir, libcoap_server):
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    base = f"coaps://127.0.0.1:{libcoap_server}"
    try:

        async def request(message: aiocoap.Message) -> aiocoap.Message:
            return await asyncio.wait_for(client.request(message).response, 10)

        index = await request(aiocoap.Message(code=aiocoap.GET, uri=base + "/"))
        assert index.code == aiocoap.CONTENT and b"libcoap" in index.payload
        assert peer_identity(index).common_name == "localhost"

        body = cbor2.dumps({"cuid": "abc", "mid": 1})
        stored = await request(
            aiocoap.Message(code=aiocoap.PUT, uri=base + "/example_data", payload=body, content_format=CBOR)
        )
        assert stored.code.is_successful()
        fetched = await request(aiocoap.Message(code=aiocoap.GET, uri=base + "/example_data"))
        assert fetched.payload == body and fetched.opt.content_format == CBOR

        observation = client.request(aiocoap.Message(code=aiocoap.GET, uri=base + "/time", observe=0))
        first = await asyncio.wait_for(observation.response, 10)
        notifications = observation.observation.__aiter__()
        later = [await asyncio.wait_for(notifications.__anext__(), 5) for _ in range(2)]  # /time ticks every second
        assert len({first.opt.observe, *(n.opt.observe for n in later)}) == 3
        observation.observation.cancel()

        assert 0 < await ping(client, base) < 2
        await asyncio.sleep(0.3)  # libcoap answers one ping per ~250 ms per session
        assert 0 < await ping(client, base) < 2
    finally:
        await client.shutdown()


async def test_our_client_rejects_a_libcoap_server_with_the_wrong_name(pki_dir, libcoap_server):
    client = await create_client_context(files(pki_dir, "client"), server_name="dots.example.net")
    try:
        with pytest.raises(aiocoap.error.NetworkError) as failure:
            await asyncio.wait_for(
                client.request(aiocoap.Message(code=aiocoap.GET, uri=f"coaps://127.0.0.1:{libcoap_server}/")).response,
                10,
            )
        assert "certificate verify failed" in repr(failure.value)
    finally:
        await client.shutdown()
