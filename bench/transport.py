"""Signal-channel transport benchmark: handshakes/s, request RTT, memory per idle session, with reference runs.

    .venv/bin/python bench/transport.py [--requests 1000] [--sessions 1000] [--in-flight 20]

Servers run in their own processes (this script re-invokes itself with --role), clients in this one:
  * OpenDOTS server (aiocoap + our DTLS/TLS transports) on one port for UDP and TCP;
  * a raw pyOpenSSL DTLS echo server (same sans-I/O core, no CoAP) as the floor;
  * libcoap's coap-server-openssl as the reference, reached by our client and by coap-client-openssl.
Prints one table. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiocoap
import aiocoap.resource as resource
import cbor2

from bench._common import SansIoDtlsClient, cpu_seconds, files, free_port, percentiles, rss_kib
from opendots.cli.certs import init_pki
from opendots.transport import create_client_context, start_server
from opendots.transport.dtls import ApplicationData, DtlsConnection, client_context
from opendots.transport.dtls_listener import DtlsListener

REPLY = cbor2.dumps({"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": 1, "status": 2}]}})


# ------------------------------------------------------------------------------------------------ server roles


class Status(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=REPLY, content_format=271)


async def serve_coap(pki: Path, port: int) -> None:
    site = resource.Site()
    site.add_resource(["status"], Status())
    await start_server(site, credentials=files(pki, "server"), bind=[("127.0.0.1", port)])
    print("READY", flush=True)
    await asyncio.Event().wait()


class EchoProtocol(asyncio.DatagramProtocol):
    def __init__(self, pki: Path) -> None:
        self.listener = DtlsListener(files(pki, "server"), now=time.monotonic())
        self.sessions: dict[tuple, DtlsConnection] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, peer: tuple) -> None:
        connection = self.sessions.get(peer)
        now = time.monotonic()
        if connection is None:
            result = self.listener.receive(data, peer, now)
            for reply in result.reply:
                self.transport.sendto(reply, peer)
            if result.connection is None:
                return
            connection = self.sessions[peer] = result.connection
        else:
            for event in connection.receive_datagram(data, now):
                if isinstance(event, ApplicationData):
                    connection.send(event.data)
        for datagram in connection.datagrams_to_send():
            self.transport.sendto(datagram, peer)


async def serve_echo(pki: Path, port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: EchoProtocol(pki), local_addr=("127.0.0.1", port))
    print("READY", flush=True)
    await asyncio.Event().wait()


def start_role(role: str, pki: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--pki", str(pki), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "READY":
        raise RuntimeError(f"{role} server did not start")
    return process


# ------------------------------------------------------------------------------------------------ client side


class RawDtlsClient(SansIoDtlsClient):
    """A bare DTLS client: the server's answers queue up in `replies`."""

    def __init__(self, connection: DtlsConnection) -> None:
        super().__init__(connection)
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def application_data(self, data: bytes) -> None:
        self.replies.put_nowait(data)


async def open_raw_session(context, port: int) -> tuple[asyncio.DatagramTransport, RawDtlsClient]:
    loop = asyncio.get_running_loop()
    connection = DtlsConnection.connect(context, now=time.monotonic())
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: RawDtlsClient(connection), remote_addr=("127.0.0.1", port)
    )
    await asyncio.wait_for(protocol.established, 30)
    return transport, protocol


async def handshakes(pki: Path, port: int, total: int, in_flight: int) -> tuple[float, list]:
    """Open TOTAL sessions, IN_FLIGHT at a time (each with its cookie round); returns (per second, open sessions)."""
    context = client_context(files(pki, "client"), "localhost")
    semaphore = asyncio.Semaphore(in_flight)
    opened: list = []

    async def one() -> None:
        async with semaphore:
            opened.append(await open_raw_session(context, port))

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - started), opened


def in_memory_server_cost(pki: Path, count: int = 200) -> float:
    """Server-side time per full handshake (cookie round included) with datagrams passed in memory: no sockets,
    no event loop, no other process competing for the core. Milliseconds."""
    listener = DtlsListener(files(pki, "server"), now=time.monotonic())
    context = client_context(files(pki, "client"), "localhost")
    server_time = 0.0
    for index in range(count):
        now = time.monotonic()
        client = DtlsConnection.connect(context, now=now)
        server: DtlsConnection | None = None
        while not (client.established and server is not None and server.established):
            for datagram in client.datagrams_to_send():
                started = time.perf_counter()
                if server is None:
                    result = listener.receive(datagram, ("192.0.2.1", index), now)
                    server, replies = result.connection, result.reply
                else:
                    server.receive_datagram(datagram, now)
                    replies = []
                if server is not None:
                    replies += server.datagrams_to_send()
                server_time += time.perf_counter() - started
                for reply in replies:
                    client.receive_datagram(reply, now)
    return server_time / count * 1000


async def coap_rtts(pki: Path, uri: str, count: int) -> tuple[float, float]:
    client = await create_client_context(files(pki, "client"), server_name="localhost")
    try:
        for _ in range(20):  # warm-up, includes the handshake
            await client.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await client.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
            samples.append(time.perf_counter() - started)
        return percentiles(samples)
    finally:
        await client.shutdown()


async def echo_rtts(pki: Path, port: int, count: int) -> tuple[float, float]:
    transport, protocol = await open_raw_session(client_context(files(pki, "client"), "localhost"), port)
    try:
        samples = []
        for _ in range(count + 20):
            started = time.perf_counter()
            protocol.connection.send(REPLY)
            protocol.flush()
            await protocol.replies.get()
            samples.append(time.perf_counter() - started)
        return percentiles(samples[20:])
    finally:
        transport.close()


def libcoap_client_runs(pki: Path, port: int, runs: int = 20) -> float | None:
    binary = shutil.which("coap-client-openssl")
    if binary is None:
        return None
    argv = [binary, "-B", "5", "-c", str(pki / "client.crt"), "-j", str(pki / "client.key"), "-C", str(pki / "ca.crt")]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*argv, f"coaps://127.0.0.1:{port}/"], capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def main(args: argparse.Namespace) -> None:
    pki = Path(tempfile.mkdtemp(prefix="opendots-bench-"))
    init_pki(pki)
    rows: list[tuple[str, str, str]] = []

    port = free_port()
    server = start_role("coap", pki, port)
    try:
        rate, _warm = await handshakes(pki, port, 20, 20)  # warm-up (imports, caches)
        for transport, _ in _warm:
            transport.close()
        await asyncio.sleep(0.5)
        baseline = rss_kib(server.pid)
        cpu_before = cpu_seconds(server.pid)
        rate, opened = await handshakes(pki, port, args.sessions, args.in_flight)
        cpu_per_handshake = (cpu_seconds(server.pid) - cpu_before) / args.sessions * 1000
        await asyncio.sleep(1.0)
        grown = rss_kib(server.pid)
        rows.append(("OpenDOTS DTLS full handshakes (cookie round, mutual X.509)", f"{rate:.0f} /s",
                     f"{args.sessions} sessions, {args.in_flight} in flight, target >= 400/s"))  # fmt: skip
        rows.append(("OpenDOTS server CPU per full handshake", f"{cpu_per_handshake:.2f} ms",
                     f"i.e. {1000 / cpu_per_handshake:.0f} handshakes/s per fully available core"))  # fmt: skip
        rows.append(("OpenDOTS server RSS per idle DTLS session", f"{(grown - baseline) / args.sessions:.1f} KiB",
                     f"RSS {baseline} -> {grown} KiB with {args.sessions} sessions, target <= 100 KiB"))  # fmt: skip
        for transport, _ in opened:
            transport.close()
        p50, p99 = await coap_rtts(pki, f"coaps://127.0.0.1:{port}/status", args.requests)
        rows.append(("OpenDOTS CoAP GET over DTLS, RTT", f"p50 {p50:.2f} ms / p99 {p99:.2f} ms",
                     f"{args.requests} sequential, target p50 <= 1.5, p99 <= 5"))  # fmt: skip
        p50, p99 = await coap_rtts(pki, f"coaps+tcp://127.0.0.1:{port}/status", args.requests)
        rows.append(("OpenDOTS CoAP GET over TLS, RTT", f"p50 {p50:.2f} ms / p99 {p99:.2f} ms",
                     f"{args.requests} sequential, same port number as DTLS"))  # fmt: skip
    finally:
        server.terminate()
        server.wait()

    cost = in_memory_server_cost(pki)
    rows.append(("floor: server-side time per full handshake, in memory", f"{cost:.2f} ms",
                 f"no sockets/loop/other process: {1000 / cost:.0f} handshakes/s per free core"))  # fmt: skip

    port = free_port()
    echo = start_role("echo", pki, port)
    try:
        rate, opened = await handshakes(pki, port, min(args.sessions, 400), args.in_flight)
        for transport, _ in opened:
            transport.close()
        rows.append(("floor: raw pyOpenSSL DTLS handshakes (no CoAP)", f"{rate:.0f} /s", "same core, echo server"))
        p50, p99 = await echo_rtts(pki, port, args.requests)
        rows.append(("floor: raw pyOpenSSL DTLS echo, RTT", f"p50 {p50:.2f} ms / p99 {p99:.2f} ms",
                     f"{args.requests} sequential"))  # fmt: skip
    finally:
        echo.terminate()
        echo.wait()

    binary = shutil.which("coap-server-openssl")
    if binary:
        base = free_port()
        while True:  # coap-server listens for DTLS on base+1
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", base + 1))
                break
            except OSError:
                base = free_port()
        libcoap = subprocess.Popen(
            [binary, "-A", "127.0.0.1", "-p", str(base), "-c", str(pki / "server.crt"), "-j", str(pki / "server.key"),
             "-C", str(pki / "ca.crt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.sleep(0.5)
            p50, p99 = await coap_rtts(pki, f"coaps://127.0.0.1:{base + 1}/", args.requests)
            rows.append(("reference: OpenDOTS client -> libcoap coap-server, DTLS RTT",
                         f"p50 {p50:.2f} ms / p99 {p99:.2f} ms", f"{args.requests} sequential GET /"))  # fmt: skip
            whole = libcoap_client_runs(pki, base + 1)
            if whole is not None:
                rows.append(("reference: libcoap coap-client -> coap-server, one run", f"median {whole:.1f} ms",
                             "process start + DTLS handshake + GET; coap-client has no repeat mode"))  # fmt: skip
        finally:
            libcoap.terminate()
            libcoap.wait()
    else:
        rows.append(("reference: libcoap", "skipped", "coap-server-openssl not installed"))

    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"{'measurement':<{widths[0]}}  {'result':<{widths[1]}}  notes")
    print("-" * (sum(widths) + 4 + 5))
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (shared machine)")
    print(f"machine: {os.cpu_count()} CPUs; servers in separate processes; command: {' '.join(sys.argv)}")
    shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--role", choices=["coap", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.role == "coap":
        asyncio.run(serve_coap(arguments.pki, arguments.port))
    elif arguments.role == "echo":
        asyncio.run(serve_echo(arguments.pki, arguments.port))
    else:
        asyncio.run(main(arguments))
