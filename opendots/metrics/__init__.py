"""Prometheus metrics of a running DOTS server (`[server] metrics = "host:port"`, GET /metrics).

Everything is read from the server's own state when Prometheus scrapes, in the event loop's thread: the request
path only bumps a few counters, and nothing here can see a half-applied change.
"""

from opendots.metrics.collector import SignalCollector
from opendots.metrics.endpoint import MetricsEndpoint, start_metrics_endpoint

__all__ = ["MetricsEndpoint", "SignalCollector", "start_metrics_endpoint"]
