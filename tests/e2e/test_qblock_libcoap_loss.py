"""Q-Block (RFC 9177) end to end under random loss: libcoap 4.3.5's coap-client `-L 5` against our `opendots server`
process, in a network namespace whose loopback drops 30 % of the DTLS application-data datagrams in both directions
(nftables `numgen random`; handshake records pass, the session is up before the attack). A mitigation request of
many blocks goes up in NON Q-Block1 blocks (what is lost comes back through the server's 4.08 lists) and comes back
in Q-Block2 blocks (what is lost the client asks for again), intact; the server holds it.

coap-client gives up on its own in some runs that our server's RFC 9177 timing does not rescue (seen: a NON
request's only copy lost; its Q-Block1 state forgotten 4 x NON_TIMEOUT after its last block went out, so a later
4.08 ends the run): up to ATTEMPTS runs each, and the first that completes must have used Q-Block (or
Block1/Block2 when its probe went unanswered, which its log says: the fallback of §4.1 has to work too). The GET is
NON, as RFC 9177 §3.2 intends, and CON too: to a CON GET our server piggybacks block 0 on the ACK and sends the rest
CON (§4.4), each retransmitted until ACKed (once it sent the rest NON, and libcoap 4.3.5 then took ACK for the type
of the body's responses, never asked for missing blocks on its timer and sent its requests for them as ACKs);
coap-client gets a token of its own (`-T`): with its empty default it resets our later blocks once it has asked
for missing ones. Seen in five runs of this file with these settings: the PUT needed 1 to 4 attempts, once more than 5.
Skipped without libcoap 4.3.5 ($OPENDOTS_LIBCOAP_QBLOCK) or without the privileges to build a namespace."""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opendots.model import decode_signal, encode_signal
from tests.e2e.loss_lab import LossyServer, lossy_environment
from tests.helpers.libcoap import qblock_libcoap_bin
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.timeout(600)
LOSS = 30
ATTEMPTS = 8
PREFIXES = 110  # ~1.9 KiB: 15 blocks of 128 bytes, two MAX_PAYLOADS_SETs


@pytest.fixture(scope="module")
def coap_client() -> Path:
    return qblock_libcoap_bin() / "coap-client"


@pytest.fixture(scope="module")
def lossy(
    lab_reason: str | None, coap_client: Path, pki_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LossyServer]:
    if lab_reason is not None:
        pytest.skip(lab_reason)
    with lossy_environment(), LossyServer(tmp_path_factory.mktemp("qblock-loss"), pki_dir) as server:
        yield server


def request_body() -> bytes:
    prefixes = [f"2001:db8:{i:x}::/48" for i in range(PREFIXES)]
    body = encode_signal({SCOPE: {"scope": [{"target-prefix": prefixes, "lifetime": 3600}]}})
    assert 10 * 128 < len(body) <= 20 * 128
    return body


def run_client(lossy: LossyServer, binary: Path, pki: Path, *argv: str, wait: int = 30) -> tuple[str, bytes]:
    """coap-client ARGV inside the lossy namespace with `-v 7` (every PDU printed), waiting at most WAIT seconds for
    its answer (`-B`): (what it printed, its output)."""
    output = lossy.directory / "coap-client-output.bin"
    output.unlink(missing_ok=True)
    credentials = ["-c", str(pki / "client.crt"), "-j", str(pki / "client.key"), "-C", str(pki / "ca.crt")]
    command = [str(binary), *credentials, "-B", str(wait), "-v", "7", "-o", str(output), *argv]
    try:
        run = lossy.namespace.run(command, check=False, timeout=wait + 60)
        printed = run.stdout + run.stderr
    except subprocess.TimeoutExpired:
        printed = f"coap-client did not end within {wait + 60} s"
    runs = len(list(lossy.directory.glob("trace-*.log")))
    (lossy.directory / f"trace-{runs + 1}.log").write_text(printed)  # the whole trace, for a failure's post-mortem
    return printed, output.read_bytes() if output.exists() else b""


def pdu_options(printed: str, name: str) -> list[str]:
    return re.findall(rf"(?<![-\w]){name}:(\d+/[M_]/\d+)", printed)


def q_block_or_its_fallback(printed: str, which: str) -> bool:
    if "Replaced option" in printed:  # its probe was lost: libcoap fell back to Block1/Block2 (§4.1)
        return bool(pdu_options(printed, which))
    return bool(pdu_options(printed, f"Q-{which}")) and not pdu_options(printed, which)


def until_done(attempt: Callable[[], tuple[str, bytes]], done: Callable[[str, bytes], bool]) -> tuple[str, bytes]:
    failures: list[str] = []
    for number in range(ATTEMPTS):
        printed, payload = attempt()
        if done(printed, payload):
            return printed, payload
        failures.append(f"attempt {number + 1}: " + printed[-800:])
    pytest.fail(f"{ATTEMPTS} runs of coap-client under {LOSS} % loss all failed:\n" + "\n".join(failures))


def created(printed: str, _: bytes) -> bool:
    return re.search(r"^v:1 t:\w+ c:2\.0[14] ", printed, re.MULTILINE) is not None


def mitigate_uri(lossy: LossyServer, pki_dir: Path, mid: int) -> str:
    cuid = tomllib.loads((pki_dir / "server.toml").read_text())["clients"][0]["cuid"]
    return f"coaps://127.0.0.1:{lossy.port}/.well-known/dots/mitigate/cuid={cuid}/mid={mid}"


def test_under_30_percent_loss_both_ways_libcoap_puts_a_large_mitigation_in_q_block1_blocks_rfc9177_4_3(
    lossy: LossyServer, coap_client: Path, pki_dir: Path
) -> None:
    uri, body = mitigate_uri(lossy, pki_dir, 7000), lossy.directory / "request.cbor"
    body.write_bytes(request_body())
    argv = ("-L", "5", "-N", "-b", "128", "-m", "put", "-t", "271", "-f", str(body), uri)
    lossy.set_loss(LOSS, application_data_only=True)
    try:
        printed, _ = until_done(lambda: run_client(lossy, coap_client, pki_dir, *argv), created)
        assert lossy.dropped_packets() > 0  # the loss was real
    finally:
        lossy.set_loss(0)
    assert q_block_or_its_fallback(printed, "Block1"), printed[-3000:]
    assert len(lossy.held()[7000]["target-prefix"]) == PREFIXES


def test_under_30_percent_loss_both_ways_libcoap_gets_a_large_mitigation_in_q_block2_blocks_rfc9177_4_4(
    lossy: LossyServer, coap_client: Path, pki_dir: Path
) -> None:
    uri, body = mitigate_uri(lossy, pki_dir, 7001), lossy.directory / "request.cbor"
    body.write_bytes(request_body())
    printed, _ = run_client(lossy, coap_client, pki_dir, "-L", "5", "-m", "put", "-t", "271", "-f", str(body), uri)
    assert created(printed, b""), printed[-3000:]  # stored over a clean path first
    argv = ("-L", "5", "-N", "-T", "51", "-b", "128", uri)
    lossy.set_loss(LOSS, application_data_only=True)
    try:
        printed, payload = until_done(
            lambda: run_client(lossy, coap_client, pki_dir, *argv), lambda _, payload: len(payload) > 10 * 128
        )
        assert lossy.dropped_packets() > 0
    finally:
        lossy.set_loss(0)
    assert q_block_or_its_fallback(printed, "Block2"), printed[-3000:]
    scope = decode_signal(payload)[SCOPE]["scope"]
    assert [entry["mid"] for entry in scope] == [7001]
    assert len(scope[0]["target-prefix"]) == PREFIXES


def test_under_10_percent_loss_both_ways_a_con_get_gets_the_rest_of_its_q_block2_body_as_con_rfc9177_4_4(
    lossy: LossyServer, coap_client: Path, pki_dir: Path
) -> None:
    """§4.4: the blocks after the piggybacked first go CON, one at a time, each retransmitted until ACKed (RFC 7252
    §4.7). At 30 % loss both ways a CON round trip fails half the time and the retransmissions back off
    exponentially (15 blocks took longer than coap-client's wait in 8 runs of 8): Appendix A says NON is for lossy
    paths, so 10 % here."""
    uri, body = mitigate_uri(lossy, pki_dir, 7002), lossy.directory / "request.cbor"
    body.write_bytes(request_body())
    printed, _ = run_client(lossy, coap_client, pki_dir, "-L", "5", "-m", "put", "-t", "271", "-f", str(body), uri)
    assert created(printed, b""), printed[-3000:]  # stored over a clean path first
    argv = ("-L", "5", "-T", "52", "-b", "128", uri)  # CON: no -N
    lossy.set_loss(10, application_data_only=True)
    try:
        printed, payload = until_done(
            lambda: run_client(lossy, coap_client, pki_dir, *argv, wait=60), lambda _, payload: len(payload) > 10 * 128
        )
        assert lossy.dropped_packets() > 0
    finally:
        lossy.set_loss(0)
    if "Replaced option" not in printed:  # Q-Block (not its Block2 fallback): the blocks after the first came CON
        assert re.search(r"^v:1 t:CON c:2\.05 .*Q-Block2:\d+/", printed, re.MULTILINE), printed[-3000:]
    assert q_block_or_its_fallback(printed, "Block2"), printed[-3000:]
    scope = decode_signal(payload)[SCOPE]["scope"]
    assert [entry["mid"] for entry in scope] == [7002]
    assert len(scope[0]["target-prefix"]) == PREFIXES
