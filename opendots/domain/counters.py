"""What a mitigator measured (RFC 9132 §4.4.2: bytes-dropped, bps-dropped, pkts-dropped, pps-dropped), what it
let through toward the mitigation's targets (RFC 9244 §9.2 total-traffic is dropped + passed), and all the traffic
toward them per protocol and per destination port (RFC 9244 §8.3 total-traffic-protocol, total-traffic-port)."""

from __future__ import annotations

from dataclasses import dataclass

Breakdown = tuple[tuple[int, int, int], ...]
"""(protocol or port, packets, bytes), cumulative, one entry per protocol or port counted."""

COUNTER_FIELDS = ("bytes_dropped", "pkts_dropped", "bps_dropped", "pps_dropped", "bytes_passed", "pkts_passed")
DROPPED_FIELDS = COUNTER_FIELDS[:4]
"""What the signal channel's mitigation status shows (RFC 9132 §4.4.2)."""


@dataclass(frozen=True)
class Counters:
    """Traffic a mitigator really dropped, and passed toward the mitigation's target prefixes (any protocol and
    port: what still reached the targets behind every drop of the mitigator). None means "not measured", never
    zero by assumption.

    The YANG leaves are yang:zero-based-counter64 (bytes/pkts) and yang:gauge64 (bps/pps); the signal channel
    sends them as strings (RFC 7951 §6.1)."""

    bytes_dropped: int | None = None
    pkts_dropped: int | None = None
    bps_dropped: int | None = None
    pps_dropped: int | None = None
    bytes_passed: int | None = None
    pkts_passed: int | None = None
    by_protocol: Breakdown | None = None
    """All the traffic toward the targets (dropped or not), per protocol counted; None: not counted."""
    by_port: Breakdown | None = None
    """The same per destination port counted (TCP, UDP, DCCP, SCTP, UDP-Lite); None: not counted."""

    def dropped(self) -> Counters:
        """These counters without the passed ones: what a mitigation status shows (a change there is notified)."""
        return Counters(self.bytes_dropped, self.pkts_dropped, self.bps_dropped, self.pps_dropped)

    @classmethod
    def summed(cls, parts: list[Counters]) -> Counters:
        """The sum of PARTS, field by field; a field stays None when no part measured it."""
        totals: dict[str, int | None] = dict.fromkeys(COUNTER_FIELDS)
        for part in parts:
            for name in COUNTER_FIELDS:
                value = getattr(part, name)
                if value is not None:
                    totals[name] = (totals[name] or 0) + value
        return cls(
            **totals,
            by_protocol=_summed_breakdown([part.by_protocol for part in parts]),
            by_port=_summed_breakdown([part.by_port for part in parts]),
        )


def _summed_breakdown(parts: list[Breakdown | None]) -> Breakdown | None:
    """The per-number sums of PARTS; None unless every part counted it (a partial sum is not the total)."""
    if not parts or any(part is None for part in parts):
        return None
    sums: dict[int, tuple[int, int]] = {}
    for part in parts:
        for number, packets, bytes_ in part or ():
            held = sums.get(number, (0, 0))
            sums[number] = (held[0] + packets, held[1] + bytes_)
    return tuple((number, *sums[number]) for number in sorted(sums))
