"""`opendots demo --lab --call-home`: RFC 9066 Call Home in throw-away network namespaces.

iot (a compromised host and a legitimate one) → cpe (NAT, `opendots callhome server`, nftables on its LAN side) →
isp (`opendots callhome client run`, a per-source packet counter as the detector) → victim. The ISP sees the flood
as the CPE's public address and a NAT'd port, asks the CPE to stop that; the CPE finds the internal host in its
conntrack table (RFC 9066 §5.3.2) and drops it; the legitimate host's traffic keeps flowing. Needs root, iproute2,
util-linux (nsenter), nftables and conntrack.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from opendots.cli.demo_lab import WINDOW

ATTACK_PPS = 3_000
LEGIT_PPS = 200
SIGNAL_MODULE = "ietf-dots-signal-channel:mitigation-scope"


def _say(message: str) -> None:
    print(message, flush=True)


def _rates(lab) -> dict[str, float]:
    """Packets per second the victim received over WINDOW, from the attacker and from the legitimate host."""
    first, start = lab.received(), time.monotonic()
    time.sleep(WINDOW)
    last, elapsed = lab.received(), time.monotonic() - start
    return {name: (last[name] - first[name]) / elapsed for name in first}


def run_call_home_demo(transport: str = "dtls") -> int:
    """Run the demo; 0 on success, 2 when this machine cannot build the lab, 1 when a step failed."""
    from opendots.lab import lab_unavailable_reason

    reason = lab_unavailable_reason() or (None if shutil.which("conntrack") else "`conntrack` is not installed")
    if reason is not None:
        _say(f"opendots demo --lab --call-home cannot run here: {reason}.")
        _say("It needs root plus iproute2, util-linux (nsenter), nftables and conntrack (Debian packages).")
        return 2
    from opendots.lab.callhome_lab import ATTACK_PORT, COMPROMISED, LEGIT_PORT, LEGITIMATE, CallHomeLab
    from opendots.lab.netns import LabError
    from opendots.lab.processes import StackError, wait_for

    started = time.monotonic()
    try:
        with CallHomeLab() as lab, tempfile.TemporaryDirectory(prefix="opendots-callhome-") as scratch:
            _say(f"lab: {lab.iot.name} -> {lab.cpe.name} (NAT) -> {lab.isp.name} -> {lab.victim.name}")
            lab.start(Path(scratch), transport)
            _say(f"CPE dialed the provider over {transport.upper()} on 4647: Call Home session up")
            seconds = 30
            attack = lab.flood(COMPROMISED, ATTACK_PORT, count=ATTACK_PPS * seconds, duration=seconds, pps=ATTACK_PPS)
            legit = lab.flood(LEGITIMATE, LEGIT_PORT, count=LEGIT_PPS * seconds, duration=seconds, pps=LEGIT_PPS)
            try:
                found = wait_for(lambda: (t := lab.top_talker()) and t[2] >= 1000 and t, 15, "the detector")
                address, port, packets = found
                _say(f"ISP detector: {packets} packets toward the victim from {address} port {port} (public, NAT'd)")
                before = _rates(lab)
                sent_at = time.monotonic()
                answer = lab.mitigate(address, port)
                mid = answer[SIGNAL_MODULE]["scope"][0]["mid"]
                _say(f"callhome client mitigate --source-prefix {address}/32 --source-port {port} -> mid {mid}")
                wait_for(lambda: lab.dropped_on_cpe() > 0, 10, "the CPE to drop", interval=0.01)
                reaction = time.monotonic() - sent_at
                after = _rates(lab)
                mapped = [line for line in lab.log("cpe.log").splitlines() if "NAT lookup" in line]
                _say(f"CPE: {mapped[-1].split(': ', 1)[-1] if mapped else '(no NAT lookup logged)'}")
                _say("")
                for name, label in (("attack", "compromised host:"), ("legitimate", "legitimate host:")):
                    _say(f"  victim from the {label:<17} {before[name]:7.0f} -> {after[name]:7.0f} pkt/s")
                _say(f"  request -> first dropped packet on the CPE (polling nft): {reaction * 1000:.0f} ms")

                def reported() -> dict | None:
                    (entry,) = lab.status()
                    scope = entry["body"][SIGNAL_MODULE]["scope"][0]
                    return scope if int(scope.get("pkts-dropped", 0)) > 0 else None

                scope = wait_for(reported, 15, "the CPE's counters in the provider's status", interval=0.5)
                _say(f"  provider's status (GET /mitigate): pkts-dropped {scope['pkts-dropped']}, {scope['status']}")
                _say("\nthe CPE operator's view (opendots admin mitigations -c cpe.toml):")
                _say(lab.cpe_admin("mitigations").rstrip())
            finally:
                attack.stop()
                legit.stop()
    except (StackError, LabError, OSError, RuntimeError) as problem:
        _say(f"demo failed: {problem}")
        return 1
    _say(f"cleaned up (namespaces, nft tables, processes); {time.monotonic() - started:.1f} s")
    return 0 if after["attack"] < before["attack"] / 10 and after["legitimate"] > before["legitimate"] / 2 else 1
