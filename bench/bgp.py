"""Time from BgpMitigator.apply() to the route being visible at a real BIRD 2 peer, per speaker and route kind.

Usage (root, Debian bird2 + gobgpd and/or exabgp installed):
    .venv/bin/python bench/bgp.py [--runs 50] [--speakers gobgp,exabgp]

Each speaker runs in its own lab (two network namespaces, BIRD in one), so the figures of every installed speaker
are printed side by side as each other's reference. Also reported: how long apply() itself takes (the API
round trip), withdraw() to route gone, start to sessions established, and the speaker's resident memory.
BIRD is polled through its control socket (~0.02 ms per query), so polling adds little to the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opendots.mitigate.base import MitigationScope, PortRange
from opendots.mitigate.bgp import BgpMitigator, RoutePolicy
from opendots.mitigate.bgp.birdlab import DISCARD_V4, DISCARD_V6, BirdControl, BirdLab, missing_prerequisites
from opendots.mitigate.bgp.speakers import SPEAKERS, make_speaker, speaker_unavailable


@dataclass
class Samples:
    apply_call: list[float] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)
    gone: list[float] = field(default_factory=list)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def rss_kib(pid: int) -> int:
    """Resident memory of PID and its children (ExaBGP's API relay is a child)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


async def wait_for(control: BirdControl, table: str, needle: str, present: bool, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while (needle in control.query(f"show route table {table}")) != present:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{needle} {'not visible' if present else 'still visible'} in {table}")
        await asyncio.sleep(0.0002)
    return time.perf_counter()


def scope_for(kind: str, run: int) -> tuple[MitigationScope, str, str]:
    """A fresh scope per run (so BIRD never sees a repeat), the BIRD table, and the text that shows it arrived."""
    if kind == "rtbh":
        target = ipaddress.ip_network(f"203.0.113.{run % 250 + 1}/32")
        return MitigationScope(f"bench/{run}", (target,)), "master4", f"{target.network_address}/32 "
    port = 1000 + run
    scope = MitigationScope(
        f"bench/{run}",
        (ipaddress.ip_network("203.0.113.7/32"),),
        target_port_ranges=(PortRange(port, port),),
        target_protocols=(17,),
    )
    return scope, "flowtab4", f"dport {port};"


async def bench_speaker(kind: str, runs: int) -> dict[str, object]:
    results: dict[str, object] = {}
    with BirdLab() as lab:
        for mode in ("rtbh", "flowspec"):
            speaker = make_speaker(kind, lab.speaker_config())
            policy = RoutePolicy(mode=mode, discard_next_hop_v4=DISCARD_V4, discard_next_hop_v6=DISCARD_V6)
            mitigator = BgpMitigator(speaker, policy)
            started = time.perf_counter()
            await mitigator.start()
            try:
                while not lab.established():
                    await asyncio.sleep(0.01)
                results.setdefault("established_s", time.perf_counter() - started)  # the first, cold start
                samples = Samples()
                with BirdControl(lab.control_socket) as control:
                    for run in range(runs):
                        scope, table, needle = scope_for(mode, run)
                        begin = time.perf_counter()
                        await mitigator.apply(scope)
                        samples.apply_call.append(time.perf_counter() - begin)
                        samples.visible.append(await wait_for(control, table, needle, True) - begin)
                        begin = time.perf_counter()
                        await mitigator.withdraw(scope.key)
                        samples.gone.append(await wait_for(control, table, needle, False) - begin)
                    results[f"restore_{mode}"] = await time_restore(mitigator, control, mode, RESTORE_SCOPES)
                results[mode] = samples
                pid = getattr(speaker, "pid", None)
                results[f"rss_kib_{mode}"] = rss_kib(pid) if pid else None
            finally:
                await mitigator.stop()
    return results


RESTORE_SCOPES = 200


async def time_restore(mitigator: BgpMitigator, control: BirdControl, mode: str, count: int) -> float:
    """Seconds for restore() of COUNT mitigations until BIRD holds all their routes (the after-restart path)."""
    scopes = [scope_for(mode, run)[0] for run in range(count)]
    table = "master4" if mode == "rtbh" else "flowtab4"
    begin = time.perf_counter()
    await mitigator.restore(scopes)
    while not _holds(control, table, count):
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - begin
    await mitigator.restore([])
    return elapsed


def _holds(control: BirdControl, table: str, count: int) -> bool:
    # "N of M routes for K networks in table T"; the RTBH table also holds BIRD's own discard route.
    own = 1 if table == "master4" else 0
    return int(control.query(f"show route table {table} count").split()[0]) >= count + own


def milliseconds(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1e3:7.2f}  p99 {percentile(values, 0.99) * 1e3:7.2f}"
        f"  max {max(values) * 1e3:7.2f}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--speakers", default=",".join(SPEAKERS))
    arguments = parser.parse_args()
    reason = missing_prerequisites()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    print(f"apply() -> route visible at BIRD 2, {arguments.runs} runs per row, times in ms")
    for kind in arguments.speakers.split(","):
        unavailable = speaker_unavailable(kind)
        if unavailable:
            print(f"{kind}: skipped ({unavailable})")
            continue
        results = await bench_speaker(kind, arguments.runs)
        print(
            f"\n{kind}: sessions established {results['established_s']:.2f} s after start;"
            f" RSS after the runs {results['rss_kib_rtbh']} KiB (rtbh), {results['rss_kib_flowspec']} KiB (flowspec)"
        )
        for mode in ("rtbh", "flowspec"):
            samples = results[mode]
            assert isinstance(samples, Samples)
            print(f"  {mode:8s} apply() returns      {milliseconds(samples.apply_call)}")
            print(f"  {mode:8s} visible at BIRD      {milliseconds(samples.visible)}")
            print(f"  {mode:8s} withdraw -> gone     {milliseconds(samples.gone)}")
            restore = results[f"restore_{mode}"]
            print(f"  {mode:8s} restore() of {RESTORE_SCOPES} mitigations -> all at BIRD: {restore:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
