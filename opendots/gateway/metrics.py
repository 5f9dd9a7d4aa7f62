"""What a running gateway exposes to Prometheus: relay outcomes, the links held, the upstream session, and the
downstream leg's own signal-server metrics (sessions, /config and /hb requests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from opendots.gateway.shell import Gateway


class GatewayCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        core = self.gateway.core
        relayed = CounterMetricFamily(
            "opendots_gateway_requests",
            "Downstream mitigation requests by outcome: relayed, answered-locally, upstream-down, upstream-failed, "
            "hop-limit-reached, hop-limit-relayed, loops-detected (RFC 8768), reestablished, stale-accepted (a PUT "
            "accepted upstream after its mitigation was withdrawn), telemetry-reestablished and "
            "telemetry-not-reestablished (RFC 9244 setups sent again upstream).",
            labels=["outcome"],
        )
        for outcome, count in sorted(core.counters.items()):
            relayed.add_metric([outcome], count)
        yield relayed
        links = GaugeMetricFamily(
            "opendots_gateway_links", "Downstream mitigations held with an upstream counterpart.", labels=["kind"]
        )
        links.add_metric([core.settings.kind], len(core.links))
        yield links
        yield GaugeMetricFamily(
            "opendots_gateway_upstream_up", "1 while the upstream session is up.", int(core.upstream_up)
        )
        yield GaugeMetricFamily(
            "opendots_gateway_observers", "Downstream Observe registrations relayed.", self.gateway.relay.observers
        )
