"""Session scale: N DTLS sessions held on one `opendots server` process with heartbeats at RFC 9132's default.

    .venv/bin/python bench/scale_sessions.py [--sessions 20000] [--reference 1000] [--generators 4]
                                             [--hold 61] [--quick]

Each session is its own DOTS client (its own certificate and cuid in server.toml, as a provider's customers are)
on its own UDP socket. The load generator is spread over --generators processes (this script with --generator);
each opens its share of sessions (64 handshakes in flight), says it is ready, and on "go" holds them for --hold
seconds: every session sends a Non-confirmable PUT /hb every 30 s (RFC 9132 §4.7, heartbeat-interval's default;
first ones spread uniformly over the interval) and answers the server's own heartbeats with 2.04.

Rows, for the reference count and then the full count, each on a fresh server in the same run: server RSS per
session (RSS with the sessions up minus RSS before the first, divided by N), heartbeat round trip p50/p99 (the
client's PUT /hb to its 2.04), server CPU per heartbeat (the server's CPU over the hold window divided by the
heartbeats it answered and the ones it sent that were answered), whether the server declared any client lost
(opendots_signal_sessions_lost_total on its /metrics) while every client answered, and the generator's own CPU
(all its processes, over the hold window, as a share of one core). Not a test: nothing is asserted. --quick:
2,000 sessions, 500 for reference, 2 generators, a 31 s hold (one heartbeat per session).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import ipaddress
import json
import os
import random
import resource
import subprocess
import tempfile
import time
import urllib.request
import warnings

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from bench._common import SansIoDtlsClient, cpu_seconds, free_port, percentiles, print_table, rss_kib
from opendots.config import DOCUMENTATION_PREFIXES, ClientAuthorization, ServerConfig, TlsFiles
from opendots.domain.defaults import HEARTBEAT_INTERVAL
from opendots.model import encode_signal
from opendots.pki.certs import TestPki
from opendots.pki.cuid import cuid_from_certificate
from opendots.signal.server.core.messages import HEARTBEAT
from opendots.transport.dtls import DtlsConnection, client_context

HB_PATH = (".well-known", "dots", "hb")
DOTS_CBOR = 271
IN_FLIGHT = 64


# ------------------------------------------------------------------------------------------------ generator side


class Session(SansIoDtlsClient):
    """One DOTS client's DTLS session, driven by the sans-I/O DTLS core: heartbeats out, the server's answered."""

    def __init__(self, connection: DtlsConnection, stats: dict) -> None:
        super().__init__(connection)
        self.stats = stats
        self.sent: dict[bytes, float] = {}
        self.mid = random.randrange(0x10000)

    def application_data(self, data: bytes) -> None:
        self.coap(data)

    def coap(self, data: bytes) -> None:
        try:
            message = aiocoap.Message.decode(data)
        except Exception:
            self.stats["undecodable"] += 1
            return
        if message.code.is_request():  # the server's heartbeat (§4.7): 2.04, as a DOTS client does
            self.stats["server_heartbeats"] += 1
            kind = Type.ACK if message.mtype == Type.CON else Type.NON
            answer = aiocoap.Message(
                mtype=kind, code=Code.CHANGED, mid=message.mid if kind == Type.ACK else self._mid()
            )
            answer.token = message.token
            self.connection.send(answer.encode())
            return
        started = self.sent.pop(bytes(message.token), None)
        if started is not None:
            self.stats["rtts"].append(time.monotonic() - started)
            self.stats["answered" if message.code == Code.CHANGED else "refused"] += 1

    def _mid(self) -> int:
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def heartbeat(self) -> None:
        token = os.urandom(4)
        message = aiocoap.Message(
            mtype=Type.NON, code=Code.PUT, mid=self._mid(), uri_path=HB_PATH, content_format=DOTS_CBOR
        )
        message.token = token
        message.payload = encode_signal({HEARTBEAT: {"peer-hb-status": True}})
        self.sent = {k: v for k, v in self.sent.items() if time.monotonic() - v < HEARTBEAT_INTERVAL}  # unanswered
        self.sent[token] = time.monotonic()
        self.stats["sent"] += 1
        self.connection.send(message.encode())
        self.flush()


async def generate(pki: Path, port: int, first: int, count: int, hold: float) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    stats: dict = {"sent": 0, "answered": 0, "refused": 0, "server_heartbeats": 0, "undecodable": 0, "rtts": []}
    semaphore = asyncio.Semaphore(IN_FLIGHT)
    sessions: list[Session] = []
    failed = 0

    async def one(index: int) -> None:
        nonlocal failed
        files = TlsFiles(pki / "ca.crt", pki / f"c{index}.crt", pki / f"c{index}.key")
        async with semaphore:
            connection = DtlsConnection.connect(client_context(files, "localhost"), now=time.monotonic())
            _, session = await loop.create_datagram_endpoint(
                lambda: Session(connection, stats), remote_addr=("127.0.0.1", port)
            )
            try:
                await asyncio.wait_for(session.established, 60)
                sessions.append(session)
            except TimeoutError:
                failed += 1

    started = time.process_time()
    await asyncio.gather(*(one(index) for index in range(first, first + count)))
    handshake_cpu = time.process_time() - started
    print(json.dumps({"ready": len(sessions), "failed": failed}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    held_from = time.process_time()
    stats["server_heartbeats"] = 0  # count the hold window's only
    for session in sessions:  # first heartbeats spread over one interval, then every interval
        delay = random.uniform(0, HEARTBEAT_INTERVAL)

        def beat(s: Session = session) -> None:
            s.heartbeat()
            loop.call_later(HEARTBEAT_INTERVAL, beat)

        loop.call_later(delay, beat)
    await asyncio.sleep(hold)
    stats["cpu"] = time.process_time() - held_from
    now = time.monotonic()  # unanswered at the end: sent in the last second (in flight) or before (lost)
    ages = [now - sent for session in sessions for sent in session.sent.values()]
    stats["in_flight"] = sum(1 for age in ages if age < 1.0)
    stats["lost"] = len(ages) - stats["in_flight"]
    stats["handshake_cpu"] = handshake_cpu
    print(json.dumps(stats), flush=True)


# ------------------------------------------------------------------------------------------------ orchestration


def write_pki(directory: Path, clients: int, max_sessions: int) -> Path:
    """A CA, the server, CLIENTS client certificates c0..cN-1, each a [[clients]] entry of server.toml."""
    pki = TestPki(directory)
    server = pki.issue_server(None)
    prefixes = tuple(ipaddress.ip_network(p) for p in DOCUMENTATION_PREFIXES)
    authorizations = []
    for index in range(clients):
        credential = pki.issue_client(f"c{index}")
        cuid = cuid_from_certificate(credential.cert_path.read_bytes())
        authorizations.append(ClientAuthorization(name=f"c{index}", cuid=cuid, prefixes=prefixes))
    config = ServerConfig(
        tls=TlsFiles(pki.ca_cert_path, server.cert_path, server.key_path),
        clients=authorizations,
        db=directory / "opendots.db",
    )
    config.max_sessions = max_sessions + 100
    config.max_handshakes_per_address = 4 * IN_FLIGHT  # every generator session comes from 127.0.0.1
    config.save(directory / "server.toml")
    return directory / "server.toml"


def scrape(metrics: str, prefix: str) -> float:
    """The sum of the server's /metrics samples whose line starts with PREFIX."""
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=30).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def udp_receive_buffer_errors() -> int:
    """Datagrams the kernel dropped for a full socket receive buffer, machine-wide (/proc/net/snmp)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def run(pki: Path, config: Path, sessions: int, generators: int, hold: float) -> list[tuple[str, str, str]]:
    port = free_port()
    metrics = f"127.0.0.1:{free_port()}"
    root = Path(__file__).resolve().parent.parent
    environment = {**os.environ, "PYTHONPATH": str(root)}
    flags = ["--no-tls", "--no-data", "--listen", "127.0.0.1", "--signal-port", str(port), "--metrics", metrics]
    server = subprocess.Popen(
        [sys.executable, "-m", "opendots", "server", "-c", str(config), *flags],
        cwd=root, env=environment, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stderr is not None
    while "listening" not in (line := server.stderr.readline()):
        if not line:
            raise RuntimeError("the server exited")
    # A pipe nobody reads would stall the server's logging: drain it.
    subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
    before = rss_kib(server.pid)
    shares = [sessions // generators + (i < sessions % generators) for i in range(generators)]
    starts = [sum(shares[:i]) for i in range(generators)]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--generator", str(pki), str(port), str(start), str(share), str(hold)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for start, share in zip(starts, shares, strict=True)
    ]
    opened = time.monotonic()
    ready = [json.loads(child.stdout.readline()) for child in children]  # type: ignore[union-attr]
    handshake_seconds = time.monotonic() - opened
    up = sum(r["ready"] for r in ready)
    time.sleep(2)  # the last handshakes' garbage collected, the server idle
    after = rss_kib(server.pid)
    lost_before = scrape(metrics, "opendots_signal_sessions_lost_total")
    gc_before = scrape(metrics, "opendots_full_gc_seconds_total")
    gc_ticks_before = scrape(metrics, "opendots_full_gc_collections_total")
    gc_whole_before = scrape(metrics, "opendots_full_gc_whole_walks_total")
    drops_before = udp_receive_buffer_errors()
    cpu_before = cpu_seconds(server.pid)
    for child in children:
        child.stdin.write("go\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
    results = [json.loads(child.stdout.readline()) for child in children]  # type: ignore[union-attr]
    server_cpu = cpu_seconds(server.pid) - cpu_before
    lost = scrape(metrics, "opendots_signal_sessions_lost_total") - lost_before
    gc_seconds = scrape(metrics, "opendots_full_gc_seconds_total") - gc_before
    gc_last = scrape(metrics, "opendots_full_gc_last_seconds")
    gc_ticks = scrape(metrics, "opendots_full_gc_collections_total") - gc_ticks_before
    gc_whole = scrape(metrics, "opendots_full_gc_whole_walks_total") - gc_whole_before
    frozen = scrape(metrics, "opendots_gc_frozen_objects")
    drops = udp_receive_buffer_errors() - drops_before
    for child in children:
        child.wait()
    server.terminate()
    server.wait(30)
    rtts = [rtt for r in results for rtt in r["rtts"]]
    sent = sum(r["sent"] for r in results)
    answered = sum(r["answered"] for r in results)
    server_beats = sum(r["server_heartbeats"] for r in results)
    generator_cpu = sum(r["cpu"] for r in results)
    p50, p99 = percentiles(rtts) if rtts else (float("nan"), float("nan"))
    label = f"{sessions:,} sessions"
    return [
        (
            f"{label}: up",
            f"{up:,} in {handshake_seconds:.1f} s",
            f"{sum(r['failed'] for r in ready)} failed handshakes",
        ),
        (
            f"{label}: server RSS",
            f"{(after - before) / max(1, up):.1f} KiB/session",
            f"{before / 1024:.0f} MiB before, {after / 1024:.0f} MiB with the sessions",
        ),
        (
            f"{label}: heartbeat RTT",
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
            f"{answered:,}/{sent:,} answered; unanswered at the end: "
            f"{sum(r['in_flight'] for r in results)} sent in its last second, "
            f"{sum(r['lost'] for r in results)} before; "
            f"{sum(r['refused'] for r in results)} refused, {sum(r['undecodable'] for r in results)} undecodable",
        ),
        (
            f"{label}: server CPU",
            f"{server_cpu / max(1, answered + server_beats) * 1e6:.0f} µs/heartbeat",
            f"{server_cpu:.2f} s over {hold:.0f} s ({server_cpu / hold:.0%} of a core); "
            f"{server_beats:,} server heartbeats answered",
        ),
        (f"{label}: declared lost", f"{lost:.0f}", "clients the server declared lost while every client answered"),
        (
            f"{label}: pauses and drops",
            f"timed GC {gc_seconds:.2f} s (last {gc_last * 1000:.0f} ms)",
            f"{gc_ticks:.0f} ticks, {gc_whole:.0f} of them whole-heap walks, {frozen:,.0f} objects frozen; "
            f"{drops:,} UDP datagrams dropped for a full receive buffer (machine-wide, hold window)",
        ),
        (f"{label}: generator CPU", f"{generator_cpu / hold:.0%} of a core", f"{generators} processes, hold window"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--reference", type=int, default=1_000)
    parser.add_argument("--generators", type=int, default=4)
    parser.add_argument("--hold", type=float, default=2 * HEARTBEAT_INTERVAL + 1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--generator", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        warnings.simplefilter("ignore", DeprecationWarning)  # aiocoap's about setting mtype and mid: raw CoAP here
        pki, port, first, count, hold = args.generator
        asyncio.run(generate(Path(pki), int(port), int(first), int(count), float(hold)))
        return
    if args.quick:
        args.sessions, args.reference, args.generators, args.hold = 2_000, 500, 2, HEARTBEAT_INTERVAL + 1
    with tempfile.TemporaryDirectory(prefix="od-sessions-") as directory:
        pki = Path(directory)
        config = write_pki(pki, max(args.sessions, args.reference), max(args.sessions, args.reference))
        rows = []
        for count in (args.reference, args.sessions):
            rows += run(pki, config, count, args.generators, args.hold)
    print_table(rows)


if __name__ == "__main__":
    main()
