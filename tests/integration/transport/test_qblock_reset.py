"""RST in Q-Block exchanges over real DTLS sessions with our server (RFC 9177 §4.3, §4.4; RFC 7252 §4.2): a client
that answers one CON Q-Block2 block with RST gets no more of that body (the blocks aiocoap held back by NSTART are
dropped, and the body is no longer kept), and the RST is counted."""

from __future__ import annotations

import asyncio

import aiocoap

from opendots.metrics.qblock import qblock_metrics
from opendots.transport.qblock import QBLOCK2, BlockOption
from tests.helpers import tls_files as files
from tests.helpers.qblock_site import BIG
from tests.helpers.raw_coap import CON, GET, RST, RawDtlsCoap, coap

BLOCKS = -(-len(BIG) // 1024)


def parsed(datagrams: list[bytes]) -> list[aiocoap.Message]:
    return [aiocoap.Message.decode(datagram) for datagram in datagrams]


def q2(message: aiocoap.Message) -> BlockOption:
    return BlockOption.decode(message.opt.get_option(QBLOCK2)[0].encode())


async def test_an_rst_to_a_con_q_block2_block_stops_the_rest_of_that_body_and_is_counted_rfc9177_4_4(
    pki_dir, big_server
):
    loop = asyncio.get_running_loop()
    raw = await loop.run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), big_server.port)
    try:
        get = coap(CON, GET, 0x101, b"rs", [(11, b"big"), (QBLOCK2, BlockOption(0, True, 6).encode())])
        # Block 0 rides on the ACK; block 1 comes CON, the other 29 wait behind it (NSTART 1, RFC 7252 §4.7).
        first = parsed(await loop.run_in_executor(None, lambda: (raw.send(get), raw.receive(5.0, until=2))[1]))
        assert [(m.mtype, q2(m).num) for m in first] == [(aiocoap.ACK, 0), (aiocoap.CON, 1)]
        reset = coap(RST, 0, first[1].mid, b"", [])
        later = parsed(await loop.run_in_executor(None, lambda: (raw.send(reset), raw.receive(3.0))[1]))
    finally:
        raw.close()
    assert later == []  # before: block 2 went out the moment the RST ended block 1's exchange, then the rest
    assert big_server.qblock.counts["q2_blocks_reset"] == 1
    assert big_server.qblock.counts["q2_blocks"] == BLOCKS  # all were handed to the message layer at once (§4.4)
    assert len(big_server.qblock.responses) == 0  # not kept for requests for missing blocks either
    samples = {
        (s.name, tuple(s.labels.values())): s.value
        for family in qblock_metrics(big_server.qblock)
        for s in family.samples
    }
    assert samples[("opendots_qblock_blocks_total", ("reset",))] == 1
