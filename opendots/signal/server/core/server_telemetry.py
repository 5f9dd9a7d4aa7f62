"""DOTS server-originated telemetry (RFC 9244 §8.3, §9.2): what the mitigators measure, as telemetry attributes.

When a client asked for server-originated telemetry in its telemetry configuration (§7.1.2, and the server allows
it: `[signal] telemetry_server_originated`), every counter reading of its mitigations (`SignalServer.
report_counters`) feeds that mitigation's two series, and its mitigation status carries 'total-attack-traffic' (§9.2:
the dropped traffic) and 'total-traffic' (dropped + what the mitigator let through toward the mitigation's target
prefixes, when the mitigator counts it: nftables does), per enabled unit class, with the client's percentiles over
its measurement interval.
After each batch of readings (`counters_read`), every pre-or-ongoing-mitigation request of such a client (§8.3: an
entry carrying only a target) gets the summed traffic of that client's mitigations overlapping its target, and its
/tm observers are notified when that changed. Only a client's own mitigations are ever summed for it.

A §8.3 entry also gets 'total-traffic-protocol' and 'total-traffic-port' when every mitigation summed there is
counted per protocol and destination port (an nftables mitigator with `count_breakdown`: the protocols and ports it
counts, opendots.mitigate.nftables_breakdown).

What is not measured is not sent: 'total-traffic' only from mitigators that count the passed traffic (not BGP), the
breakdowns only for what was counted, and no attack details (this server detects no attacks: it knows what it
dropped, not which attack that was, and 'attack-detail' is keyed by a vendor's attack identifier).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opendots.domain import Counters, Targets
from opendots.signal.server.core.mitigations import Mitigation
from opendots.signal.server.core.telemetry_rates import AttackAndTotal, seconds

MAX_NARROWED = 256
"""Sums over a GET's filtered set of mitigations (§8.3) kept up to date at once, all clients; the least recently
asked for go first. A filtered view asked for the first time has no history: it shows traffic from the next reads."""
TELEMETRY_PREFIX = "ietf-dots-telemetry:"

ConfigOf = Callable[[str, str], Mapping[str, Any]]
"""(client name, cuid) → the telemetry configuration in force for it (installed, else the server's defaults)."""


@dataclass(frozen=True)
class TelemetryRequest:
    """One §8.3 request: an entry of a client's pre-or-ongoing-mitigation telemetry carrying only a target."""

    client: str
    cuid: str
    tmid: int
    index: int
    targets: tuple[Targets, ...]


@dataclass
class ServerTelemetry:
    config_of: ConfigOf
    allowed: Callable[[], bool]
    """The server's `telemetry_server_originated`: off, no client gets any."""
    _mitigations: dict[str, AttackAndTotal] = field(default_factory=dict)
    """By mitigator key ("<cuid>/<mid>")."""
    _requests: dict[tuple[str, str, int, int], AttackAndTotal] = field(default_factory=dict)
    _rendered: dict[tuple[str, str, int, int], dict[str, Any]] = field(default_factory=dict)
    _narrowed: OrderedDict[tuple[str, str, frozenset[str]], AttackAndTotal] = field(default_factory=OrderedDict)
    """(client, cuid, mitigator keys) → the series of their sum, for GETs whose Uri-Query narrows a request."""
    _narrowed_rendered: dict[tuple[str, str, frozenset[str]], dict[str, Any]] = field(default_factory=dict)
    _held: dict[Any, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)
    """By mitigator key or request key: when its attributes last changed, and what they were (the client's
    'telemetry-notify-interval', §7.1.2, is the least time between two telemetry notifications)."""

    def _paced(self, key: Any, config: Mapping[str, Any], now: float, fresh: Any) -> Any:
        """FRESH, unless the attributes of KEY changed less than the client's telemetry-notify-interval ago: then
        the ones already sent (the samples keep accumulating meanwhile)."""
        since, sent = self._held.get(key, (now, None))
        interval = config.get("telemetry-notify-interval")
        if sent and fresh != sent and interval is not None and now - since < interval:
            return sent  # (nothing sent yet: the first measurement goes at once)
        if key not in self._held or fresh != sent:
            self._held[key] = (now, fresh)
        return fresh

    def wanted(self, client: str, cuid: str) -> Mapping[str, Any] | None:
        """The configuration of CLIENT (under CUID) when it asked for server-originated telemetry (§9.2), else
        None."""
        if not self.allowed():
            return None
        config = self.config_of(client, cuid)
        return config if config.get("server-originated-telemetry") else None

    def measured(self, mitigation: Mitigation, counters: Counters, now: float) -> dict[str, Any] | None:
        """Feed MITIGATION's reading; its §9.2 attributes (None: not asked for, or nothing measured yet)."""
        if counters.pkts_dropped is None or counters.bytes_dropped is None:
            return None
        record = mitigation.record
        config = self.wanted(record.client, record.cuid)
        if config is None:  # no samples kept for nobody: they cost memory (up to MAX_SAMPLES per mitigation)
            self._mitigations.pop(mitigation.mitigator_key, None)
            self._held.pop(mitigation.mitigator_key, None)
            return None
        _, sample = seconds(config)
        series = self._mitigations.setdefault(mitigation.mitigator_key, AttackAndTotal())
        series.feed(now, (counters.pkts_dropped, counters.bytes_dropped), _passed(counters), sample)
        rendered = series.render(now, config)
        fresh = {TELEMETRY_PREFIX + name: entries for name, entries in rendered.items()} or None
        return self._paced(mitigation.mitigator_key, config, now, fresh)

    def counters_read(
        self,
        now: float,
        mitigations: Iterable[Mitigation],
        requests: Iterable[TelemetryRequest],
        overlapping: Callable[[TelemetryRequest], list[Mitigation]],
        mitigation_by_key: Callable[[str], Mitigation | None] = lambda key: None,
    ) -> set[tuple[str, str]]:
        """After a batch of readings: forget the series of mitigations gone, feed every §8.3 request with the sum of
        its client's overlapping mitigations; the (client, cuid) pairs whose rendering changed."""
        live = {m.mitigator_key for m in mitigations}
        for key in [k for k in self._mitigations if k not in live]:
            del self._mitigations[key]
            self._held.pop(key, None)
        changed: set[tuple[str, str]] = set()
        seen = set()
        for request in requests:
            key = (request.client, request.cuid, request.tmid, request.index)
            seen.add(key)
            config = self.wanted(request.client, request.cuid)
            rendered: dict[str, Any] = {}
            if config is not None:
                rendered = self._request_traffic(key, request, config, overlapping(request), now)
                rendered = self._paced(key, config, now, rendered)
            else:
                self._requests.pop(key, None)
                self._held.pop(key, None)
            if rendered != self._rendered.get(key, {}):
                changed.add((request.client, request.cuid))
            self._rendered[key] = rendered
        for key in [k for k in self._requests if k not in seen]:
            del self._requests[key]
        for key in [k for k in self._rendered if k not in seen]:
            del self._rendered[key]
            self._held.pop(key, None)
        for narrowed in list(self._narrowed):
            client, cuid, keys = narrowed
            config = self.wanted(client, cuid)
            found = [mitigation_by_key(k) for k in keys]
            if config is None or any(m is None or m.record.client != client for m in found):
                del self._narrowed[narrowed]  # a mitigation of it is gone: its sum ends
                self._narrowed_rendered.pop(narrowed, None)
                continue
            rendered = self._sum(self._narrowed[narrowed], config, [m for m in found if m is not None], now)
            if rendered != self._narrowed_rendered.get(narrowed, {}):
                changed.add((client, cuid))
            self._narrowed_rendered[narrowed] = rendered
        return changed

    def _request_traffic(
        self,
        key: tuple[str, str, int, int],
        request: TelemetryRequest,
        config: Mapping[str, Any],
        mitigations: list[Mitigation],
        now: float,
    ) -> dict[str, Any]:
        own = [m for m in mitigations if m.record.client == request.client]
        return self._sum(self._requests.setdefault(key, AttackAndTotal()), config, own, now)

    @staticmethod
    def _sum(
        series: AttackAndTotal, config: Mapping[str, Any], mitigations: list[Mitigation], now: float
    ) -> dict[str, Any]:
        """Feed SERIES with the summed counters of MITIGATIONS (those measured); its 'total-traffic' (only when
        every one of them counts its passed traffic: a partial sum would be a false total) and
        'total-attack-traffic'."""
        measured = [
            m for m in mitigations if m.counters.pkts_dropped is not None and m.counters.bytes_dropped is not None
        ]
        _, sample = seconds(config)
        if measured:
            passed = [_passed(m.counters) for m in measured]
            series.feed(
                now,
                (
                    sum(m.counters.pkts_dropped or 0 for m in measured),
                    sum(m.counters.bytes_dropped or 0 for m in measured),
                ),
                None if None in passed else (sum(p[0] for p in passed if p), sum(p[1] for p in passed if p)),
                sample,
                frozenset(m.mitigator_key for m in measured),
            )
            # Per protocol and port only when every mitigation of the sum counted them (Counters.summed).
            summed = Counters.summed([m.counters for m in measured])
            basis = frozenset(m.mitigator_key for m in measured)
            series.feed_breakdown(now, summed.by_protocol, summed.by_port, sample, basis)
        return series.render(now, config, breakdown=True)

    def request_view(self, request: TelemetryRequest, narrowed: frozenset[str] | None = None) -> dict[str, Any]:
        """The server-originated attributes of one §8.3 request entry, as last computed (empty: none); NARROWED:
        only the sum of these mitigations (a GET's Uri-Query filters), kept from now on if it was not yet."""
        if narrowed is None:
            return self._rendered.get((request.client, request.cuid, request.tmid, request.index), {})
        key = (request.client, request.cuid, narrowed)
        if key in self._narrowed:
            self._narrowed.move_to_end(key)
            return self._narrowed_rendered.get(key, {})
        if self.wanted(request.client, request.cuid) is not None and narrowed:
            self._narrowed[key] = AttackAndTotal()
            while len(self._narrowed) > MAX_NARROWED:
                oldest, _ = self._narrowed.popitem(last=False)
                self._narrowed_rendered.pop(oldest, None)
        return {}


def _passed(counters: Counters) -> tuple[int, int] | None:
    if counters.pkts_passed is None or counters.bytes_passed is None:
        return None
    return counters.pkts_passed, counters.bytes_passed
