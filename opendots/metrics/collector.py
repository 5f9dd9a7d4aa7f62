"""What a running signal server exposes to Prometheus: requests, mitigations, sessions, mitigator outcomes, Q-Block."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from opendots.metrics.qblock import qblock_metrics

if TYPE_CHECKING:
    from opendots.signal.server.shell.run import RunningSignalServer


class SignalCollector(Collector):
    def __init__(self, server: RunningSignalServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._mitigations()
        yield from self._sessions()
        yield from self._mitigator()
        yield from self._full_collections()
        if self.server.endpoint.qblock is not None:  # Q-Block runs over DTLS only
            yield from qblock_metrics(self.server.endpoint.qblock)

    def _requests(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "opendots_signal_requests",
            "Signal-channel requests answered, by CoAP method, resource and response code.",
            labels=["method", "resource", "code"],
        )
        for (method, resource, code), count in sorted(self.server.resource.requests.items()):
            requests.add_metric([method, resource, code], count)
        yield requests

    def _mitigations(self) -> Iterator[Metric]:
        held = GaugeMetricFamily(
            "opendots_mitigations",
            "Mitigation requests held, by client and RFC 9132 status.",
            labels=["client", "status"],
        )
        packets = GaugeMetricFamily(
            "opendots_mitigation_dropped_packets",
            "Packets the mitigators report dropped for the client's current mitigations (pkts-dropped).",
            labels=["client"],
        )
        bytes_ = GaugeMetricFamily(
            "opendots_mitigation_dropped_bytes",
            "Bytes the mitigators report dropped for the client's current mitigations (bytes-dropped).",
            labels=["client"],
        )
        by_status: collections.Counter[tuple[str, str]] = collections.Counter()
        dropped: dict[str, list[int]] = {}
        for mitigation in self.server.service.core.mitigations():
            client = mitigation.record.client
            by_status[(client, mitigation.status.label)] += 1
            totals = dropped.setdefault(client, [0, 0])
            totals[0] += mitigation.counters.pkts_dropped or 0
            totals[1] += mitigation.counters.bytes_dropped or 0
        for (client, status), count in sorted(by_status.items()):
            held.add_metric([client, status], count)
        for client, (packet_count, byte_count) in sorted(dropped.items()):
            packets.add_metric([client], packet_count)
            bytes_.add_metric([client], byte_count)
        yield held
        yield packets
        yield bytes_
        observers = GaugeMetricFamily(
            "opendots_signal_observations", "Observe registrations (mitigate and config), by client.", labels=["client"]
        )
        per_client = collections.Counter(observation.client for observation in self.server.resource.observations())
        for client, count in sorted(per_client.items()):
            observers.add_metric([client], count)
        yield observers

    def _sessions(self) -> Iterator[Metric]:
        endpoint = self.server.endpoint
        sessions = GaugeMetricFamily(
            "opendots_signal_sessions", "Signal-channel sessions by transport and state.", labels=["transport", "state"]
        )
        stats = endpoint.stats()
        if stats is not None:
            sessions.add_metric(["dtls", "established"], stats.established)
            sessions.add_metric(["dtls", "handshaking"], stats.handshaking)
        sessions.add_metric(["tls", "established"], endpoint.tls_connection_count())
        yield sessions
        tls_refused = CounterMetricFamily(
            "opendots_tls_refused_full", "TLS connections closed at once because max_sessions were open."
        )
        tls_refused.add_metric([], endpoint.tls_refused_full())
        yield tls_refused
        if stats is not None:
            events = CounterMetricFamily(
                "opendots_dtls_events",
                "DTLS session table events since start (accepted, resumed, cookie rounds, refusals, drops, expiry).",
                labels=["event"],
            )
            for event, count in (
                ("accepted", stats.accepted_total),
                ("resumed", stats.resumed_total),
                ("hello_verify_sent", stats.hello_verify_sent),
                ("refused_full", stats.refused_full),
                ("dropped_datagram", stats.dropped_datagrams),
                ("expired", stats.expired_total),
                ("refused_per_address", stats.refused_per_address),
                ("handshake_evicted", stats.handshakes_evicted),
            ):
                events.add_metric([event], count)
            yield events
        lost = CounterMetricFamily(
            "opendots_signal_sessions_lost", "Clients declared lost after missing heartbeats (RFC 9132 §4.7)."
        )
        lost.add_metric([], self.server.service.session_losses)
        yield lost

    def _mitigator(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            "opendots_mitigator_calls",
            "Mitigator actions carried out for the signal channel, by action and result.",
            labels=["action", "result"],
        )
        for (action, result), count in sorted(self.server.service.outcomes.items()):
            outcomes.add_metric([action, result], count)
        yield outcomes
        if self.server.acls is not None:
            refused = GaugeMetricFamily(
                "opendots_acls_not_enforced", "Data-channel ACLs that should be enforced but are not (see the log)."
            )
            refused.add_metric([], len(self.server.acls.refused))
            yield refused

    def _full_collections(self) -> Iterator[Metric]:
        collections = self.server.full_collections
        if collections is None:  # CPython's own policy: prometheus_client's python_gc_* metrics describe it
            return
        count = CounterMetricFamily(
            "opendots_full_gc_collections",
            "Oldest-generation garbage collections run by the server's timer (each then freezes what survived).",
        )
        count.add_metric([], collections.count)
        seconds = CounterMetricFamily(
            "opendots_full_gc_seconds", "Time the server's timed garbage collections took (the event loop stalls)."
        )
        seconds.add_metric([], collections.total_seconds)
        last = GaugeMetricFamily("opendots_full_gc_last_seconds", "Duration of the last timed garbage collection.")
        last.add_metric([], collections.last_seconds)
        whole = CounterMetricFamily(
            "opendots_full_gc_whole_walks",
            "Timed collections that also walked the frozen objects (hourly).",
        )
        whole.add_metric([], collections.whole_walks)
        frozen = GaugeMetricFamily(
            "opendots_gc_frozen_objects",
            "Objects frozen out of the collector's walks, at most (those freed since count until the next whole walk).",
        )
        frozen.add_metric([], collections.frozen)  # gc.get_freeze_count() would walk them all: a pause per scrape
        yield from (count, seconds, last, whole, frozen)
