"""Signal → first dropped packet: how long from a DOTS mitigation request to the router dropping the flood.

    .venv/bin/python bench/mitigate_signal.py [--runs 30] [--pps 10000] [--backend auto|library|process]

In a fresh namespace lab (needs root), with an `opendots server` process (nftables actuator on the router) and an
`opendots client run` agent, each run floods one fresh UDP port of the victim and asks for mitigation of exactly
that port, three ways, interleaved so they share the machine's load:

  actuator alone   NftablesMitigator.apply() in this process (the reference: no DOTS at all)
  agent API        ControlClient.mitigate() through the running agent (the request leaves the client at once)
  CLI process      `opendots client mitigate` spawned as a process (includes Python start-up and the verb's imports)

The first drop is seen at the victim: a receiver there timestamps every datagram on CLOCK_MONOTONIC (shared by all
namespaces); the flood stops arriving when the router starts dropping, so first drop = last datagram + one period.
Targets: p50 < 50 ms through the agent (issue "Real mitigation"); p50 < 10 ms, p99 < 25 ms (issue 20).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opendots.lab.flood import Flood, FloodResult, Receiver
from opendots.lab.netns import Lab, lab_unavailable_reason
from opendots.lab.processes import ProcessStack, opendots_argv
from opendots.mitigate.base import MitigationScope, PortRange
from opendots.mitigate.nftables import NftablesMitigator

WARM_UP = 0.3  # seconds of flood reaching the victim before each request


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def one_run(
    lab: Lab,
    victim: str,
    port: int,
    pps: int,
    request: Callable[[], None],
    budget: float,
    floods: list[FloodResult] | None = None,
) -> float | None:
    """Flood PORT, call REQUEST after the warm-up, return seconds from the request to the first drop. FLOODS: where
    to keep what the flood's sender achieved (packets, seconds, its CPU)."""
    receiver = Receiver(lab.victim, victim, port, duration=WARM_UP + budget + 3.0, gap=0.002, idle=0.4)
    time.sleep(0.05)  # the receiver binds its socket
    flood = Flood(lab.attacker, victim, port, count=int(pps * (WARM_UP + budget)), duration=WARM_UP + budget, pps=pps)
    try:
        time.sleep(WARM_UP)
        sent_at = time.monotonic()
        request()
        sent = flood.wait()
        if floods is not None:
            floods.append(sent)
    finally:
        flood.stop()
    reception = receiver.wait()
    if reception.last is None or reception.first is None or reception.last < sent_at - 1.0 / pps:
        return None  # the flood never reached the victim, or stopped before the request: no measurement
    if reception.last > reception.first + WARM_UP + budget - 0.01:
        return None  # traffic kept arriving until the flood ended: not dropped within the budget
    return reception.last - sent_at + 1.0 / pps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pps", type=int, default=10_000)
    parser.add_argument(
        "--backend", choices=("auto", "library", "process"), default="auto", help="nftables: in-process or nft children"
    )
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    results: dict[str, list[float]] = {"actuator alone (apply)": [], "agent API (ControlClient)": [], "CLI process": []}
    missed = dict.fromkeys(results, 0)
    startup: list[float] = []
    server_table, reference_table = f"odbs{secrets.token_hex(3)}", f"odbr{secrets.token_hex(3)}"
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="opendots-bench-") as scratch:
        victim = str(lab.victim_v4[0])
        mitigator = {
            "type": "nftables",
            "interface": lab.router_ingress,
            "table": server_table,
            "netns": lab.router.name,
            "backend": args.backend,
        }
        reference = NftablesMitigator(
            lab.router_ingress, table=reference_table, netns=lab.router.name, backend=args.backend
        )
        loop = asyncio.new_event_loop()
        with ProcessStack(Path(scratch), [mitigator]) as stack:
            stack.start_server()
            stack.start_agent()
            control = stack.control(timeout=10)
            control.connect()
            ports = iter(range(10_000, 60_000))

            def scope_for(port: int) -> dict:
                return {"target-prefix": [f"{victim}/32"], "target-port-range": [{"lower-port": port}],
                        "target-protocol": [17], "lifetime": 600}  # fmt: skip

            for round_number in range(args.runs):
                for method in results:
                    port = next(ports)
                    running: list[subprocess.Popen[bytes]] = []
                    if method.startswith("actuator"):
                        key = f"bench/{port}"
                        scope = MitigationScope(
                            key,
                            (ipaddress.ip_network(f"{victim}/32"),),
                            target_port_ranges=(PortRange(port, port),),
                            target_protocols=(17,),
                        )

                        def request(scope=scope) -> None:
                            loop.run_until_complete(reference.apply(scope))

                        budget = 1.0
                    elif method.startswith("agent"):

                        def request(port=port) -> None:
                            answer = control.mitigate(scope_for(port))
                            assert answer["code"] == "2.01", answer

                        budget = 1.0
                    else:
                        argv = opendots_argv("client", "mitigate", "--target-prefix", f"{victim}/32",
                                             "--target-port", str(port), "--protocol", "udp", "--lifetime", "600",
                                             "--config", str(stack.client_config_path))  # fmt: skip

                        def request(argv=argv, running=running) -> None:
                            # Spawned, not waited for: the flood's fate is measured, not the CLI's exit.
                            running.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

                        budget = 3.0
                    latency = one_run(lab, victim, port, args.pps, request, budget)
                    for process in running:
                        _, stderr = process.communicate(timeout=30)
                        if process.returncode != 0:
                            print(f"CLI failed: {stderr.decode(errors='replace')}", file=sys.stderr)
                    if latency is None:
                        missed[method] += 1
                    else:
                        results[method].append(latency)
                # What the CLI row spends before its request can leave: interpreter start-up and imports.
                started = time.monotonic()
                subprocess.run(opendots_argv("client", "mitigate", "--help"), capture_output=True, check=True)
                startup.append(time.monotonic() - started)
                print(f"  round {round_number + 1}/{args.runs} done", file=sys.stderr, flush=True)
            control.close()
        loop.run_until_complete(reference.cleanup())
        loop.close()
    print(f"\nrequest → first dropped packet at the router ({args.runs} runs each, {args.pps} pps flood, interleaved)")
    header = f"{'path':<28} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  target"
    print(header)
    print("-" * len(header))
    for method, values in results.items():
        target = "p50 < 50 ms" if method.startswith("agent") else ("reference" if method.startswith("act") else "")
        if not values:
            print(f"{method:<28} {0:>4} {'-':>8} {'-':>8} {'-':>8} {'-':>8}  {target}")
            continue
        figures = [percentile(values, f) * 1000 for f in (0.5, 0.9, 0.99)] + [max(values) * 1000]
        cells = " ".join(f"{figure:>8.1f}" for figure in figures)
        note = f"  ({missed[method]} runs not measurable)" if missed[method] else ""
        print(f"{method:<28} {len(values):>4} {cells}  {target}{note}")
    figures = [percentile(startup, f) * 1000 for f in (0.5, 0.9, 0.99)] + [max(startup) * 1000]
    cells = " ".join(f"{figure:>8.1f}" for figure in figures)
    print(f"{'CLI start-up alone (--help)':<28} {len(startup):>4} {cells}  reference for the CLI row")
    mean = statistics.mean(results["agent API (ControlClient)"] or [0.0]) * 1000
    print(f"\nagent API mean {mean:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
