"""`opendots demo --lab`: a real attack, a real DOTS signal, a real drop, in throw-away network namespaces.

attacker → router → victim namespaces; an `opendots server` process (nftables actuator on the router's
attacker-facing interface) and an `opendots client run` agent; a bounded UDP flood at the victim; a mitigation
request through the agent; the victim's received packet rate before and after, and the counters the server reports.
Everything is removed at the end. Needs root, iproute2, util-linux (nsenter) and nftables.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

FLOOD_PPS = 4_000
WINDOW = 1.0  # seconds per rate measurement
SIGNAL_MODULE = "ietf-dots-signal-channel:mitigation-scope"


def _say(message: str) -> None:
    print(message, flush=True)


def _rate(count: Any, window: float = WINDOW) -> float:
    """Packets per second the victim received over WINDOW (COUNT() reads its exact packet tally)."""
    start_count, start = count(), time.monotonic()
    time.sleep(window)
    return (count() - start_count) / (time.monotonic() - start)


def run_lab_demo() -> int:
    """Run the demo; 0 on success, 2 when this machine cannot build the lab, 1 when a step failed."""
    from opendots.lab import Flood, Lab, VictimTally, lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason is not None:
        _say(f"opendots demo --lab cannot run here: {reason}.")
        _say("It needs root (network namespaces, veth pairs) plus iproute2, util-linux (nsenter) and nftables.")
        return 2
    from opendots.lab.netns import LabError
    from opendots.lab.processes import ProcessStack, StackError, wait_for
    from opendots.mitigate.nftables_ruleset import counter_name

    table = f"oddemo{secrets.token_hex(3)}"
    started = time.monotonic()
    try:
        with Lab() as lab, tempfile.TemporaryDirectory(prefix="opendots-demo-") as scratch:
            victim, port = str(lab.victim_v4[0]), 5000 + secrets.randbelow(1000)
            _say(f"lab: attacker {lab.attacker.name} -> router {lab.router.name} -> victim {lab.victim.name}")
            tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
            mitigator = {"type": "nftables", "interface": lab.router_ingress, "table": table, "netns": lab.router.name}
            with ProcessStack(Path(scratch), [mitigator]) as stack:
                stack.start_server()
                stack.start_agent()
                _say(f"DOTS server on 127.0.0.1:{stack.port} (nftables on {lab.router.name}/{lab.router_ingress})")
                flood = Flood(lab.attacker, victim, port, count=FLOOD_PPS * 4, duration=4.0, pps=FLOOD_PPS)
                try:
                    wait_for(lambda: tally.count(port) > 0, 5, "the flood to reach the victim")
                    before = _rate(lambda: tally.count(port))
                    with stack.control() as control:
                        sent_at = time.monotonic()
                        answer = control.mitigate({"target-prefix": [f"{victim}/32"], "lifetime": 300})
                    mid = answer["mid"]
                    key = f"{stack.cuid}/{mid}"
                    _say(f"mitigate {victim}/32 -> mid {mid}: {answer['code']}")

                    def nft_dropped() -> tuple[int, int]:
                        listing = lab.router.run(["nft", "-j", "list", "counter", "netdev", table, counter_name(key)])
                        counter = next(i["counter"] for i in json.loads(listing.stdout)["nftables"] if "counter" in i)
                        return counter["packets"], counter["bytes"]

                    def first_drop() -> bool:
                        result = lab.router.run(["nft", "list", "table", "netdev", table], check=False)
                        return result.returncode == 0 and nft_dropped()[0] > 0

                    wait_for(first_drop, 5, "the router to drop")
                    reaction = time.monotonic() - sent_at
                    after = _rate(lambda: tally.count(port))
                    sent = flood.wait()
                finally:
                    flood.stop()
                packets, bytes_ = nft_dropped()
                _say("")
                _say(f"  victim received   before mitigation: {before:8.0f} packets/s")
                _say(f"  victim received   after  mitigation: {after:8.0f} packets/s")
                _say(f"  attacker sent {sent.sent} packets; router dropped {packets} ({bytes_} bytes)")
                _say(f"  request -> first dropped packet (as seen by polling nft): {reaction * 1000:.0f} ms")

                def reported() -> dict[str, Any] | None:
                    with stack.control() as control:
                        body = control.status(mid, refresh=True).get("body") or {}
                    entry = (body.get(SIGNAL_MODULE, {}).get("scope") or [{}])[0]
                    return entry if int(entry.get("pkts-dropped", -1)) == packets else None

                # The server polls its actuator's counters periodically (10 s): wait for the next poll.
                entry = wait_for(reported, 15, "the server to report the counters", interval=0.5)
                _say(
                    f"  DOTS server reports (GET /mitigate): pkts-dropped {entry['pkts-dropped']}, "
                    f"bytes-dropped {entry['bytes-dropped']}, status {entry.get('status')}"
                )
                with stack.control() as control:
                    _say(f"withdraw mid {mid}: {control.withdraw(mid)['code']}")
                wait_for(
                    lambda: lab.router.run(["nft", "list", "table", "netdev", table], check=False).returncode != 0,
                    10,
                    "the mitigation to be removed",
                )
    except (StackError, LabError, OSError, RuntimeError) as problem:
        _say(f"demo failed: {problem}")
        return 1
    _say(f"cleaned up (namespaces, nft tables, processes); {time.monotonic() - started:.1f} s")
    return 0 if after < before / 10 else 1
