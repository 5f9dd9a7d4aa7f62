"""Call Home request → first dropped packet on the CPE, beside the base channel's figure, measured in one run.

    .venv/bin/python bench/callhome.py [--runs 20] [--pps 5000] [--transport dtls|tls]

Two namespace labs (needs root and conntrack), interleaved run by run so they share the machine's load:

  call home    CallHomeLab (opendots/lab/callhome_lab.py): a flood from the compromised host behind the CPE's NAT to
               a fresh victim port; the provider's control socket asks the CPE (`mitigate`) to stop the public
               address + the flood's source port toward that port; the CPE looks the flow up in conntrack (RFC 9066
               §5.3.2) and drops the internal host at its LAN-side ingress.
  base channel the `agent API` row of bench/mitigate_signal.py: ControlClient.mitigate() through a client agent to
               an `opendots server` whose nftables actuator drops on the router.

The first drop is seen at the victim as in bench/mitigate_signal.py: last datagram + one period after the request.
That period is the one asked for (--pps): the table also gives, per path, the rate each flood's sender achieved and
its CPU per packet and share of a core (the load generator's own cost; a sender near 100 % falls behind its rate and
the period, so the figure, grows), and the load average at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import generator_note
from bench.mitigate_signal import WARM_UP, one_run, percentile
from opendots.lab.callhome_lab import COMPROMISED, PUBLIC, VICTIM, CallHomeLab
from opendots.lab.flood import FloodResult, Receiver
from opendots.lab.netns import Lab, lab_unavailable_reason
from opendots.lab.processes import ProcessStack
from opendots.signal.client.shell.control import ControlClient


def call_home_run(
    lab: CallHomeLab, control: ControlClient, port: int, pps: int, budget: float, floods: list[FloodResult]
) -> float | None:
    """Flood victim PORT from the compromised host (source port PORT), ask the CPE to stop it after the warm-up;
    seconds from the request to the first drop, None when not measurable. What the flood's sender achieved goes
    to FLOODS."""
    receiver = Receiver(lab.victim, VICTIM, port, duration=WARM_UP + budget + 3.0, gap=0.002, idle=0.4)
    time.sleep(0.05)
    flood = lab.flood(COMPROMISED, port, count=int(pps * (WARM_UP + budget)), duration=WARM_UP + budget, pps=pps,
                      sport=port)  # fmt: skip
    try:
        time.sleep(WARM_UP)
        sent_at = time.monotonic()
        scope = {"source-prefix": [f"{PUBLIC}/32"], "source-port": [str(port)], "target-prefix": [f"{VICTIM}/32"],
                 "target-port": [str(port)], "protocol": [17], "lifetime": 600}  # fmt: skip
        answer = control.call("mitigate", peer="home", scope=scope)
        assert answer.get("code") == "2.01", answer
        floods.append(flood.wait())
    finally:
        flood.stop()
    reception = receiver.wait()
    if reception.last is None or reception.first is None or reception.last < sent_at - 1.0 / pps:
        return None
    if reception.last > reception.first + WARM_UP + budget - 0.01:
        return None
    return reception.last - sent_at + 1.0 / pps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pps", type=int, default=5_000)
    parser.add_argument("--transport", choices=["dtls", "tls"], default="dtls")
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    results: dict[str, list[float]] = {f"call home ({args.transport}, NAT lookup)": [], "base channel agent API": []}
    missed = dict.fromkeys(results, 0)
    floods: dict[str, list[FloodResult]] = {method: [] for method in results}
    with (
        CallHomeLab() as home,
        Lab() as base,
        tempfile.TemporaryDirectory(prefix="opendots-bench-ch-") as scratch,
    ):
        home.start(Path(scratch) / "home", args.transport)
        mitigator = {"type": "nftables", "interface": base.router_ingress, "table": "odbch", "netns": base.router.name}
        with ProcessStack(Path(scratch) / "base", [mitigator]) as stack:
            stack.start_server()
            stack.start_agent()
            agent = stack.control(timeout=10)
            agent.connect()
            provider = ControlClient(home.provider_toml.parent / "opendots-provider.sock", timeout=10)
            provider.connect()
            victim = str(base.victim_v4[0])
            for number, port in enumerate(range(20_000, 20_000 + args.runs)):
                for method in results:
                    if method.startswith("call home"):
                        latency = call_home_run(home, provider, port, args.pps, 2.0, floods[method])
                    else:
                        scope = {"target-prefix": [f"{victim}/32"], "target-port-range": [{"lower-port": port}],
                                 "target-protocol": [17], "lifetime": 600}  # fmt: skip

                        def request(scope=scope) -> None:
                            assert agent.mitigate(scope)["code"] == "2.01"

                        latency = one_run(base, victim, port, args.pps, request, 1.0, floods[method])
                    if latency is None:
                        missed[method] += 1
                    else:
                        results[method].append(latency)
                print(f"  round {number + 1}/{args.runs} done", file=sys.stderr, flush=True)
            provider.close()
            agent.close()
    print(f"\nrequest → first dropped packet ({args.runs} runs each, {args.pps} pps flood, interleaved)")
    header = f"{'path':<34} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for method, values in results.items():
        note = f"  ({missed[method]} runs not measurable)" if missed[method] else ""
        if not values:
            print(f"{method:<34} {0:>4}{note}")
            continue
        figures = [percentile(values, f) * 1000 for f in (0.5, 0.9, 0.99)] + [max(values) * 1000]
        print(f"{method:<34} {len(values):>4} " + " ".join(f"{figure:>8.1f}" for figure in figures) + note)
    print("\nflood senders (the load generator), all runs of each path:")
    for method, sent in floods.items():
        packets, seconds, cpu = (sum(getattr(f, field) for f in sent) for field in ("sent", "seconds", "cpu"))
        slowest = min((f.pps for f in sent), default=0.0)
        print(f"  {method}: {packets / max(seconds, 1e-9):.0f} pps of {args.pps} asked (slowest run {slowest:.0f}), "
              f"{generator_note(cpu, packets, seconds, unit='packet')}")  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
