"""Signal-channel server benchmark: mitigation PUT latency and throughput, with libcoap's server as the reference.

    .venv/bin/python bench/signal_channel.py [--requests 1000] [--seconds 3] [--rounds 3] [--clients 1,10,100]
                                             [--generators 2]

Three servers, each in its own process, taking turns for every row: each measurement is cut into --rounds slices,
the order reversed every other round, and summed; the spread printed is the ratio of each round. The servers:
OpenDOTS (real SQLite store in a fresh temporary file, logging mitigator); the floor under it (aiocoap with our
DTLS/TLS transports answering 4.04 at once: what the DOTS layer adds is ours/floor); libcoap's coap-server-openssl,
the reference. The same load generator drives all three, so they pay the same client-side cost: the latency rows
from this process, the throughput rows from --generators separate processes (2 by default; client i in process
i mod N, each with its own event loop and (D)TLS sessions). Every throughput row prints the generator's CPU per
request (time.process_time of its processes over the load window) beside the server's, and how much of a core the
generator used: near 100 % of its CPUs, the generator and not the server caps that row's rate. Every
load-generating client has its own certificate (so its own CUID, listed in server.toml) and PUTs its own mids and
target prefixes: nothing conflicts. The floor and libcoap receive the very same messages (same CBOR bytes, same
Uri-Path). The floor answers 4.04: it measures the cost of the transport and CoAP layers. libcoap runs with dynamic
resources (-d): like our server it stores each PUT (2.01 the first time, 2.04 after), in memory.
On a machine with two or more CPUs every server is pinned to the last CPU and the load generator(s) to the others
(--no-pin to leave placement to the scheduler): with two CPUs, a server that migrates between cores or shares one
with the load generator moves its figures by tens of percent from run to run.
Prints one table. Not a test: nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository root must be importable too.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import collections
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from typing import Any

import aiocoap

from bench._common import (
    GeneratorProcesses,
    cpu_seconds,
    files,
    free_port,
    generator_note,
    libcoap_base_port,
    percentiles,
    print_table,
    rss_kib,
    serve_commands,
    wait_for_udp_port,
)
from opendots import eventloop
from opendots.cli.certs import init_pki
from opendots.model import encode_signal
from opendots.pki import cuid_from_certificate
from opendots.transport import create_client_context

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
MIDS_PER_TRANSPORT = 300
"""Mids cycle through 300 values per client and transport (DTLS 1.., TLS 1001..): the first pass creates
mitigations, later ones update them; both transports together stay under the server's 1,000 per client."""
TLS_MID_BASE = 1000
REQUEST_TIMEOUT = 5.0
SESSION_SETUP = 90.0
"""Seconds a client may take to get its first answer (see BenchClient.ready)."""


# ------------------------------------------------------------------------------------------------ server roles


async def serve_dots(pki: Path, port: int, profile: Path | None) -> None:
    from opendots.config import ServerConfig
    from opendots.mitigate.base import LoggingMitigator
    from opendots.signal.server.shell.run import start_signal_server

    # The logging mitigator logs every apply at WARNING; the bench measures the signal path, not the log.
    logging.basicConfig(level=logging.ERROR)
    config = ServerConfig.load(pki / "server.toml")
    server = await start_signal_server(config, bind=[("127.0.0.1", port)], mitigator=LoggingMitigator())
    profiler = None
    if profile is not None:
        import cProfile

        # CPU time, not wall time: a server preempted inside a call (the load generator woken by its sendto, another
        # process on the shared machine) would otherwise charge the wait to that call.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(15, stop.set)  # SIGTERM (the `signal` name is this file)
    print("READY", flush=True)
    await stop.wait()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    await server.stop()


async def serve_floor(pki: Path, port: int, lean: bool = False) -> None:
    """aiocoap with our DTLS/TLS transports answering every PUT 4.04 on the spot, as the DOTS site answers through
    PromptAnswerContext: the transport, CoAP and event-loop cost under our server, with no DOTS work at all. LEAN
    (role lean-floor): plain DTLS requests answered 4.04 on the lean path instead, as the DOTS site answers them
    (opendots.transport.coap_lean): the share under our server's heartbeats, refreshes and GETs."""
    import aiocoap.resource

    from opendots.transport import start_server
    from opendots.transport.aiocoap_hooks import LeanResponse

    class NotFoundSite(aiocoap.resource.Site):
        def answer_now(self, pipe: Any) -> bool:
            pipe.add_response(aiocoap.Message(code=aiocoap.NOT_FOUND), is_last=True)
            return True

    class LeanNotFoundSite(NotFoundSite):
        def answer_lean(self, remote: Any, request: Any) -> LeanResponse:
            return LeanResponse(int(aiocoap.NOT_FOUND))

    site = LeanNotFoundSite() if lean else NotFoundSite()
    await start_server(site, credentials=files(pki, "server"), bind=[("127.0.0.1", port)])
    print("READY", flush=True)
    await asyncio.Event().wait()


SERVER_CPU: int | None = None
"""The CPU every server runs on when --pin is in effect (the load generator keeps the others)."""


def pin(load_cpu_count: int) -> str:
    """Servers on the last CPU, this process (the load generator) on the others: no server ever competes with the
    load generator for a core or migrates between cores mid-run, whichever server it is (ours, the floor,
    libcoap). Run to run spread shrinks; the same rule holds for every server, so the ratios stay fair."""
    global SERVER_CPU
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    SERVER_CPU = cpus[-1]
    os.sched_setaffinity(0, set(cpus[:-1][:load_cpu_count]))
    return f"servers pinned to CPU {SERVER_CPU}, load generator to CPU {', '.join(map(str, cpus[:-1]))}"


def pin_generator(pid: int) -> None:
    """Generator processes share this process's CPUs (not the servers')."""
    os.sched_setaffinity(pid, os.sched_getaffinity(0))


def pin_server(pid: int) -> None:
    if SERVER_CPU is not None:
        os.sched_setaffinity(pid, {SERVER_CPU})


def start_role(role: str, pki: Path, port: int, profile: Path | None) -> subprocess.Popen:
    argv = [sys.executable, __file__, "--role", role, "--pki", str(pki), "--port", str(port)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    pin_server(process.pid)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "READY":
        raise RuntimeError(f"{role} server did not start")
    return process


def start_libcoap(pki: Path) -> tuple[subprocess.Popen, int] | None:
    binary = shutil.which("coap-server-openssl")
    if binary is None:
        return None
    base = libcoap_base_port()
    process = subprocess.Popen(
        [binary, "-A", "127.0.0.1", "-p", str(base), "-v", "0", "-d", "100000", "-c", str(pki / "server.crt"),
         "-j", str(pki / "server.key"), "-C", str(pki / "ca.crt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pin_server(process.pid)
    wait_for_udp_port(base + 1, process)
    return process, base + 1


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ------------------------------------------------------------------------------------------------ load generator


class BenchClient:
    """One DOTS client (own certificate and CUID) with its own target prefix and mid range."""

    def __init__(self, pki: Path, stem: str, index: int) -> None:
        self.credentials = files(pki, stem)
        self.cuid = cuid_from_certificate(self.credentials.cert.read_bytes())
        self.index = index
        self.payloads: dict[int, bytes] = {}
        self.context: aiocoap.Context | None = None
        self.sent: collections.Counter[int] = collections.Counter()
        """PUTs sent per server port: every server gets the same sequence of mids and bodies."""

    def payload(self, mid: int) -> bytes:
        """A body of its own for every mid (distinct targets: a client's mitigations never overlap)."""
        if mid not in self.payloads:
            entry = {
                "target-prefix": [f"2001:db8:{self.index + 1:x}:{mid:x}::/64"],
                "target-port-range": [{"lower-port": 80}, {"lower-port": 443}],
                "target-protocol": [6],
                "lifetime": 3600,
            }
            self.payloads[mid] = encode_signal({SCOPE: {"scope": [entry]}})
        return self.payloads[mid]

    async def open(self) -> None:
        self.context = await create_client_context(self.credentials, server_name="localhost")

    async def close(self) -> None:
        if self.context is not None:
            await self.context.shutdown()

    def message(self, scheme: str, port: int) -> aiocoap.Message:
        mid = self.sent[port] % MIDS_PER_TRANSPORT + 1 + (TLS_MID_BASE if scheme == "coaps+tcp" else 0)
        self.sent[port] += 1
        return aiocoap.Message(
            transport_tuning=aiocoap.Unreliable,  # mitigation requests are Non-confirmable (RFC 9132 §4.4.1)
            code=aiocoap.PUT,
            uri=f"{scheme}://127.0.0.1:{port}/.well-known/dots/mitigate/cuid={self.cuid}/mid={mid}",
            content_format=271,
            payload=self.payload(mid),
        )

    async def put(self, scheme: str, port: int, codes: collections.Counter[str]) -> bool:
        assert self.context is not None
        try:
            request = self.context.request(self.message(scheme, port))
            response = await asyncio.wait_for(request.response, REQUEST_TIMEOUT)
        except Exception as problem:  # a timeout or a transport error: counted, the run goes on
            codes[type(problem).__name__] += 1
            return False
        codes[str(response.code)] += 1
        return True

    async def ready(self, scheme: str, port: int) -> collections.Counter[str]:
        """PUT until one is answered, so the session is up before a load window opens. The server admits only a
        few unfinished DTLS handshakes per source address at once, and every bench client comes from 127.0.0.1:
        of 100 clients opening together, most wait for their DTLS retransmission timer, and a client still
        handshaking inside a window stalls there for REQUEST_TIMEOUT and counts a timeout."""
        failures: collections.Counter[str] = collections.Counter()
        deadline = time.perf_counter() + SESSION_SETUP
        while time.perf_counter() < deadline:
            codes: collections.Counter[str] = collections.Counter()
            if await self.put(scheme, port, codes):
                return failures
            failures.update(codes)
            await asyncio.sleep(0.5)  # a refused or failed handshake fails the next PUT at once
        raise RuntimeError(
            f"{self.credentials.cert.name}: no answer from port {port} in {SESSION_SETUP:.0f} s: {failures}"
        )


def report_setup(port: int, failures: list[collections.Counter[str]]) -> None:
    """On stderr: the PUTs that failed while the clients' sessions came up (not counted in any figure)."""
    total = sum(failures, collections.Counter())
    if total:
        print(f"session set-up, port {port}: {_codes(total)} before every client had an answer", file=sys.stderr)


async def latency(client: BenchClient, scheme: str, port: int, count: int) -> tuple[list[float], Counter[str]]:
    """COUNT sequential PUTs after a short warm-up: (round trips in seconds, response codes)."""
    codes: collections.Counter[str] = collections.Counter()
    for _ in range(20):  # warm-up: session set-up, first-use caches
        await client.put(scheme, port, collections.Counter())
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        if await client.put(scheme, port, codes):
            samples.append(time.perf_counter() - started)
    return samples, codes


async def throughput(
    clients: list[BenchClient], scheme: str, port: int, seconds: float, server_pid: int | None
) -> tuple[int, float, float, Counter[str]]:
    """Every client PUTs back to back for SECONDS. Returns (requests answered, elapsed seconds, server CPU
    seconds, response codes). SERVER_PID None: a generator process, whose sessions are up already."""
    codes: collections.Counter[str] = collections.Counter()
    if server_pid is not None:
        report_setup(port, await asyncio.gather(*(c.ready(scheme, port) for c in clients)))
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(client: BenchClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await client.put(scheme, port, codes):
                done += 1

    cpu_before = cpu_seconds(server_pid) if server_pid is not None else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid is not None else 0.0
    return done, time.perf_counter() - started, cpu, codes


class GeneratorPool:
    """--generators load-generating processes (role "generator", bench/_common.GeneratorProcesses), each driving
    every Nth client with its own event loop and client contexts. Each measures its own CPU over the load window
    (time.process_time): the generator's CPU per request is printed beside the server's, so a generator that caps
    the rate shows."""

    def __init__(self, pki: Path, count: int, clients: int) -> None:
        def argv(index: int) -> list[str]:
            return [__file__, "--role", "generator", "--pki", str(pki), "--port", "0",
                    "--worker", f"{index}/{count}", "--clients", str(clients)]  # fmt: skip

        self.pool = GeneratorProcesses(argv, count, place=pin_generator)
        self.processes = self.pool.processes
        self.count = count

    async def throughput(
        self, count: int, scheme: str, port: int, seconds: float, server_pid: int
    ) -> tuple[int, float, float, Counter[str], float, float]:
        """As throughput(), with COUNT clients spread over the generator processes (client i in process i % N).
        Returns (answered, elapsed, server CPU s, codes, generator CPU s, busiest generator's share of a core)."""
        shares = [len(range(index, count, self.count)) for index in range(self.count)]
        busy = [index for index, share in enumerate(shares) if share]
        # Sessions up, first PUT answered, then the window.
        await self.pool.ask({i: {"prepare": shares[i], "scheme": scheme, "port": port} for i in busy})
        cpu_before = cpu_seconds(server_pid)
        results = list((await self.pool.ask({index: {"go": seconds} for index in busy})).values())
        server_cpu = cpu_seconds(server_pid) - cpu_before
        codes: Counter[str] = collections.Counter()
        for result in results:
            codes.update(result["codes"])
        done = sum(r["done"] for r in results)
        elapsed = max(r["elapsed"] for r in results)
        busiest = max(r["cpu"] / r["elapsed"] for r in results)
        return done, elapsed, server_cpu, codes, sum(r["cpu"] for r in results), busiest

    def close(self) -> None:
        self.pool.close()


async def generate(pki: Path, worker: str, total: int) -> None:
    """Role "generator": drive clients index, index + N, ... (of bench000..) on commands read from stdin."""
    index, count = (int(part) for part in worker.split("/"))
    logging.basicConfig(level=logging.ERROR)
    clients = [BenchClient(pki, f"bench{i:03d}", i + 1) for i in range(index, total, count)]
    opened = 0
    active: list[BenchClient] = []
    scheme, port = "coaps", 0

    async def handle(command: dict[str, Any]) -> dict[str, Any]:
        nonlocal active, scheme, port, opened
        if "prepare" in command:
            active, scheme, port = clients[: command["prepare"]], command["scheme"], command["port"]
            await asyncio.gather(*(c.open() for c in active[opened:]))
            opened = max(opened, len(active))
            report_setup(port, await asyncio.gather(*(c.ready(scheme, port) for c in active)))
            return {"ready": True}
        cpu_before = time.process_time()
        done, elapsed, _, codes = await throughput(active, scheme, port, command["go"], None)
        return {"done": done, "elapsed": elapsed, "cpu": time.process_time() - cpu_before, "codes": codes}

    await serve_commands(handle)
    await asyncio.gather(*(c.close() for c in clients[:opened]))


def rounds_order(servers: dict[str, Any], round_index: int) -> list[tuple[str, Any]]:
    """Servers in turn, the order reversed every other round: none is always measured first or last."""
    order = list(servers.items())
    return order if round_index % 2 == 0 else order[::-1]


def _codes(codes: collections.Counter[str]) -> str:
    return ", ".join(f"{code} x{count}" for code, count in codes.most_common())


SERVERS = {
    "OpenDOTS": "OpenDOTS server (SQLite)",
    "floor": "  floor: aiocoap + our transports, no resource",
    "libcoap": "  libcoap coap-server-openssl",
}


async def main(args: argparse.Namespace) -> None:
    pki = Path(tempfile.mkdtemp(prefix="opendots-bench-signal-"))
    names = [f"bench{index:03d}" for index in range(max(args.clients))]
    init_pki(pki, client_names=names)  # server.toml lists every CUID; its db is a fresh file in PKI
    load_cpu_before = cpu_seconds(os.getpid())
    started = time.perf_counter()
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    results: dict[str, dict[str, tuple]] = {name: {} for name in SERVERS}
    clients = [BenchClient(pki, stem, index) for index, stem in enumerate(["client", *names])]
    pool = GeneratorPool(pki, args.generators, max(args.clients)) if args.generators else None
    try:
        for role in ("dots", "floor"):
            port = free_port()
            servers["OpenDOTS" if role == "dots" else role] = (start_role(role, pki, port, args.profile), port)
        libcoap = start_libcoap(pki)
        if libcoap is not None:
            servers["libcoap"] = libcoap
        else:
            del results["libcoap"]
        for name, (process, _) in servers.items():
            results[name]["idle rss"] = (rss_kib(process.pid),)
        await asyncio.gather(*(c.open() for c in (clients if pool is None else clients[:1])))
        # Row by row, the servers one right after the other: the machine is shared, and a ratio is only
        # meaningful between figures taken under the same conditions.
        # Each measurement is cut into ROUNDS slices taken in turn (A B C, C B A, A B C ...) and summed: a
        # neighbour's burst or a frequency change then weighs on every server alike instead of on one.
        for scheme, label in (("coaps", "dtls"), ("coaps+tcp", "tls")):
            pooled: dict[str, tuple[list[float], Counter[str]]] = {n: ([], collections.Counter()) for n in servers}
            for round_index in range(args.rounds):
                for name, (_, port) in rounds_order(servers, round_index):
                    samples, codes = await latency(clients[0], scheme, port, args.requests // args.rounds)
                    pooled[name][0].extend(samples)
                    pooled[name][1].update(codes)
            for name, (samples, codes) in pooled.items():
                p50, p99 = percentiles(samples) if samples else (float("nan"), float("nan"))
                results[name][f"{label} latency"] = (p50, p99, _codes(codes))
            for count in args.clients:
                totals = {name: [0, 0.0, 0.0, collections.Counter(), 0.0, 0.0] for name in servers}
                ratios = []
                for round_index in range(args.rounds):
                    rates = {}
                    for name, (process, port) in rounds_order(servers, round_index):
                        seconds = args.seconds / args.rounds
                        if pool is not None:
                            done, elapsed, cpu, codes, load, busiest = await pool.throughput(
                                count, scheme, port, seconds, process.pid
                            )
                        else:
                            load_before = time.process_time()
                            done, elapsed, cpu, codes = await throughput(
                                clients[1 : 1 + count], scheme, port, seconds, process.pid
                            )
                            load = time.process_time() - load_before
                            busiest = load / elapsed
                        total = totals[name]
                        total[0] += done
                        total[1] += elapsed
                        total[2] += cpu
                        total[3].update(codes)
                        total[4] += load
                        total[5] = max(total[5], busiest)
                        rates[name] = done / elapsed
                    if "libcoap" in rates:
                        ratios.append(rates["OpenDOTS"] / rates["libcoap"])
                for name, (done, elapsed, cpu, codes, load, busiest) in totals.items():
                    generator = generator_note(load, done, elapsed, busiest)
                    results[name][f"{label} {count}"] = (
                        done / elapsed,
                        cpu / max(done, 1),
                        _codes(codes),
                        ratios,
                        generator,
                    )
        for name, (process, _) in servers.items():
            results[name]["rss"] = (rss_kib(process.pid),)
        await asyncio.gather(*(c.close() for c in (clients if pool is None else clients[:1])))
    finally:
        if pool is not None:
            workers_cpu = sum(cpu_seconds(process.pid) for process in pool.processes if process.poll() is None)
            load_cpu_before -= workers_cpu  # the generator processes' CPU counts as the load generator's
            pool.close()
        for process, _ in servers.values():
            stop(process)
        load_cpu = (cpu_seconds(os.getpid()) - load_cpu_before) / (time.perf_counter() - started)
        shutil.rmtree(pki, ignore_errors=True)
    report(results, args, load_cpu)


def report(results: dict[str, dict[str, tuple]], args: argparse.Namespace, load: float) -> None:
    ours, reference = results["OpenDOTS"], results.get("libcoap")
    rows: list[tuple[str, str, str]] = []
    for label in ("dtls", "tls"):
        p50, p99, _ = ours[f"{label} latency"]
        for name, result in results.items():
            r50, r99, codes = result[f"{label} latency"]
            note = f"{args.requests} sequential NON PUTs; {codes}"
            if name == "OpenDOTS":
                note = f"{args.requests} sequential NON PUTs, target p50 <= 1.5, p99 <= 5; {codes}"
            elif name == "libcoap":
                note = f"ratio ours/libcoap p50 {p50 / r50:.2f}, p99 {p99 / r99:.2f}; {codes}"
            title = f"{SERVERS[name]}: PUT RTT over {label.upper()}"
            rows.append((title, f"p50 {r50:.2f} ms / p99 {r99:.2f} ms", note))
        for count in args.clients:
            rate = ours[f"{label} {count}"][0]
            for name, result in results.items():
                other, cpu, codes, ratios, generator = result[f"{label} {count}"]
                note = f"server CPU {cpu * 1e6:.0f} us/request, {generator}; {codes}"
                if name == "libcoap":
                    spread = f"rounds {min(ratios):.2f}-{max(ratios):.2f}, " if len(ratios) > 1 else ""
                    note = f"ratio ours/libcoap {rate / other:.2f} ({spread}target >= 0.5); {note}"
                elif name == "floor":
                    note = f"ratio ours/floor {rate / other:.2f}; {note}"
                rows.append((f"{SERVERS[name]}: PUT/s over {label.upper()}, {count} clients", f"{other:.0f} /s", note))
    for name, result in results.items():
        rows.append((f"{SERVERS[name]}: RSS", f"{result['rss'][0] / 1024:.1f} MiB",
                     f"idle {result['idle rss'][0] / 1024:.1f} MiB before the load; "
                     f"{max(args.clients) + 1} clients x 2 transports connected"))  # fmt: skip
    if reference is None:
        rows.append(("reference: libcoap", "skipped", "coap-server-openssl not installed"))
    generators = f"{args.generators} processes" if args.generators else "this process"
    cpus = len(os.sched_getaffinity(0))
    rows.append((f"load generator ({generators}) CPU over the whole run", f"{load * 100:.0f} % of a core",
                 f"it has {cpus} CPU(s); each row prints its CPU per request beside the server's: near "
                 f"{cpus * 100} % of a core in a row, the generator, not the server, caps the rate"))  # fmt: skip
    rows.append(("CPU placement", args.placement, "the same for every server"))
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="sequential PUTs per latency run")
    parser.add_argument("--seconds", type=float, default=3.0, help="load time per server and throughput row")
    parser.add_argument(
        "--rounds", type=int, default=3, help="slices each measurement is cut into, servers taking turns"
    )
    parser.add_argument("--clients", default="1,10,100", help="concurrent clients of the throughput runs")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the OpenDOTS server to this file")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let the scheduler place servers and the load generator"
    )
    parser.add_argument(
        "--generators",
        type=int,
        default=2,
        help="load-generating processes for the throughput rows (0: this process, as before)",
    )
    parser.add_argument("--role", choices=["dots", "floor", "lean-floor", "generator"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.role == "dots":  # on the event loop `opendots server` uses (opendots.eventloop), as is the floor
        eventloop.run(serve_dots(arguments.pki, arguments.port, arguments.profile))
    elif arguments.role in ("floor", "lean-floor"):
        eventloop.run(serve_floor(arguments.pki, arguments.port, lean=arguments.role == "lean-floor"))
    elif arguments.role == "generator":
        asyncio.run(generate(arguments.pki, arguments.worker, int(arguments.clients)))
    else:
        arguments.clients = [int(count) for count in arguments.clients.split(",")]
        arguments.placement = pin(load_cpu_count=os.cpu_count() or 1) if arguments.pin else "not pinned (--no-pin)"
        asyncio.run(main(arguments))
