"""Network-namespace lab used by `opendots demo --lab`, the end-to-end tests and the benchmarks.

    with Lab() as lab:                                   # attacker → router → victim, random names, always removed
        tally = VictimTally(lab.victim, [5005])          # exact per-port packet counts at the victim
        flood(lab.attacker, str(lab.victim_v4[0]), 5005, count=10_000, duration=2.0, pps=20_000)
        lab.router.run(["nft", "list", "ruleset"])       # any command inside a namespace

Needs root, iproute2, util-linux (nsenter) and nftables; `lab_unavailable_reason()` says why not, if not.
"""

from opendots.lab.flood import Flood, FloodResult, Receiver, Reception, VictimTally, flood
from opendots.lab.netns import Lab, LabError, LabUnavailable, Namespace, lab_unavailable_reason

__all__ = [
    "Flood",
    "FloodResult",
    "Lab",
    "LabError",
    "LabUnavailable",
    "Namespace",
    "Receiver",
    "Reception",
    "VictimTally",
    "flood",
    "lab_unavailable_reason",
]
