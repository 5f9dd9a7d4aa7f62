"""nftables actuator figures, measured in a fresh namespace lab (needs root): prints one table.

    /opt/odvenv/bin/python bench/mitigate.py [--runs 50] [--seconds 2]

1. time to install 10,000 targets in one batch (IPv6 /128s; IPv4 address.UDP.port entries; 10,000 mitigations);
2. forwarding rate through the router with 10,000 targets installed vs none, same run, alternated, median of 3;
3. time from apply() to the first dropped packet (p50/p99 over N runs), seen as the moment a paced flood stops
   reaching a receiver in the victim namespace (CLOCK_MONOTONIC is shared by all namespaces).
Targets (issue "Real mitigation"): install < 1 s; forwarding with 10,000 ≥ 90 % of none; first drop p50 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opendots.lab.flood import Flood, Receiver, VictimTally
from opendots.lab.netns import Lab, lab_unavailable_reason
from opendots.mitigate.base import MitigationScope, PortRange
from opendots.mitigate.nftables import NftablesMitigator

TARGETS = 10_000
SINK_PORT = 7000  # counted and dropped at the victim's prerouting: cheap to receive at full rate
LATENCY_PORT = 7001  # received by a socket that timestamps the traffic
rows: list[tuple[str, str, str]] = []


def row(what: str, figure: str, target: str = "") -> None:
    rows.append((what, figure, target))
    print(f"  {what}: {figure}", file=sys.stderr, flush=True)


def v6_targets(count: int) -> tuple[ipaddress.IPv6Network, ...]:
    base = int(ipaddress.ip_address("2001:db8:ffff::"))
    return tuple(ipaddress.ip_network(ipaddress.IPv6Address(base + i)) for i in range(count))


def v4_port_scope(key: str, count: int) -> MitigationScope:
    """COUNT IPv4 targets as (address, UDP, port) entries: documentation ranges hold too few host addresses."""
    ports_per_address = 40
    addresses = tuple(ipaddress.ip_network(f"192.0.2.{i}/32") for i in range(count // ports_per_address))
    ports = tuple(PortRange(1000 + p, 1000 + p) for p in range(ports_per_address))
    return MitigationScope(key, addresses, target_ports=ports, protocols=(17,))


async def timed(action) -> float:
    start = time.perf_counter()
    await action
    return time.perf_counter() - start


async def bench_install(lab: Lab) -> None:
    mitigator = NftablesMitigator(lab.router_ingress, table=f"odb{secrets.token_hex(3)}", netns=lab.router.name)
    try:
        seconds = await timed(mitigator.apply(MitigationScope("bench/v6", v6_targets(TARGETS))))
        row("install 10,000 IPv6 /128 targets, 1 mitigation (1 batch)", f"{seconds * 1000:.0f} ms", "< 1000 ms")
        await mitigator.cleanup()
        seconds = await timed(mitigator.apply(v4_port_scope("bench/v4", TARGETS)))
        row(
            "install 10,000 IPv4 addr.udp.port targets, 1 mitigation (1 batch)", f"{seconds * 1000:.0f} ms", "< 1000 ms"
        )
        await mitigator.cleanup()
        scopes = [MitigationScope(f"bench/{i}", (target,)) for i, target in enumerate(v6_targets(TARGETS))]
        seconds = await timed(mitigator.restore(scopes))
        row("restore 10,000 mitigations × 1 target each (1 batch)", f"{seconds * 1000:.0f} ms", "")
    finally:
        await mitigator.cleanup()


def forwarded_pps(lab: Lab, destination: str, seconds: float) -> tuple[float, float]:
    """(sent, delivered) packets per second of a flood as fast as the sender goes, for SECONDS."""
    before = lab.victim_rx_packets()
    result = Flood(lab.attacker, destination, SINK_PORT, count=5_000_000, duration=seconds).wait()
    delivered = lab.victim_rx_packets() - before
    return result.pps, delivered / result.seconds


async def bench_forwarding(lab: Lab, seconds: float) -> None:
    VictimTally(lab.victim, [SINK_PORT], table="benchsink")
    mitigator = NftablesMitigator(lab.router_ingress, table=f"odb{secrets.token_hex(3)}", netns=lab.router.name)
    configurations = [
        ("IPv6", str(lab.victim_v6[0]), MitigationScope("bench/v6", v6_targets(TARGETS))),
        ("IPv4", str(lab.victim_v4[0]), v4_port_scope("bench/v4", TARGETS)),
    ]
    try:
        for family, destination, scope in configurations:
            none: list[float] = []
            loaded: list[float] = []
            for _ in range(3):
                none.append(forwarded_pps(lab, destination, seconds)[1])
                await mitigator.apply(scope)
                loaded.append(forwarded_pps(lab, destination, seconds)[1])
                await mitigator.cleanup()
            base, with_targets = statistics.median(none), statistics.median(loaded)
            row(f"{family} forwarding, no mitigator table (median of 3)", f"{base:,.0f} pps", "reference")
            row(
                f"{family} forwarding, 10,000 targets installed (median of 3)",
                f"{with_targets:,.0f} pps = {100 * with_targets / base:.0f} % of none",
                "≥ 90 %",
            )
    finally:
        await mitigator.cleanup()


async def bench_first_drop(lab: Lab, runs: int) -> None:
    mitigator = NftablesMitigator(lab.router_ingress, table=f"odb{secrets.token_hex(3)}", netns=lab.router.name)
    victim = str(lab.victim_v4[1])
    scope = MitigationScope("bench/latency", (ipaddress.ip_network(f"{victim}/32"),))
    pps = 10_000
    period = 0.25  # per run: traffic flows, apply, dropped, withdraw
    total = runs * period + 1.0
    receiver = Receiver(lab.victim, victim, LATENCY_PORT, duration=total + 1.0, gap=0.002)
    await asyncio.sleep(0.3)
    flood = Flood(lab.attacker, victim, LATENCY_PORT, count=int(pps * total), duration=total, pps=pps)
    applied_at: list[float] = []
    apply_call: list[float] = []
    try:
        await asyncio.sleep(0.3)
        for _ in range(runs):
            start = time.monotonic()
            await mitigator.apply(scope)
            apply_call.append(time.monotonic() - start)
            applied_at.append(start)
            await asyncio.sleep(period / 2)
            await mitigator.withdraw(scope.key)
            await asyncio.sleep(period / 2)
    finally:
        await mitigator.cleanup()
        flood.wait()
        reception = receiver.wait()
    latencies = []
    for start in applied_at:
        # The first silence that begins after apply() was called: the last packet delivered before the drop.
        gap = next((gap for gap in reception.gaps if gap[0] >= start - 1.0 / pps), None)
        if gap is not None and gap[0] - start < period / 2:
            latencies.append(max(0.0, gap[0] - start) + 1.0 / pps)
    if not latencies:
        row("apply() → first dropped packet", "not observed", "p50 < 50 ms")
        return
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    row(
        f"apply() → first dropped packet ({len(latencies)}/{runs} runs, {pps} pps flood)",
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms",
        "p50 < 50 ms",
    )
    calls = sorted(apply_call)
    row("apply() call duration (nsenter + nft batch)", f"p50 {statistics.median(calls) * 1000:.1f} ms", "reference")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each forwarding flood")
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    with Lab() as lab:
        await bench_install(lab)
        await bench_forwarding(lab, args.seconds)
        await bench_first_drop(lab, args.runs)
    width = max(len(what) for what, _, _ in rows)
    fig_width = max(len(figure) for _, figure, _ in rows)
    print(f"{'measure':<{width}}  {'figure':<{fig_width}}  target")
    for what, figure, target in rows:
        print(f"{what:<{width}}  {figure:<{fig_width}}  {target}")


if __name__ == "__main__":
    asyncio.run(main())
