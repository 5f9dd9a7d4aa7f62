"""Server CPU per datagram of the DTLS transport's lean path alone, in one process, with no socket: a sans-I/O DTLS
client hands its datagrams straight to the server interface's receive callback (`_datagram_received`, as the UDP
socket would), whose answers are caught at `sendto`. The server is start_server's DTLS interface with a site
answering every plain request 4.04 on the lean path (bench/signal_channel.py's lean-floor), so what is timed is
the established-session path: record check and decryption, CoAP parsing, deduplication, the answer's encoding and
sealing. No event loop turn, no recvfrom/sendto system call: the bench/message_cpu.py "lean floor" row is this
plus those. Only the server's call is timed (time.perf_counter_ns around it); the client's work is not.

Usage: PYTHONPATH=. python bench/transport_cpu.py [--messages 10000] [--rounds 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

import aiocoap
import aiocoap.resource

from bench._common import files, free_port
from opendots.cli.certs import init_pki
from opendots.transport import start_server
from opendots.transport.aiocoap_hooks import LeanResponse
from opendots.transport.dtls import ApplicationData, DtlsConnection, client_context

PEER = ("127.0.0.1", 40000)


class _Site(aiocoap.resource.Site):
    def answer_lean(self, remote: Any, request: Any) -> LeanResponse:
        return LeanResponse(int(aiocoap.NOT_FOUND))


class _Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append(data)

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 4646)


class _Socket:
    def __init__(self) -> None:
        self.transport = _Transport()


def _heartbeat(mid: int) -> bytes:
    """A NON PUT /.well-known/dots/hb with a token of 4 bytes and a 10-byte CBOR body (the shape of a heartbeat)."""
    options = b"\xbb.well-known\x04dots\x02hb\x11\x3c"
    return bytes((0x54, 0x03)) + mid.to_bytes(2, "big") + b"tokn" + options + b"\xff" + b"\xa1\x19\x40\x4f\xf4" * 2


async def main(messages: int, rounds: int, turns: bool = False) -> None:
    directory = Path(tempfile.mkdtemp(prefix="transport-cpu-"))
    init_pki(directory, client_names=[])
    endpoint = await start_server(
        _Site(), credentials=files(directory, "server"), bind=[("127.0.0.1", free_port())], tls=False
    )
    server = endpoint.dtls
    sock = _Socket()
    loop = asyncio.get_running_loop()
    client = DtlsConnection.connect(client_context(files(directory, "client"), "localhost"), now=loop.time())
    for _ in range(20):  # the handshake, datagram by datagram, both ways
        for datagram in client.datagrams_to_send():
            server._datagram_received(sock, datagram, PEER)  # type: ignore[arg-type]
        replies, sock.transport.sent = sock.transport.sent, []
        for reply in replies:
            client.receive_datagram(reply, loop.time())
        if client.established and not replies:
            break
    assert client.established, "handshake did not complete"
    receive = server._datagram_received
    perf = time.perf_counter_ns
    mid = 0
    results = []
    for _ in range(rounds):
        spent = 0
        for _ in range(messages):
            mid = (mid + 1) & 0xFFFF
            client.send(_heartbeat(mid))
            (datagram,) = client.datagrams_to_send()
            start = perf()
            receive(sock, datagram, PEER)  # type: ignore[arg-type]
            spent += perf() - start
            (reply,) = sock.transport.sent
            sock.transport.sent.clear()
            (event,) = client.receive_datagram(reply, 0.0)
            if turns:
                start = perf()
                await asyncio.sleep(0)  # what the receive callback left for the loop (call_soon, tasks)
                spent += perf() - start
            assert isinstance(event, ApplicationData) and event.data[1] == 0x84, event
        results.append(spent / messages / 1000)
    print(
        f"server, lean path, one heartbeat-shaped NON: {statistics.median(results):.1f} µs/datagram (median of "
        f"{rounds} rounds of {messages}, best {min(results):.1f}: on a shared machine the least disturbed; "
        f"rounds {', '.join(f'{r:.1f}' for r in results)})"
    )
    await endpoint.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", action="store_true", help="let the event loop run after each datagram (timed)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run to this file")
    arguments = parser.parse_args()
    if arguments.messages * arguments.rounds > 0xFFFF:
        # One session's Message IDs: past 65,535 they repeat within EXCHANGE_LIFETIME, and the server rightly takes
        # the repeats for duplicates (RFC 7252 §4.5), answering none of them.
        parser.error("--messages × --rounds must stay within 65,535 (one session's Message IDs)")
    if arguments.profile:
        import cProfile

        cProfile.run("asyncio.run(main(arguments.messages, arguments.rounds, arguments.turns))", str(arguments.profile))
    else:
        asyncio.run(main(arguments.messages, arguments.rounds, arguments.turns))
