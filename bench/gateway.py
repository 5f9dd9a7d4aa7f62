"""Mitigation PUT through one DOTS gateway vs directly to the server, in the same run.

    .venv/bin/python bench/gateway.py [--requests 300] [--concurrency 16] [--transport dtls|tls]

An `opendots server` and an `opendots gateway` (client-domain) run as processes on loopback; this process holds
one (D)TLS session to each with the same client certificate and sends mitigation PUTs (a fresh mid and /128 each):

  round trip   one request at a time: p50 / p90 / p99 of request → answer
  rate         CONCURRENCY requests in flight: answered PUTs per second

Direct and gateway batches alternate so that both share the machine's load. Through the gateway each PUT is a
second (D)TLS exchange plus the gateway's SQLite commits (the upstream mid before the request leaves, the link
once accepted).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiocoap

from opendots.config import TlsFiles
from opendots.lab.gateway import GatewayProcess
from opendots.lab.processes import ProcessStack
from opendots.model import encode_signal
from opendots.transport import create_client_context, open_session

SCOPE = "ietf-dots-signal-channel:mitigation-scope"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Target:
    def __init__(self, name: str, context: aiocoap.Context, base_uri: str, cuid: str, mids: itertools.count) -> None:
        self.name, self.context, self.base_uri, self.cuid, self.mids = name, context, base_uri, cuid, mids
        self.round_trips: list[float] = []
        self.rates: list[float] = []
        self.generator_cpu = 0.0  # this process' CPU while it drove this path: the load generator's own cost
        self.sent = 0

    async def put(self) -> None:
        mid = next(self.mids)
        body = {SCOPE: {"scope": [{"target-prefix": [f"2001:db8::{mid:x}/128"], "lifetime": 3600}]}}
        message = aiocoap.Message(code=aiocoap.PUT, uri=self.base_uri, payload=encode_signal(body))
        message.opt.uri_path = (".well-known", "dots", "mitigate", f"cuid={self.cuid}", f"mid={mid}")
        message.opt.content_format = 271
        answer = await self.context.request(message).response
        if answer.code != aiocoap.CREATED:
            raise RuntimeError(f"{self.name}: mid {mid} answered {answer.code}: {answer.payload[:200]!r}")

    async def round_trip(self, count: int) -> None:
        cpu = time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            await self.put()
            self.round_trips.append(time.perf_counter() - started)
        self.generator_cpu += time.process_time() - cpu
        self.sent += count

    async def rate(self, count: int, concurrency: int) -> None:
        cpu = time.process_time()
        started = time.perf_counter()
        for first in range(0, count, concurrency):
            await asyncio.gather(*(self.put() for _ in range(min(concurrency, count - first))))
        self.rates.append(count / (time.perf_counter() - started))
        self.generator_cpu += time.process_time() - cpu
        self.sent += count


async def measure(stack: ProcessStack, gateway: GatewayProcess, args: argparse.Namespace) -> list[Target]:
    scheme = "coaps" if args.transport == "dtls" else "coaps+tcp"
    files = TlsFiles(stack.directory / "ca.crt", stack.directory / "client.crt", stack.directory / "client.key")
    mids = itertools.count(1)
    targets = []
    for name, port in (("direct", stack.port), ("gateway", gateway.port)):
        context = await create_client_context(files, server_name="localhost")
        base_uri = f"{scheme}://127.0.0.1:{port}"
        await open_session(context, base_uri)
        targets.append(Target(name, context, base_uri, stack.cuid, mids))
    batches = 5
    for _ in range(batches):
        for target in targets:
            await target.round_trip(max(1, args.requests // batches))
    for _ in range(batches):
        for target in targets:
            await target.rate(max(1, args.requests // batches), args.concurrency)
    for target in targets:
        await target.context.shutdown()
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="PUTs per measure and path (default 300)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--transport", choices=("dtls", "tls"), default="dtls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as directory:
        signal_settings = {"heartbeat_interval_limits": [1, 240]}
        with ProcessStack(Path(directory), mitigators=[], signal_settings=signal_settings) as stack:
            stack.server_config.signal["max_mitigations_per_client"] = 100_000
            gateway = GatewayProcess(stack.directory, "gw1", "client-domain")
            gateway.upstream_to(stack.port)
            gateway.serve(stack.server_config.clients[0])
            stack.server_config.clients.append(gateway.authorization())
            stack.server_config.save(stack.server_config_path)
            try:
                stack.start_server()
                gateway.start()
                targets = asyncio.run(measure(stack, gateway, args))
            finally:
                gateway.stop()
    print(f"mitigation PUT over {args.transport}, {args.requests} per measure, rate with {args.concurrency} in flight")
    print(f"{'path':<8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'PUT/s':>8} {'generator CPU/PUT':>18}")
    for target in targets:
        trips = [1000 * t for t in target.round_trips]
        print(
            f"{target.name:<8} {percentile(trips, 0.5):8.2f} {percentile(trips, 0.9):8.2f} "
            f"{percentile(trips, 0.99):8.2f} {statistics.median(target.rates):8.0f} "
            f"{1e6 * target.generator_cpu / max(1, target.sent):15.0f} µs"
        )


if __name__ == "__main__":
    main()
