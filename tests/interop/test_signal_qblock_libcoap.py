"""libcoap 4.3.5's coap-client with `-L 5` (Q-Block, RFC 9177) against our signal-channel server over DTLS: its probe
of /.well-known/core finds Q-Block support (§4.1), a mitigation request of many blocks goes up in Q-Block1 blocks
(with and without its own datagrams dropped), and a large GET comes back in Q-Block2 blocks. `-v 7` prints every
PDU with its options, so each test checks that Q-Block options were used and plain Block1/Block2 were not.

libcoap 4.3.5 is not in Debian 12: the tests read its bin directory from $OPENDOTS_LIBCOAP_QBLOCK and skip without."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opendots.model import decode_signal, encode_signal
from tests.helpers.libcoap import QBlockCoapClient
from tests.helpers.signal_harness import SCOPE, figure
from tests.helpers.signal_server import cuid_of

pytestmark = pytest.mark.interop


def large_request(prefixes: int = 150) -> dict:
    body = figure("figure07")
    body[SCOPE]["scope"][0]["target-prefix"] = [f"2001:db8:{i:x}::/48" for i in range(prefixes)]
    assert len(encode_signal(body)) > 20 * 128  # more than two MAX_PAYLOADS sets of 10 blocks of 128 bytes
    return body


def options_sent(printed: str, name: str) -> list[str]:
    """The values of option NAME in the PDUs coap-client printed (libcoap's notation, e.g. 3/M/1024)."""
    return re.findall(rf"(?<![-\w]){name}:(\d+/[M_]/\d+)", printed)


def created(printed: str) -> bool:
    """Whether coap-client received a 2.01 or 2.04 (a PDU line, not a timestamp that happens to hold '2.01')."""
    return re.search(r"^v:1 t:\w+ c:2\.0[14] ", printed, re.MULTILINE) is not None


def uses_q_block_only(printed: str, which: str) -> bool:
    return bool(options_sent(printed, f"Q-{which}")) and not options_sent(printed, which)


def used_as_expected(printed: str, which: str, random_loss: bool) -> bool:
    """Q-Block only; under random loss also plain blocks only when libcoap's probe was lost and it fell back to
    Block1/Block2 before the answer came (its log says so): that fallback then has to work with us too (§4.1)."""
    if random_loss and "Replaced option" in printed:
        return bool(options_sent(printed, which))
    return uses_q_block_only(printed, which)


# (coap-client arguments, what they mean): CON and NON, no loss, and chosen datagrams dropped (libcoap's `-l` list
# numbers what it sends, DTLS handshake included: 4 is its probe's first transmission, 13 Q-Block1 block 2, which the
# server then asks for with a 4.08 listing it). Random loss: test_under_30_percent_random_loss_... below.
UPLOADS = [
    pytest.param([], id="CON"),
    pytest.param(["-N"], id="NON"),
    pytest.param(["-N", "-l", "4,13"], id="NON-chosen-datagrams-lost"),
]


@pytest.mark.parametrize("extra", UPLOADS)
async def test_libcoaps_probe_finds_q_block_and_a_large_mitigation_goes_up_in_q_block1_rfc9177_4_3(
    pki_dir: Path, tmp_path: Path, signal_server, extra
):
    running, config = signal_server
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={cuid_of(config, 'client')}/mid=90"
    client = QBlockCoapClient(pki_dir, tmp_path)
    _, printed = await client.run_traced("-L", "5", "-b", "128", *extra, "-m", "put", uri, payload=large_request())
    assert "Q-Block2:0/_/16" in printed  # the probe of /.well-known/core (§4.1), answered with Q-Block2
    assert uses_q_block_only(printed, "Block1"), printed[-3000:]
    assert created(printed), printed[-3000:]
    stored = running.service.core.render_mitigations("client", cuid_of(config, "client"), 90, (), 0.0)
    assert len(stored.body[SCOPE]["scope"][0]["target-prefix"]) == 150
    assert running.endpoint.qblock.counts["q1_bodies"] == 1
    assert len(running.endpoint.qblock.receiver) == 0


GETS = [
    pytest.param([], id="CON"),
    pytest.param(["-N"], id="NON"),
    pytest.param(["-N", "-l", "7"], id="NON-continue-lost"),  # 7: its 'Continue' (10/M): we send the next set anyway
]


@pytest.mark.parametrize("extra", GETS)
async def test_libcoap_gets_a_large_mitigation_in_q_block2_blocks_rfc9177_4_4(
    pki_dir: Path, tmp_path: Path, signal_server, extra
):
    running, config = signal_server
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={cuid_of(config, 'client')}/mid=91"
    client = QBlockCoapClient(pki_dir, tmp_path)
    await client.run_traced("-L", "5", "-m", "put", uri, payload=large_request())
    payload, printed = await client.run_traced("-L", "5", "-b", "128", *extra, uri)
    assert uses_q_block_only(printed, "Block2"), printed[-3000:]
    assert len(decode_signal(payload)[SCOPE]["scope"][0]["target-prefix"]) == 150


ATTEMPTS = 3


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        pytest.param("put", ["-N"], id="PUT-NON"),
        pytest.param("put", [], id="PUT-CON"),
        pytest.param("get", [], id="GET-CON"),
    ],
)
async def test_under_30_percent_random_loss_libcoap_moves_large_bodies_with_q_block_or_its_fallback_rfc9177_4_1(
    pki_dir: Path, tmp_path: Path, signal_server, method, extra
):
    """coap-client drops 30 % of what it sends, DTLS handshake included. Some runs fail for reasons of its own that
    no server can help (seen: its DTLS handshake giving up, its one NON request or its fallback's first NON block
    lost, never sent again): up to ATTEMPTS runs, and the first that completes must have used Q-Block, or Block1/
    Block2 when its probe went unanswered in time (its log says "Replaced option"), with the body intact."""
    running, config = signal_server
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri = f"coaps://{host}:{port}/.well-known/dots/mitigate/cuid={cuid_of(config, 'client')}/mid=92"
    client = QBlockCoapClient(pki_dir, tmp_path)
    if method == "get":
        await client.run_traced("-L", "5", "-m", "put", uri, payload=large_request())
    failures: list[str] = []
    for _ in range(ATTEMPTS):
        args = ("-L", "5", "-b", "128", "-l", "30%", *extra, "-m", method, uri)
        payload, printed = await client.run_traced(*args, payload=large_request() if method == "put" else None)
        done = created(printed) if method == "put" else len(payload) > 20 * 128
        if done:
            break
        failures.append(printed[-600:])
    else:
        pytest.fail(
            f"{ATTEMPTS} runs of coap-client under 30 % loss all failed; their last lines:\n" + "\n".join(failures)
        )
    assert used_as_expected(printed, "Block1" if method == "put" else "Block2", random_loss=True), printed[-3000:]
    if method == "get":
        assert len(decode_signal(payload)[SCOPE]["scope"][0]["target-prefix"]) == 150
    stored = running.service.core.render_mitigations("client", cuid_of(config, "client"), 92, (), 0.0)
    assert len(stored.body[SCOPE]["scope"][0]["target-prefix"]) == 150
