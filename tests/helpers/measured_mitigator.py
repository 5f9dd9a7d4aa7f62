"""An in-process mitigator whose drop counters the test sets: what the server's counter poll reads, as it reads
nftables's named counters, without a kernel. Everything else is the logging mitigator (nothing enforced)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opendots.domain import Counters
from opendots.mitigate.base import LoggingMitigator


@dataclass
class MeasuredMitigator(LoggingMitigator):
    name: str = "measured"
    dropped: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Mitigator key → cumulative (packets, bytes) dropped, as the test sets them."""

    async def counters(self, key: str) -> Counters:
        if key not in self.active or key not in self.dropped:
            return Counters()
        packets, bytes_ = self.dropped[key]
        return Counters(bytes_dropped=bytes_, pkts_dropped=packets)
