"""Mitigation PUT load from several processes, for bench/scale.py and bench/workers.py.

A request slot is one loop sending a PUT as soon as its previous one is answered (so the slots are the requests in
flight), through one client context (DotsClient of tests/helpers/cluster: aiocoap over our DTLS transport, as the
tests' clients) to one node's port. A context is a client certificate (so a cuid) on its own source port; several
contexts of one certificate are one DOTS client with several DTLS sessions. Context i lives in generator process
i mod N, with its slots: each process has its own event loop, and measures its own CPU over the load window
(time.process_time), printed beside the server's so a generator that caps the rate shows.

Targets: a PUT of client T (the context's target index) with mid M asks for 2001:db8:T:M/80 (M's two halves), so
no two requests of distinct (T, M) overlap. With `shared` every client asks for one of 64 /64s of 2001:db8:ffff::/48
instead: the same prefixes from several clients, conflicts (RFC 9132 §4.4.1.3) between them. Mids: each slot counts
its own ((slot + 1) * 10,000,000 upwards, lower ones left for other uses; kept across windows: every PUT creates a
mitigation), or with `cycle` C refreshes C mitigations of its own in turn (the first pass creates them).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a generator process: the repository root must be importable
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import collections
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from bench._common import (
    GeneratorProcesses,
    cpu_seconds,
    generator_note,
    machine_busy,
    percentiles,
    serve_commands,
    tree_cpu_seconds,
)
from tests.helpers.cluster import DotsClient


@dataclass
class Context:
    stem: str  # the certificate's file stem in the PKI
    cuid: str
    target: int  # index in the targets' prefix (see above)


@dataclass
class Slot:
    context: int  # index in the contexts list
    port: int  # the node's DTLS port


@dataclass
class Window:
    """One load window's figures, all processes together."""

    requests: int
    elapsed: float
    latencies: list[float]
    codes: collections.Counter[str]
    generator_cpu: float  # CPU seconds of every generator process over the window
    busiest: float  # the busiest generator process's share of a core

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed

    def latency(self) -> str:
        p50, p99 = percentiles(self.latencies) if self.latencies else (float("nan"), float("nan"))
        return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"

    def codes_text(self) -> str:
        return ", ".join(f"{code} x{count}" for code, count in sorted(self.codes.items()))

    def generator(self) -> str:
        return generator_note(self.generator_cpu, self.requests, self.elapsed, self.busiest)


@dataclass
class Spent:
    """CPU seconds the parts of the machine used over a load window."""

    servers: float
    server_processes: int
    postgres: float | None
    others: float  # busy CPU of the whole machine outside this benchmark's processes
    busy: float  # CPUs busy on average over the window, whoever used them


def rate_rows(label: str, window: Window, spent: Spent, unit: str) -> list[tuple[str, str, str]]:
    """A rate row (with every CPU figure of SPENT, per UNIT: "node", "process") and a latency row, for print_table."""
    per = 1e6 / max(1, window.requests)
    share = spent.servers / window.elapsed / spent.server_processes * 100  # far below 100 %: it waits, not computes
    cost = f"server CPU {spent.servers * per:.0f} us/PUT ({share:.0f} % of a core per {unit})"
    if spent.postgres is not None:
        cost += f", PostgreSQL {spent.postgres * per:.0f} us/PUT"
    machine = (
        f"CPUs busy {spent.busy:.2f} of {os.cpu_count()} ({spent.others / window.elapsed:.2f} outside this bench), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return [
        (f"PUT rate, {label}", f"{window.rate:.0f}/s", f"{cost}; {window.generator()}; {machine}"),
        (f"PUT latency, {label}", window.latency(), window.codes_text()),
    ]


class PutLoad:
    """PROCESSES generator processes on the PKI of directory PKI (certificates STEM.crt/.key)."""

    def __init__(self, pki: Path, processes: int) -> None:
        self.pool = GeneratorProcesses(lambda _: [__file__, "--pki", str(pki)], processes)
        self.count = processes

    async def open(self, contexts: list[Context]) -> None:
        """Open CONTEXTS (closing those of a previous open): context i in process i mod N."""
        commands = {
            p: {"open": [vars(c) for c in contexts[p :: self.count]]} for p in range(min(self.count, len(contexts)))
        }
        await self.pool.ask({p: {"open": []} for p in range(self.count)} | commands)

    async def run(self, slots: list[Slot], seconds: float, *, shared: bool = False, cycle: int = 0) -> Window:
        """Every slot PUTs back to back for SECONDS; slot i numbers its mids from (i + 1) * 10,000,000 (see above)."""
        commands: dict[int, dict[str, Any]] = {}
        for index, slot in enumerate(slots):
            process, local = slot.context % self.count, slot.context // self.count
            command = commands.setdefault(process, {"go": seconds, "shared": shared, "cycle": cycle, "slots": []})
            command["slots"].append([index, local, slot.port])
        answers = (await self.pool.ask(commands)).values()
        codes: collections.Counter[str] = collections.Counter()
        for answer in answers:
            codes.update(answer["codes"])
        latencies = [latency for answer in answers for latency in answer["latencies"]]
        elapsed = max(answer["elapsed"] for answer in answers)
        cpu = sum(answer["cpu"] for answer in answers)
        busiest = max(answer["cpu"] / answer["elapsed"] for answer in answers)
        return Window(len(latencies), elapsed, latencies, codes, cpu, busiest)

    async def measured(
        self, slots: list[Slot], seconds: float, servers: list[int], postgres: int | None, **options: Any
    ) -> tuple[Window, Spent]:
        """`run`, with the CPU the SERVERS processes, PostgreSQL (its postmaster's pid) and the machine used."""

        def reading() -> tuple[float, float, float, float, float]:
            server = sum(cpu_seconds(pid) for pid in servers)
            database = tree_cpu_seconds(postgres) if postgres is not None else 0.0
            ours = database + tree_cpu_seconds(os.getpid())  # the servers and generators are this one's children
            return server, database, ours, *machine_busy()

        before = reading()
        window = await self.run(slots, seconds, **options)
        server, database, ours, busy, total = (a - b for a, b in zip(reading(), before, strict=True))
        cpus = os.cpu_count() or 1
        spent = Spent(
            server, len(servers), database if postgres is not None else None, busy - ours, busy / total * cpus
        )
        return window, spent

    def close(self) -> None:
        self.pool.close()


# ------------------------------------------------------------------------------------------------ generator side


@dataclass
class _Port:
    port: int  # what DotsClient needs of a node


async def generate(pki: Path) -> None:
    logging.basicConfig(level=logging.ERROR)
    opened: list[tuple[DotsClient, int]] = []
    mids: dict[int, itertools.count[int]] = {}

    async def handle(command: dict[str, Any]) -> dict[str, Any]:
        nonlocal opened
        if "open" in command:
            for client, _ in opened:
                await client.close()
            opened = [
                (await DotsClient.open(pki, context["stem"], context["cuid"]), context["target"])
                for context in command["open"]
            ]
            return {"opened": len(opened)}
        return await window(command)

    async def window(command: dict[str, Any]) -> dict[str, Any]:
        latencies: list[float] = []
        codes: collections.Counter[str] = collections.Counter()
        end = time.monotonic() + command["go"]

        async def loop(index: int, local: int, port: int) -> None:
            client, target = opened[local]
            node = _Port(port)
            counter = mids.setdefault(index, itertools.count((index + 1) * 10_000_000 + 1))
            for turn in itertools.count():
                if time.monotonic() >= end:
                    return
                mid = (index + 1) * 10_000_000 + 1 + turn % command["cycle"] if command["cycle"] else next(counter)
                if command["shared"]:
                    prefix = f"2001:db8:ffff:{mid % 64:x}::/64"
                else:
                    prefix = f"2001:db8:{target:x}:{mid >> 16:x}:{mid & 0xFFFF:x}::/80"
                started = time.perf_counter()
                try:
                    response = await client.put(node, mid, prefix)  # type: ignore[arg-type]
                except Exception as problem:  # a timeout under load: counted, not fatal
                    codes[type(problem).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                codes[str(response.code).split()[0]] += 1

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(loop(*slot) for slot in command["slots"]))
        elapsed = time.perf_counter() - started
        return {"latencies": latencies, "codes": codes, "elapsed": elapsed, "cpu": time.process_time() - cpu}

    await serve_commands(handle)
    for client, _ in opened:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pki", type=Path, required=True)
    asyncio.run(generate(parser.parse_args().pki))
