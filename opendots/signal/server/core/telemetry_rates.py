"""Rates, percentiles and peaks from a mitigator's cumulative counters (RFC 9244 §7.1.2, §8.3, §9.2), sans-I/O.

A mitigator reports ever-growing dropped packet and byte counts; each reading is (now, packets, bytes). A sample is
the rate between two readings at least 'measurement-sample' apart (the readings come every `[signal]
counters_interval`, so a sample spans the longer of the two); the samples of the last 'measurement-interval' are
kept (at most MAX_SAMPLES) and summarised as the low/mid/high percentiles, peak and current value of the
'ietf-dots-telemetry' 'traffic' grouping, one entry per enabled unit class. Nothing is invented: no reading, no
sample; a counter going backwards (a mitigator restarted) starts a new baseline instead of a negative rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opendots.domain.counters import Breakdown
from opendots.signal.server.core.telemetry_config import INTERVALS, SAMPLES

MAX_SAMPLES = 1024
"""Samples kept per series whatever the configuration (a day of seconds would be 86,400): memory (~140 KB per
series at most, measured with tracemalloc) and the sort of a summary stay bounded; the oldest go first. The default
configuration (an hour of minutes) keeps 60 (~8 KB). Series exist only for clients that asked for them."""
PERCENTILE_NAMES = ("low-percentile", "mid-percentile", "high-percentile")


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    """When the sample ended (the later reading)."""
    pps: float
    byte_ps: float


@dataclass(frozen=True)
class Reading:
    at: float
    packets: int
    bytes: int


@dataclass
class TrafficSeries:
    """The dropped-traffic rates of one mitigation (or of the sum of several, §8.3), fed with cumulative counters."""

    max_samples: int = MAX_SAMPLES
    samples: deque[Sample] = field(default_factory=deque)
    _start: Reading | None = None
    """The reading the sample being measured starts from."""
    _basis: frozenset[str] = frozenset()
    """What the counters are the sum of (mitigator keys): when it changes, the sum jumps; the baseline restarts."""

    def feed(
        self, now: float, packets: int, bytes_: int, sample_seconds: float, basis: frozenset[str] = frozenset()
    ) -> bool:
        """Take one reading; True when it closed a sample."""
        reading = Reading(now, packets, bytes_)
        start = self._start
        if start is None or basis != self._basis or packets < start.packets or bytes_ < start.bytes:
            self._start, self._basis = reading, basis
            return False
        elapsed = now - start.at
        if elapsed < sample_seconds or elapsed <= 0:
            return False
        self.samples.append(Sample(now, (packets - start.packets) / elapsed, (bytes_ - start.bytes) / elapsed))
        while len(self.samples) > self.max_samples:
            self.samples.popleft()
        self._start = reading
        return True

    def recent(self, now: float, interval_seconds: float) -> list[Sample]:
        """The samples of the last INTERVAL_SECONDS (older ones are dropped for good)."""
        while self.samples and self.samples[0].at <= now - interval_seconds:
            self.samples.popleft()
        return list(self.samples)


@dataclass
class AttackAndTotal:
    """The two series of one mitigation (or sum, §8.3): the dropped traffic ('total-attack-traffic') and all the
    traffic toward the targets, dropped + passed ('total-traffic'; fed only while the passed counts are measured)."""

    attack: TrafficSeries = field(default_factory=TrafficSeries)
    total: TrafficSeries = field(default_factory=TrafficSeries)
    protocols: dict[int, TrafficSeries] = field(default_factory=dict)
    """All the traffic toward the targets per protocol ('total-traffic-protocol', §8.3), while it is counted."""
    ports: dict[int, TrafficSeries] = field(default_factory=dict)
    """The same per destination port ('total-traffic-port')."""

    def feed(
        self,
        now: float,
        dropped: tuple[int, int],
        passed: tuple[int, int] | None,
        sample_seconds: float,
        basis: frozenset[str] = frozenset(),
    ) -> None:
        """DROPPED and PASSED: cumulative (packets, bytes)."""
        self.attack.feed(now, dropped[0], dropped[1], sample_seconds, basis)
        if passed is not None:
            self.total.feed(now, dropped[0] + passed[0], dropped[1] + passed[1], sample_seconds, basis)
        else:  # no longer measured (a mitigator that does not count it joined a sum): no stale total either
            self.total = TrafficSeries(self.total.max_samples)

    def feed_breakdown(
        self,
        now: float,
        by_protocol: Breakdown | None,
        by_port: Breakdown | None,
        sample_seconds: float,
        basis: frozenset[str] = frozenset(),
    ) -> None:
        """Cumulative (number, packets, bytes) per protocol and per port; None: not counted (any more)."""
        for held, counted in ((self.protocols, by_protocol), (self.ports, by_port)):
            numbers = {number for number, _, _ in counted or ()}
            for number in [n for n in held if n not in numbers]:
                del held[number]  # no longer counted: no stale figure either
            for number, packets, bytes_ in counted or ():
                held.setdefault(number, TrafficSeries(self.total.max_samples)).feed(
                    now, packets, bytes_, sample_seconds, basis
                )

    def render(
        self, now: float, config: Mapping[str, Any], *, breakdown: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        """{'total-traffic': ..., 'total-attack-traffic': ...}, each only when it has samples; BREAKDOWN (§8.3
        pre-or-ongoing-mitigation only: a mitigation status has no such lists): 'total-traffic-protocol' and
        'total-traffic-port' too."""
        interval, _ = seconds(config)
        rendered = {}
        for name, series in (("total-traffic", self.total), ("total-attack-traffic", self.attack)):
            entries = traffic(series.recent(now, interval), config)
            if entries:
                rendered[name] = entries
        if breakdown:
            for name, member, held in (
                ("total-traffic-protocol", "protocol", self.protocols),
                ("total-traffic-port", "port", self.ports),
            ):
                entries = [
                    {"unit": entry["unit"], member: number, **{k: v for k, v in entry.items() if k != "unit"}}
                    for number in sorted(held)
                    for entry in traffic(held[number].recent(now, interval), config)
                ]
                if entries:
                    rendered[name] = entries
        return rendered


def percentile(sorted_values: list[float], percent: Decimal) -> float:
    """The nearest-rank percentile (RFC 2330 §11.3): the smallest sample such that PERCENT of the samples are no
    greater."""
    rank = max(1, math.ceil(len(sorted_values) * percent / 100))
    return sorted_values[rank - 1]


def enabled_percentiles(config: Mapping[str, Any]) -> dict[str, Decimal]:
    """§7.1.2: a low of "0.00" is disabled, a mid equal to the low (a high equal to the mid) too."""
    low, mid, high = (Decimal(str(config[name])) for name in PERCENTILE_NAMES)
    enabled = {}
    if low != 0:
        enabled["low-percentile"] = low
    if mid != low:
        enabled["mid-percentile"] = mid
    if high != mid:
        enabled["high-percentile"] = high
    return enabled


UNIT_RATES = {
    "packet-ps": lambda sample: sample.pps,
    "bit-ps": lambda sample: sample.byte_ps * 8,
    "byte-ps": lambda sample: sample.byte_ps,
}


def traffic(samples: list[Sample], config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The 'traffic' list (ietf-dots-telemetry grouping 'traffic-unit-all') for SAMPLES under the client's
    CONFIG: one entry per enabled unit class, gauges as whole numbers (yang:gauge64 is a string in JSON/CBOR)."""
    if not samples:
        return []
    percents = enabled_percentiles(config)
    entries = []
    for item in config["unit-config"]:
        if not item["unit-status"] or item["unit"] not in UNIT_RATES:
            continue
        rate = UNIT_RATES[item["unit"]]
        values = sorted(rate(sample) for sample in samples)
        entry: dict[str, Any] = {"unit": item["unit"]}
        for name, percent in percents.items():
            entry[f"{name}-g"] = _gauge(percentile(values, percent))
        entry["peak-g"] = _gauge(values[-1])
        entry["current-g"] = _gauge(rate(samples[-1]))
        entries.append(entry)
    return entries


def seconds(config: Mapping[str, Any]) -> tuple[int, int]:
    """(measurement-interval, measurement-sample) of CONFIG in seconds."""
    return INTERVALS[config["measurement-interval"]], SAMPLES[config["measurement-sample"]]


def _gauge(value: float) -> str:
    return str(round(value))
