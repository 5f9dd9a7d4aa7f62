"""The DTLS server's lean path (opendots.transport.coap_lean, opendots.transport.aiocoap_hooks.lean) over a real DTLS
session with CoAP written by hand: plain heartbeats, PUTs, GETs and DELETEs answered without aiocoap Messages,
piggybacked on the ACK of a CON or in a NON of their own (RFC 7252 §5.2, RFC 9132 §4.4.1); one deduplication
table with aiocoap's path (RFC 7252 §4.5); Observe and Block2 still aiocoap's; the server's bookkeeping kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiocoap
import aiocoap.message
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal, encode_signal
from opendots.signal.server.core.messages import HEARTBEAT
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.raw_coap import ACK, CON, DOTS, GET, NON, PUT, RawDtlsCoap, coap

DELETE = 4
SCOPE = "ietf-dots-signal-channel:mitigation-scope"
CBOR = (12, b"\x01\x0f")  # Content-Format 271, application/dots+cbor
HB = [*DOTS, (11, b"hb")]
HB_BODY = encode_signal({HEARTBEAT: {"peer-hb-status": True}})


class _Session:
    """A DTLS session by hand: `await session(bytes, wait)` -> the raw CoAP messages back (the first ends the wait);
    `await session.receive(wait)` -> what else arrives."""

    def __init__(self, client: RawDtlsCoap) -> None:
        self.client = client

    async def __call__(self, message: bytes, wait: float = 1.5) -> list[bytes]:
        return await asyncio.get_running_loop().run_in_executor(None, self.client.exchange, message, wait)

    async def receive(self, wait: float) -> list[bytes]:
        return await asyncio.get_running_loop().run_in_executor(None, self.client.receive, wait, 1)


@pytest.fixture
async def session(pki_dir: Path, server):
    port = server.endpoint.dtls_addresses[0][1]
    client = await asyncio.get_running_loop().run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), port)
    yield _Session(client)
    client.close()


def _cuid(server) -> str:
    return next(c.cuid for c in server.config.clients if c.name == "client")


def _mitigate(server, mid: int | None = None) -> list[tuple[int, bytes]]:
    path = [*DOTS, (11, b"mitigate"), (11, f"cuid={_cuid(server)}".encode())]
    return path if mid is None else [*path, (11, f"mid={mid}".encode())]


def _scope(*prefixes: str) -> bytes:
    return encode_signal({SCOPE: {"scope": [{"target-prefix": list(prefixes), "lifetime": 3600}]}})


def _decode(answers: list[bytes]) -> list[aiocoap.Message]:
    return [aiocoap.Message.decode(answer) for answer in answers]


class _MessageCount:
    """aiocoap Messages built (in this thread: the server's event loop; the hand-made client is bytes only)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = aiocoap.message.Message.__init__

        def counting(message, *args, **kwargs) -> None:
            self.count += 1
            original(message, *args, **kwargs)

        monkeypatch.setattr(aiocoap.message.Message, "__init__", counting)


async def test_a_heartbeat_is_answered_without_building_an_aiocoap_message_rfc9132_4_7(session, server, monkeypatch):
    lean = server.endpoint.dtls.lean
    assert lean is not None
    server.resource.remotes.clear()
    counted = _MessageCount(monkeypatch)
    answers = await session(coap(NON, PUT, 0x100, b"h1", [*HB, CBOR], HB_BODY))
    built = counted.count
    monkeypatch.undo()
    assert built == 0, "the heartbeat went through aiocoap's Message machinery"
    (answer,) = _decode(answers)
    assert (answer.mtype, answer.code, answer.token) == (NON, aiocoap.CHANGED, b"h1")  # RFC 7252 §5.2.3
    assert lean.answered == 1
    assert server.resource.requests[("PUT", "hb", "2.04")] == 1
    (remote,) = server.resource.remotes.values()  # where the server's own heartbeats go: this very session
    assert remote in server.endpoint.dtls.sessions.values()


async def test_put_get_and_delete_are_piggybacked_on_the_ack_of_a_con_rfc7252_5_2_1(session, server):
    lean = server.endpoint.dtls.lean
    (created,) = _decode(
        await session(coap(CON, PUT, 0x200, b"p1", [*_mitigate(server, 1), CBOR], _scope("2001:db8:6401::/48")))
    )
    assert (created.mtype, created.mid, created.token, created.code) == (ACK, 0x200, b"p1", aiocoap.CREATED)
    (read,) = _decode(await session(coap(CON, GET, 0x201, b"g1", _mitigate(server, 1))))
    assert (read.mtype, read.mid, read.code, read.opt.content_format) == (ACK, 0x201, aiocoap.CONTENT, 271)
    assert SCOPE in decode_signal(read.payload)
    (deleted,) = _decode(await session(coap(CON, DELETE, 0x202, b"d1", _mitigate(server, 1))))
    assert (deleted.mtype, deleted.mid, deleted.code) == (ACK, 0x202, aiocoap.DELETED)
    (after,) = _decode(await session(coap(NON, GET, 0x203, b"g2", _mitigate(server, 1))))
    assert (after.mtype, after.token) == (NON, b"g2")  # RFC 9132 §4.4.1: a NON request gets a NON answer
    assert lean.answered == 4
    counts = server.resource.requests
    assert counts[("PUT", "mitigate", "2.01")] == 1 and counts[("DELETE", "mitigate", "2.02")] == 1
    assert sum(n for (method, resource, _), n in counts.items() if (method, resource) == ("GET", "mitigate")) == 2


async def test_a_repeated_con_gets_the_same_bytes_again_and_a_repeated_non_nothing_rfc7252_4_5(session, server):
    lean = server.endpoint.dtls.lean
    first = await session(coap(CON, PUT, 0x300, b"r1", [*HB, CBOR], HB_BODY))
    again = await session(coap(CON, PUT, 0x300, b"r1", [*HB, CBOR], HB_BODY))
    assert len(first) == 1 and again == first
    assert await session(coap(NON, PUT, 0x301, b"r2", [*HB, CBOR], HB_BODY)) != []
    assert await session(coap(NON, PUT, 0x301, b"r2", [*HB, CBOR], HB_BODY), 0.5) == []
    assert lean.answered == 2 and server.resource.requests[("PUT", "hb", "2.04")] == 2


async def test_one_dedup_table_serves_both_paths_whichever_took_the_first_copy_rfc7252_4_5(session, server):
    """A retransmission must be recognised even when a copy differs in an elective option that decides the path
    (a datagram's path is a function of its bytes, but a peer's two copies need not be byte-identical)."""
    unknown_elective = (2000, b"x")  # silently ignored by aiocoap's path (RFC 7252 §5.4.1); not the lean path's
    lean = server.endpoint.dtls.lean
    generic_first = await session(coap(CON, PUT, 0x400, b"u1", [*HB, CBOR, unknown_elective], HB_BODY))
    lean_copy = await session(coap(CON, PUT, 0x400, b"u1", [*HB, CBOR], HB_BODY))
    assert len(generic_first) == 1 and lean_copy == generic_first and lean.answered == 0
    lean_first = await session(coap(CON, PUT, 0x401, b"u2", [*HB, CBOR], HB_BODY))
    generic_copy = await session(coap(CON, PUT, 0x401, b"u2", [*HB, CBOR, unknown_elective], HB_BODY))
    assert len(lean_first) == 1 and generic_copy == lean_first and lean.answered == 1
    assert server.resource.requests[("PUT", "hb", "2.04")] == 2


async def test_an_observation_still_goes_through_aiocoap_and_is_notified_of_a_lean_put_rfc7641(session, server):
    lean = server.endpoint.dtls.lean
    await session(coap(CON, PUT, 0x500, b"o0", [*_mitigate(server, 5), CBOR], _scope("2001:db8:6401::/48")))
    (registered,) = _decode(await session(coap(CON, GET, 0x501, b"ob", [(6, b""), *_mitigate(server)])))
    assert registered.code == aiocoap.CONTENT and registered.opt.observe is not None
    assert lean.answered == 1  # the registration was not the lean path's
    put = coap(CON, PUT, 0x502, b"o2", [*_mitigate(server, 6), CBOR], _scope("2001:db8:6402::/48"))
    answers = _decode(await session(put))
    assert lean.answered == 2
    assert (answers[0].token, answers[0].code) == (b"o2", aiocoap.CREATED)
    notified = _decode(await session.receive(2.0))
    assert notified and notified[0].token == b"ob" and notified[0].opt.observe is not None


async def test_an_answer_too_large_for_one_message_is_served_in_block2_blocks_rfc7959_2_2(session, server):
    lean = server.endpoint.dtls.lean
    for mid in range(1, 16):
        prefixes = [f"2001:db8:{6400 + mid:x}:{n}::/64" for n in range(4)]
        (answer,) = _decode(
            await session(coap(NON, PUT, 0x600 + mid, b"b", [*_mitigate(server, mid), CBOR], _scope(*prefixes)))
        )
        assert answer.code == aiocoap.CREATED
    (first,) = _decode(await session(coap(CON, GET, 0x620, b"all", _mitigate(server))))
    assert (first.mtype, first.mid, first.code) == (ACK, 0x620, aiocoap.CONTENT)
    assert first.opt.block2 is not None and first.opt.block2.more and first.opt.etag is not None  # RFC 9132 §4.4.2
    assert lean.answered == 15
    assert server.resource.requests[("GET", "mitigate", "2.05")] == 1
    block2 = bytes([first.opt.block2.size_exponent | 0x10])  # block 1, same size
    (second,) = _decode(await session(coap(CON, GET, 0x621, b"al2", [*_mitigate(server), (23, block2)])))
    assert second.code == aiocoap.CONTENT and second.opt.block2.block_number == 1 and second.opt.etag == first.opt.etag


async def test_a_wrong_content_format_gets_4_15_and_a_bug_5_00_on_the_lean_path(session, server, monkeypatch):
    lean = server.endpoint.dtls.lean
    (answer,) = _decode(await session(coap(CON, PUT, 0x700, b"c1", [*HB, (12, b"\x32")], HB_BODY)))  # 50: JSON
    assert answer.code == aiocoap.UNSUPPORTED_CONTENT_FORMAT and lean.answered == 1

    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.service, "handle", broken)
    (answer,) = _decode(await session(coap(CON, PUT, 0x701, b"c2", [*HB, CBOR], HB_BODY)))
    assert (answer.mid, answer.code) == (0x701, aiocoap.INTERNAL_SERVER_ERROR) and lean.answered == 2
    monkeypatch.undo()
    (answer,) = _decode(await session(coap(CON, PUT, 0x702, b"c3", [*HB, CBOR], HB_BODY)))
    assert answer.code == aiocoap.CHANGED  # still serving


async def test_a_ping_still_gets_its_reset_rfc7252_4_3(session, server):
    (answer,) = _decode(await session(bytes([0x40, 0, 0x08, 0x00])))
    assert (answer.mtype, answer.mid, answer.code) == (3, 0x800, aiocoap.EMPTY)
    assert server.endpoint.dtls.lean.answered == 0


async def test_lean_coap_false_sends_every_request_through_aiocoap(pki_dir: Path, tmp_path: Path, monkeypatch):
    config_file = pki_dir / "server.toml"
    text = config_file.read_text()
    assert "[server]\n" in text
    off = tmp_path / "server.toml"
    off.write_text(text.replace("[server]\n", "[server]\nlean_coap = false\n", 1))
    config = ServerConfig.load(off)
    assert config.lean_coap is False and ServerConfig.load(config_file).lean_coap is True
    config.tls = ServerConfig.load(config_file).tls  # the files named relative to the PKI directory
    config.db = tmp_path / "signal.db"
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())])
    try:
        assert running.endpoint.dtls.lean is None
        port = running.endpoint.dtls_addresses[0][1]
        client = await asyncio.get_running_loop().run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), port)
        try:
            counted = _MessageCount(monkeypatch)
            answers = await _Session(client)(coap(CON, PUT, 0x900, b"n1", [*HB, CBOR], HB_BODY))
            built = counted.count
            monkeypatch.undo()
        finally:
            client.close()
        (answer,) = _decode(answers)
        assert (answer.mtype, answer.mid, answer.code) == (ACK, 0x900, aiocoap.CHANGED) and built > 0
        assert running.resource.requests[("PUT", "hb", "2.04")] == 1
    finally:
        await running.stop()


async def test_with_an_awaited_store_a_non_is_answered_once_durable_and_a_con_goes_through_aiocoap_rfc9132_4_4_1(
    pki_dir: Path, tmp_path: Path, postgres_url: str
):
    """PostgreSQL (a store whose writes are awaited): a NON is answered from a task once its write is durable, a
    copy meanwhile dropped as a duplicate; a CON stays on aiocoap's path, which sends an Empty ACK if the store is
    slow and the answer after it."""
    from tests.helpers.cluster_nodes import start_node

    node = await start_node(pki_dir, tmp_path, "a", postgres_url)
    try:
        assert node.service.awaited
        lean = node.endpoint.dtls.lean
        port = node.endpoint.dtls_addresses[0][1]
        client = await asyncio.get_running_loop().run_in_executor(None, RawDtlsCoap, files(pki_dir, "client"), port)
        session = _Session(client)
        try:
            cuid = next(c.cuid for c in node.config.clients if c.name == "client")
            path = [*DOTS, (11, b"mitigate"), (11, f"cuid={cuid}".encode()), (11, b"mid=3")]
            put = coap(NON, PUT, 0xA00, b"a1", [*path, CBOR], _scope("2001:db8:6401::/48"))
            client.send(put)
            client.send(put)  # a copy before the answer: a duplicate (RFC 7252 §4.5)
            answers = _decode(await session.receive(3.0)) + _decode(await session.receive(0.5))
            assert [(a.mtype, a.token, a.code) for a in answers] == [(NON, b"a1", aiocoap.CREATED)]
            assert lean.answered == 1
            stored = node.service.core.render_mitigations("client", cuid, 3, (), 0.0)
            assert stored.code == "2.05"
            (answer,) = _decode(await session(coap(CON, PUT, 0xA01, b"a2", [*HB, CBOR], HB_BODY)))
            assert answer.code == aiocoap.CHANGED and lean.answered == 1  # the CON: aiocoap's path
            (answer,) = _decode(await session(coap(NON, PUT, 0xA02, b"a3", [*HB, CBOR], HB_BODY)))
            assert answer.code == aiocoap.CHANGED and lean.answered == 2
        finally:
            client.close()
    finally:
        await node.stop()
