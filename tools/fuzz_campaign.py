"""Fuzzing campaign over the server's entry points, in-process and without sockets (tests/fuzz/targets.py).

    nice .venv/bin/python tools/fuzz_campaign.py [--inputs 100000] [--seed 1] [--targets coap,signal-core,cbor,restconf]

Entry points: `coap` (a DTLS datagram's plaintext: aiocoap's Message.decode, then the DOTS site as the transport
hands it requests, with a peer authenticated by a real in-memory DTLS handshake), `signal-core` (a request as the
CoAP shell hands it to the sans-I/O core, the body as CBOR bytes), `cbor` (the CBOR → YANG-JSON decoder) and
`restconf` (a RESTCONF request as the aiohttp shell hands it to the data channel's core). Inputs mix mutated
RFC figures, near-valid bodies and random CBOR/JSON trees, from a seeded random generator: a run is repeatable.
The server state lives on a real SQLite file and is rebuilt every --reset inputs.

Prints, per entry point: inputs tried, crashes (an exception escaped), 5.xx answers, other broken invariants
(a refused request changed the stored state, a malformed code or body), the outcome counts, and the slowest input
with its CPU time (saved, with every crashing input, under --out; CPU rather than wall time, which on a shared
machine also counts the moments the process was not running). Exits 1 if any entry point crashed or broke an
invariant, 0 otherwise. Goal: 0 crashes, 0 5.xx, no input slower than 50 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run as a script: the repository root importable

import argparse
import collections
import logging
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from opendots.model.codec import validate_every_encoding
from tests.fuzz import inputs
from tests.fuzz.targets import CborTarget, CoapTarget, Finding, RestconfTarget, SignalCoreTarget, Stack

SLOW_MS = 50.0


class Campaign:
    def __init__(self, name: str, out: Path) -> None:
        self.name = name
        self.out = out
        self.tried = 0
        self.crashes = 0
        self.server_errors = 0
        self.broken = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.slowest = (0.0, None)
        """By CPU time (process_time): on a shared machine a run descheduled mid-input is no slow input."""
        self.slowest_wall = 0.0
        self.slow = 0
        self.elapsed = 0.0

    def record(
        self, item: Any, seconds: float, wall: float, outcome: str | None, problem: BaseException | None
    ) -> None:
        self.tried += 1
        self.elapsed += wall
        self.slowest_wall = max(self.slowest_wall, wall)
        if seconds > self.slowest[0]:
            self.slowest = (seconds, item)
        if seconds * 1000 > SLOW_MS:
            self.slow += 1
            self._save("slow", item, f"{seconds * 1000:.1f} ms of CPU ({wall * 1000:.1f} ms wall)")
        if problem is None:
            self.outcomes[outcome or "?"] += 1
            return
        if isinstance(problem, Finding):
            text = str(problem)
            if text.startswith("answered 5"):
                self.server_errors += 1
                self.outcomes["5.xx"] += 1
            else:
                self.broken += 1
                self.outcomes["invariant broken"] += 1
        else:
            self.crashes += 1
            self.outcomes[f"crash {type(problem).__name__}"] += 1
            text = "".join(traceback.format_exception(problem))
        self._save("finding", item, text)

    def _save(self, kind: str, item: Any, note: str) -> None:
        path = self.out / f"{self.name}-{kind}-{self.tried}.txt"
        path.write_text(f"{note}\n\n{item!r}\n")

    def report(self) -> None:
        seconds, item = self.slowest
        each = self.elapsed / max(self.tried, 1) * 1e6
        print(f"== {self.name}: {self.tried} inputs in {self.elapsed:.1f} s ({each:.0f} us each): {self.crashes} "
              f"crashes, {self.server_errors} 5.xx, {self.broken} other broken invariants, {self.slow} inputs over "
              f"{SLOW_MS:.0f} ms")  # fmt: skip
        print(f"   slowest input {seconds * 1000:.2f} ms of CPU: {repr(item)[:300]}")
        print(f"   slowest wall time of any input {self.slowest_wall * 1000:.2f} ms (includes time descheduled)")
        print(f"   outcomes: {', '.join(f'{k} x{v}' for k, v in self.outcomes.most_common())}")


def make_target(name: str, stack: Stack, rng: random.Random) -> tuple[Any, Callable[[], Any]]:
    """The entry point NAME on STACK, and a generator of its inputs drawing from RNG."""
    cbor_seeds = inputs.cbor_seeds()
    cuids = [*stack.cuids, "nobody-knows-this-cuid"]
    if name == "coap":
        coap_seeds = inputs.coap_seeds(stack.cuids, cbor_seeds + [inputs.signal_body(rng) for _ in range(20)])

        def coap() -> bytes:
            roll = rng.random()
            if roll < 0.15:
                return rng.choice(coap_seeds)
            if roll < 0.3:  # a well-formed request with a fresh body: reaches the core's deeper paths
                seed = rng.choice(coap_seeds[:2])
                return seed[: seed.index(0xFF) + 1] + inputs.signal_body(rng)
            return inputs.mutate(rng, rng.choice(coap_seeds), coap_seeds)

        return CoapTarget(stack), coap
    if name == "signal-core":
        return SignalCoreTarget(stack), lambda: inputs.signal_input(rng, cbor_seeds, cuids)
    if name == "restconf":
        json_seeds = inputs.json_seeds()
        return RestconfTarget(stack), lambda: inputs.restconf_input(rng, json_seeds, cuids)
    if name == "cbor":
        return CborTarget(
            stack
        ), lambda: inputs.signal_body(rng) if rng.random() < 0.2 else inputs.cbor_input(rng, cbor_seeds)
    raise SystemExit(f"unknown entry point {name!r}")


def run(name: str, count: int, rng: random.Random, workdir: Path, reset: int, out: Path) -> Campaign:
    campaign = Campaign(name, out)
    stack: Stack | None = None
    for index in range(count):
        if index % reset == 0:  # a fresh server now and then: the store and the observers stay small
            if stack is not None:
                stack.close()
            stack = Stack(workdir)
            target, generate = make_target(name, stack, rng)
        item = generate()
        outcome = problem = None
        started, cpu = time.perf_counter(), time.process_time()
        try:
            outcome = target.run(item)
        except Exception as error:  # every escape is a finding, recorded with its input
            problem = error
        campaign.record(item, time.process_time() - cpu, time.perf_counter() - started, outcome, problem)
    if stack is not None:
        stack.close()
    return campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per entry point")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default="coap,signal-core,cbor,restconf")
    parser.add_argument("--reset", type=int, default=5_000, help="rebuild the server state every N inputs")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="where findings and slow inputs go")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # refused inputs log warnings by the thousand; findings are caught here
    validate_every_encoding()  # as in the test suites: a server-built body that fails validation is a finding
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="opendots-fuzz-"))
    failed = False
    print(f"seed {args.seed}, {args.inputs} inputs per entry point; findings in {args.out}/", flush=True)
    try:
        for name in args.targets.split(","):
            campaign = run(name, args.inputs, random.Random(f"{args.seed}-{name}"), workdir, args.reset, args.out)
            campaign.report()
            sys.stdout.flush()
            failed |= bool(campaign.crashes or campaign.server_errors or campaign.broken)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
