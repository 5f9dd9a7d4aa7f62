"""Our client's Q-Block (RFC 9177) against libcoap's coap-server over DTLS.

libcoap 4.3.5 with `-L 5` speaks Q-Block: our probe of /.well-known/core finds it (§4.1), a 30 KB PUT goes up in
Q-Block1 payloads and the GET of it comes back in Q-Block2 payloads, with no datagram lost, with chosen datagrams of
the server dropped (its `-l` list: the probe's answer, a 2.31 Continue, Q-Block2 payloads) and with 30 % of them
dropped at random; `-v 7` prints every PDU, so each test checks which options our requests carried. Debian's libcoap
4.3.1 has no Q-Block: it answers the probe with 4.02 and the same bodies go in Block1/Block2 as before.

libcoap 4.3.5 is not in Debian 12: those tests read its bin directory from $OPENDOTS_LIBCOAP_QBLOCK and skip without."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiocoap
import pytest

from opendots.transport import client_request, create_client_context, probe_qblock
from opendots.transport.aiocoap_hooks import find_message_manager, find_request_interface
from opendots.transport.qblock import QBlockParameters
from opendots.transport.qblock_client import QBlockClient
from tests.conftest import libcoap_port_pair, require_binary
from tests.helpers import tls_files as files
from tests.helpers.libcoap import qblock_libcoap_bin

pytestmark = pytest.mark.interop

BODY = bytes(range(251)) * 120  # 30,120 bytes: 30 blocks of 1024 (three MAX_PAYLOADS sets)


class LibcoapServer:
    """coap-server with `-d 50` (a PUT to an unknown path creates a resource that GET serves back) and `-v 7`."""

    def __init__(self, binary: str, pki_dir: Path, log: Path, *args: str) -> None:
        self.base_port = libcoap_port_pair()
        self.port = self.base_port + 1  # DTLS
        self.log = log
        self.process = subprocess.Popen(
            [
                binary, "-A", "127.0.0.1", "-p", str(self.base_port), "-d", "50", "-v", "7", *args,
                "-c", str(pki_dir / "server.crt"), "-j", str(pki_dir / "server.key"), "-C", str(pki_dir / "ca.crt"),
            ],
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while b"127.0.0.1" not in log.read_bytes():  # it logs its endpoints once they are open
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"coap-server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> str:
        self.process.kill()
        self.process.wait()
        return self.log.read_text(errors="replace")


@pytest.fixture
def qblock_server(pki_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LibcoapServer]:
    binary = qblock_libcoap_bin() / "coap-server"
    if not binary.is_file():
        pytest.skip(f"{binary} is missing (libcoap >= 4.3.5 built with its examples)")
    server = LibcoapServer(str(binary), pki_dir, tmp_path / "coap-server.log", "-L", "5", *request.param)
    yield server
    server.stop()


async def engine_of(context: aiocoap.Context, uri: str) -> QBlockClient:
    probe = aiocoap.Message(code=aiocoap.GET, uri=uri)
    await find_request_interface(context, probe)
    manager = await find_message_manager(context, probe.remote)
    assert manager is not None and manager.qblock_client is not None
    return manager.qblock_client


async def put_then_get(
    pki_dir: Path, port: int, timeout: float, params: QBlockParameters | None = None, body: bytes = BODY
) -> tuple[bool, aiocoap.Message, bool, bytes, dict]:
    """Our client PUTs BODY (NON) and GETs it back, once it knows whether the server speaks Q-Block (the probe is
    sent again while it goes unanswered); returns (Q-Block used, the PUT's answer, Q-Block used, the GET's payload,
    the engine's counts). PARAMS: the client's Q-Block parameters."""
    context = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        uri = f"coaps://127.0.0.1:{port}/big"
        for _ in range(5):
            if await probe_qblock(context, uri) is not None:
                break
        put = await client_request(
            context,
            aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=body, transport_tuning=aiocoap.Unreliable),
            qblock_parameters=params,
        )
        stored = await asyncio.wait_for(put.pending.response, timeout)
        get = await client_request(
            context, aiocoap.Message(code=aiocoap.GET, uri=uri, transport_tuning=aiocoap.Unreliable)
        )
        fetched = await asyncio.wait_for(get.pending.response, timeout)
        counts = dict((await engine_of(context, uri)).counts)
        return put.qblock, stored, get.qblock, fetched.payload, counts
    finally:
        await context.shutdown()


def our_requests(log: str) -> list[str]:
    """The PDU lines of the requests coap-server received (libcoap prints each with its options)."""
    return re.findall(r"^v:1 t:(?:CON|NON) c:(?:GET|PUT) .*$", log, re.MULTILINE)


def option_values(lines: list[str], name: str) -> list[str]:
    return [value for line in lines for value in re.findall(rf"(?<![-\w]){name}:(\d+/[M_]/\d+)", line)]


@pytest.mark.parametrize(
    "qblock_server",
    [
        pytest.param((), id="no-loss"),
        # Its own datagrams it drops, counted from the DTLS handshake's: 5 is the answer to our probe (sent again on
        # our CON retransmission), then a 2.31 Continue and Q-Block2 payloads of the GET.
        pytest.param(("-l", "5,8,15,18"), id="chosen-datagrams-lost"),
    ],
    indirect=True,
)
async def test_our_client_puts_and_gets_a_30_kb_body_with_q_block_against_libcoap_4_3_5_rfc9177_4_3_4_4(
    pki_dir: Path, qblock_server: LibcoapServer
):
    put_qblock, stored, get_qblock, payload, counts = await put_then_get(pki_dir, qblock_server.port, 40)
    log = qblock_server.stop()
    assert put_qblock and get_qblock  # the probe found Q-Block (§4.1)
    assert stored.code == aiocoap.CREATED and payload == BODY
    requests = our_requests(log)
    assert option_values(requests, "Q-Block1") and not option_values(requests, "Block1")
    assert "Q-Block2:0/_/16" in requests[0]  # the probe, libcoap's own (§4.1)
    assert not option_values(requests, "Block2")  # the GET asked with Q-Block2 only
    assert counts["q1_bodies"] == 1 and counts["q2_bodies"] == 1
    dropped = re.findall(r"Packet (\d+) dropped", log)
    if dropped:
        assert dropped == ["5", "8", "15", "18"]
        assert counts["q2_requests"] >= 1  # lost Q-Block2 payloads asked for again
        assert counts["q1_blocks"] == 30  # a lost 2.31 costs time, never a block sent twice


@pytest.mark.parametrize("qblock_server", [pytest.param(("-l", "30%"), id="30-percent-random-loss")], indirect=True)
async def test_under_30_percent_random_loss_libcoap_4_3_5_gets_and_returns_the_body_rfc9177_7_2(
    pki_dir: Path, qblock_server: LibcoapServer
):
    # Seen from libcoap 4.3.5 under loss: it forgets a body whose final answer it sent (a lost 2.01 makes our
    # probe of the last block start a new body: the whole body again, answered 2.04), and a body it no longer keeps
    # is served one block per request, without ETag: slow, so the limits here are generous.
    # Only the server's datagrams are dropped: a request for blocks fails 30 % of the time, and seven failures in a
    # row (NON_MAX_RETRANSMIT 6) are rare enough; NON_TIMEOUT 0.5 s keeps the doubling waits short.
    # An 8 KB body (one MAX_PAYLOADS_SET of 1024-byte blocks): libcoap's one-block-per-request mode after it
    # forgot a body made 30 KB take minutes now and then.
    params = QBlockParameters(non_timeout=0.5, non_max_retransmit=6)
    body = BODY[:8000]
    put_qblock, stored, get_qblock, payload, counts = await put_then_get(pki_dir, qblock_server.port, 120, params, body)
    log = qblock_server.stop()
    assert put_qblock and get_qblock
    assert stored.code.is_successful() and payload == body
    assert option_values(our_requests(log), "Q-Block1") and counts["q1_bodies"] == 1 and counts["q2_bodies"] == 1
    assert re.findall(r"Packet \d+ dropped", log)


async def test_libcoap_4_3_1_without_q_block_answers_the_probe_with_4_02_and_gets_block1_block2_rfc9177_4_1(
    pki_dir: Path, tmp_path: Path
):
    server = LibcoapServer(require_binary("coap-server-openssl"), pki_dir, tmp_path / "coap-server.log")
    try:
        put_qblock, stored, get_qblock, payload, counts = await put_then_get(pki_dir, server.port, 40)
    finally:
        log = server.stop()
    assert not put_qblock and not get_qblock
    assert stored.code == aiocoap.CREATED and payload == BODY
    assert counts["q1_bodies"] == 0 and counts["q2_bodies"] == 0
    requests = our_requests(log)
    # 4.3.1 prints options it does not know by number: 19 is Q-Block1, 31 Q-Block2.
    assert option_values(requests, "Block1") and not [line for line in requests if re.search(r"[ ,]19:", line)]
    assert len([line for line in requests if re.search(r"[ ,]31:", line)]) == 1  # the probe only, answered 4.02
    assert re.search(r"^v:1 t:ACK c:4\.02 ", log, re.MULTILINE)


@pytest.mark.parametrize("qblock_server", [pytest.param((), id="no-loss")], indirect=True)
async def test_a_q_block1_fetch_answered_with_a_q_block2_body_by_libcoap_4_3_5_arrives_whole_rfc9177_10_3(
    pki_dir: Path, qblock_server: LibcoapServer
):
    # Figures 11-12: a FETCH whose body goes in Q-Block1 payloads, answered with a body in Q-Block2 payloads (the
    # 30 KB the PUT stored: coap-server's FETCH serves the resource); 'Continue' is the FETCH again with Q-Block2,
    # the body's Request-Tag and no payload.
    context = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    try:
        uri = f"coaps://127.0.0.1:{qblock_server.port}/big"
        for _ in range(5):
            if await probe_qblock(context, uri) is not None:
                break
        put = await client_request(
            context, aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=BODY, transport_tuning=aiocoap.Unreliable)
        )
        assert (await asyncio.wait_for(put.pending.response, 40)).code == aiocoap.CREATED
        query = bytes(range(256)) * 12  # 3,072 bytes: 3 Q-Block1 payloads
        request = aiocoap.Message(code=aiocoap.FETCH, uri=uri, payload=query, transport_tuning=aiocoap.Unreliable)
        request.opt.content_format = 0  # libcoap wants one on a FETCH (4.15 without)
        fetch = await client_request(context, request)
        answer = await asyncio.wait_for(fetch.pending.response, 40)
        counts = dict((await engine_of(context, uri)).counts)
    finally:
        await context.shutdown()
    log = qblock_server.stop()
    assert fetch.qblock and answer.code == aiocoap.CONTENT and answer.payload == BODY
    assert counts["q1_bodies"] == 2 and counts["q2_bodies"] == 1
    fetches = re.findall(r"^v:1 t:(?:CON|NON) c:FETCH .*$", log, re.MULTILINE)
    assert len(option_values(fetches, "Q-Block1")) == 3
    assert option_values(fetches, "Q-Block2") == ["10/M/1024", "20/M/1024"]  # 'Continue' twice (§4.4)
