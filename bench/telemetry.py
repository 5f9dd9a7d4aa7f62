"""RFC 9244 telemetry benchmark: a 100-top-talker report, notification fan-out, server-originated telemetry, beside
the mitigation PUT of the same run.

    .venv/bin/python bench/telemetry.py [--requests 300] [--rounds 30] [--observers 100] [--seconds 10]

The server is `opendots server`'s signal channel in its own process (real SQLite store in a fresh temporary file,
`telemetry_server_originated = true`, counters read every second); one DTLS client in this process. Rows:
- mitigation PUT: a small request (one /128), created under a new mid each time: the reference;
- tm PUT, 100 top talkers: pre-or-ongoing-mitigation telemetry (RFC 9244 §8.2) with one attack detail naming 100
  source prefixes, under a new tmid each time (which replaces the previous report: same target): decoded,
  validated against ietf-dots-telemetry, stored. Its CBOR body exceeds one datagram, so it travels in Block1 blocks;
- the same decode + validate + store in this process, on the sans-I/O core with its SQLite store (no network);
- fan-out: OBSERVERS observations of the client's /tm (one session), then a small tm PUT: the time from the PUT
  until the last of the OBSERVERS notifications has arrived, and the server's CPU per round;
- server-originated telemetry (§9.2): OBSERVERS mitigations, each observed, with server-originated-telemetry set;
  a synthetic mitigator's counters grow every read, so every read notifies each observer with its rates. Server CPU
  per read round over SECONDS seconds, and the notifications received. (The counters are synthetic: this measures
  the telemetry path, rates, percentiles and notifications, not nftables.)
Server CPU is read from /proc for its process; the load generator's own CPU (this process) is printed beside it, per
request or notification, to show it is not the bottleneck. Prints one table. Not a test: nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import logging
import subprocess
import tempfile
import time
from typing import Any

import aiocoap

from bench._common import cpu_seconds, files, free_port, percentiles, print_table
from opendots.model import decode_signal, encode_signal, encode_telemetry
from opendots.pki import cuid_from_certificate
from opendots.transport import create_client_context

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
TM = "ietf-dots-telemetry:telemetry"
SETUP = "ietf-dots-telemetry:telemetry-setup"
BASE = "/.well-known/dots"
TAT = "ietf-dots-telemetry:total-attack-traffic"


# ------------------------------------------------------------------------------------------------ server role


async def serve(pki: Path, port: int) -> None:
    from opendots.config import ServerConfig
    from opendots.domain import Counters
    from opendots.mitigate.base import LoggingMitigator
    from opendots.signal.server.shell.run import start_signal_server

    class SyntheticMitigator(LoggingMitigator):
        """Counters that grow by 1,000 packets of 100 bytes per read: every read round changes every rate."""

        def __init__(self) -> None:
            super().__init__()
            self.reads: dict[str, int] = {}

        async def counters(self, key: str) -> Counters:
            if key not in self.active:
                return Counters()
            count = self.reads[key] = self.reads.get(key, 0) + 1
            packets = 1000 * count * (count + 1) // 2  # a rising rate: 1,000, 2,000, ... packets per read
            return Counters(bytes_dropped=packets * 100, pkts_dropped=packets)

    logging.basicConfig(level=logging.ERROR)  # the logging mitigator logs every apply at WARNING
    config = ServerConfig.load(pki / "server.toml")
    config.signal = {**config.signal, "telemetry_server_originated": True, "counters_interval": 1.0}
    server = await start_signal_server(config, bind=[("127.0.0.1", port)], mitigator=SyntheticMitigator())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(15, stop.set)  # SIGTERM
    print("READY", flush=True)
    await stop.wait()
    await server.stop()


def start_server(pki: Path, port: int) -> subprocess.Popen:
    argv = [sys.executable, __file__, "--role", "server", "--pki", str(pki), "--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "READY":
        raise RuntimeError("the server did not start")
    return process


# ------------------------------------------------------------------------------------------------ bodies


def talker_report(count: int) -> dict[str, Any]:
    talkers = [
        {"source-prefix": f"198.18.{i // 256}.{i % 256}/32", "spoofed-status": False, "total-attack-traffic": [
            {"unit": "packet-ps", "current-g": str(1000 + i)}]}
        for i in range(count)
    ]  # fmt: skip
    entry = {
        "target": {"target-prefix": ["203.0.113.0/24"]},
        "total-attack-traffic": [{"unit": "megabit-ps", "current-g": "900"}],
        "attack-detail": [{"vendor-id": 32473, "attack-id": 77, "attack-severity": "high", "top-talker": {
            "talker": talkers}}],
    }  # fmt: skip
    return {TM: {"pre-or-ongoing-mitigation": [entry]}}


def small_report(rate: int) -> dict[str, Any]:
    entry = {
        "target": {"target-prefix": ["203.0.113.0/24"]},
        "total-attack-traffic": [{"unit": "packet-ps", "current-g": str(rate)}],
    }
    return {TM: {"pre-or-ongoing-mitigation": [entry]}}


def mitigation(prefix: str) -> dict[str, Any]:
    return {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": 3600}]}}


# ------------------------------------------------------------------------------------------------ measurements


class Client:
    def __init__(self, context: aiocoap.Context, uri: str, cuid: str) -> None:
        self.context, self.uri, self.cuid = context, uri, cuid

    async def put(self, path: str, payload: bytes) -> tuple[float, aiocoap.Message]:
        message = aiocoap.Message(code=aiocoap.PUT, uri=f"{self.uri}/{path}", payload=payload, content_format=271)
        started = time.perf_counter()
        response = await asyncio.wait_for(self.context.request(message).response, 30)
        if not response.code.is_successful():
            raise RuntimeError(f"PUT {path}: {response.code} {response.payload[:200]!r}")
        return time.perf_counter() - started, response


def timed_rows(name: str, latencies: list[float], cpu: tuple[float, float], note: str) -> tuple[str, str, str]:
    p50, p99 = percentiles(latencies)
    server, generator = (used / len(latencies) * 1000 for used in cpu)
    return (
        name,
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
        f"server CPU {server:.2f} ms/request, generator {generator:.2f} ms/request; {note}",
    )


async def put_series(client: Client, server: subprocess.Popen, paths_and_bodies: list[tuple[str, bytes]]):
    """Latencies, and the CPU (server process, this generator process) the series used."""
    cpu, own = cpu_seconds(server.pid), time.process_time()
    latencies = [(await client.put(path, body))[0] for path, body in paths_and_bodies]
    return latencies, (cpu_seconds(server.pid) - cpu, time.process_time() - own)


def core_store_figure(count: int, body: bytes) -> tuple[str, str, str]:
    """Decode + validate + store of the 100-talker report on the sans-I/O core and its SQLite store."""
    import ipaddress

    from opendots.config import ClientAuthorization
    from opendots.signal.server.core import Request, ServerSettings, SignalServer
    from opendots.signal.server.shell.durable import settle
    from opendots.store.signal import SqliteSignalStore

    client = ClientAuthorization("bench", "benchcuid0000000000000", (ipaddress.ip_network("203.0.113.0/24"),))
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteSignalStore.open(Path(directory) / "signal.db")
        core = SignalServer(ServerSettings(clients=[client]), store.load(), 0.0)
        durations = []
        for tmid in range(count):
            request = Request("PUT", ("tm", f"cuid={client.cuid}", f"tmid={tmid}"), peer=client.cuid, payload=body)
            started = time.perf_counter()
            response, _ = settle(core, store, core.handle(request, float(tmid)), float(tmid))
            durations.append(time.perf_counter() - started)
            assert response is not None and response.code == "2.04", response
        store.close()
    p50, p99 = percentiles(durations)
    return ("tm 100 talkers, core + SQLite", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", "in process: no network")


async def follow(request: Any, on_notification: Any) -> None:
    """Hand every notification of REQUEST's observation to ON_NOTIFICATION until cancelled."""
    try:
        async for message in request.observation:
            on_notification(message)
    finally:
        request.observation.cancel()


async def fan_out(client: Client, server: subprocess.Popen, observers: int, rounds: int) -> tuple[str, str, str]:
    await client.put(f"tm/cuid={client.cuid}/tmid=100000", encode_telemetry(small_report(1)))
    queues: list[asyncio.Queue[None]] = []
    requests = []
    for _ in range(observers):
        request = client.context.request(
            aiocoap.Message(code=aiocoap.GET, uri=f"{client.uri}/tm/cuid={client.cuid}", observe=0)
        )
        await asyncio.wait_for(request.response, 30)
        queue: asyncio.Queue[None] = asyncio.Queue()
        requests.append(asyncio.create_task(follow(request, lambda _message, queue=queue: queue.put_nowait(None))))
        queues.append(queue)
    latencies = []
    cpu, own = cpu_seconds(server.pid), time.process_time()
    for round_ in range(rounds):
        started = time.perf_counter()
        await client.put(f"tm/cuid={client.cuid}/tmid={100001 + round_}", encode_telemetry(small_report(round_ + 2)))
        for queue in queues:
            await asyncio.wait_for(queue.get(), 30)
        latencies.append(time.perf_counter() - started)
    used, generator = cpu_seconds(server.pid) - cpu, time.process_time() - own
    for task in requests:
        task.cancel()
    p50, p99 = percentiles(latencies)
    return (
        f"fan-out to {observers} /tm observers",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        f"PUT to last notification; server CPU {used / rounds * 1000:.1f} ms/round "
        f"({used / rounds / observers * 1e6:.0f} µs/notification, PUT included); "
        f"generator {generator / rounds / observers * 1e6:.0f} µs/notification",
    )


async def server_originated(
    client: Client, server: subprocess.Popen, observers: int, seconds: float
) -> tuple[str, str, str]:
    setup = {
        SETUP: {
            "telemetry": [{"current-config": {"measurement-sample": "second", "server-originated-telemetry": True}}]
        }
    }
    await client.put(f"tm-setup/cuid={client.cuid}/tsid=1", encode_telemetry(setup))
    received = {"with": 0, "all": 0}

    def note(message: aiocoap.Message) -> None:
        received["all"] += 1
        if TAT in decode_signal(message.payload)[SCOPE]["scope"][0]:
            received["with"] += 1

    requests = []
    for i in range(observers):
        mid = 5000 + i
        await client.put(f"mitigate/cuid={client.cuid}/mid={mid}", encode_signal(mitigation(f"2001:db8:1::{i:x}/128")))
        request = client.context.request(
            aiocoap.Message(code=aiocoap.GET, uri=f"{client.uri}/mitigate/cuid={client.cuid}/mid={mid}", observe=0)
        )
        await asyncio.wait_for(request.response, 30)
        requests.append(asyncio.create_task(follow(request, note)))
    await asyncio.sleep(3)  # two reads: every series has a sample
    before, cpu, own = dict(received), cpu_seconds(server.pid), time.process_time()
    await asyncio.sleep(seconds)
    used, generator = cpu_seconds(server.pid) - cpu, time.process_time() - own
    for task in requests:
        task.cancel()
    rounds = seconds  # counters_interval = 1 s
    got = received["with"] - before["with"]
    return (
        f"server-originated, {observers} mitigations",
        f"{used / rounds * 1000:.1f} ms CPU/read round",
        f"{got} notifications with total-attack-traffic in {seconds:.0f} s "
        f"({used / max(got, 1) * 1e6:.0f} µs each, counter read included); "
        f"generator {generator / max(got, 1) * 1e6:.0f} µs/notification",
    )


async def main(args: argparse.Namespace) -> None:
    from opendots.pki.setup import init_pki

    with tempfile.TemporaryDirectory(prefix="opendots-bench-telemetry-") as directory:
        pki = Path(directory)
        server_config, _ = init_pki(pki)
        server_config.db = pki / "signal.db"
        server_config.save(pki / "server.toml")
        port = free_port()
        server = start_server(pki, port)
        context = await create_client_context(files(pki, "client"), server_name="localhost")
        try:
            cuid = cuid_from_certificate((pki / "client.crt").read_bytes())
            client = Client(context, f"coaps://127.0.0.1:{port}{BASE}", cuid)
            await client.put(f"mitigate/cuid={cuid}/mid=1", encode_signal(mitigation("2001:db8::1/128")))  # warm-up
            report = encode_telemetry(talker_report(100))
            n = args.requests
            mitigations = [
                (f"mitigate/cuid={cuid}/mid={10 + i}", encode_signal(mitigation(f"2001:db8:2::{i:x}/128")))
                for i in range(n)
            ]
            reports = [(f"tm/cuid={cuid}/tmid={10 + i}", report) for i in range(n)]
            rows = []
            latencies, cpu = await put_series(client, server, mitigations)
            rows.append(timed_rows("mitigation PUT (DTLS)", latencies, cpu, f"{len(mitigations[0][1])} B body"))
            latencies, cpu = await put_series(client, server, reports)
            rows.append(timed_rows("tm PUT, 100 top talkers (DTLS)", latencies, cpu, f"{len(report)} B body, Block1"))
            rows.append(core_store_figure(n, report))
            rows.append(await fan_out(client, server, args.observers, args.rounds))
            rows.append(await server_originated(client, server, args.observers, args.seconds))
        finally:
            await context.shutdown()
            server.terminate()
            server.wait(10)
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["server"], help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--observers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    if arguments.role == "server":
        asyncio.run(serve(arguments.pki, arguments.port))
    else:
        asyncio.run(main(arguments))
