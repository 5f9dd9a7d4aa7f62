"""The parent of `opendots server --workers N` shows one node: the workers' Prometheus texts merged."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from opendots.cli.node_view import merged_metrics

WORKER = """# HELP opendots_signal_sessions Signal-channel sessions by transport and state.
# TYPE opendots_signal_sessions gauge
opendots_signal_sessions{state="established",transport="dtls"} %d
# HELP opendots_signal_requests Requests.
# TYPE opendots_signal_requests counter
opendots_signal_requests_total{code="2.01",method="PUT",resource="mitigate"} %d
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds %d
# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3"} 1.0
"""


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_node_metrics_sum_each_sample_over_the_workers_and_keep_the_oldest_start_time() -> None:
    merged = _samples(merged_metrics([WORKER % (3, 10, 2000), WORKER % (4, 5, 1000)], workers=2, restarts=1))
    assert merged[("opendots_signal_sessions", (("state", "established"), ("transport", "dtls")))] == 7
    put = (("code", "2.01"), ("method", "PUT"), ("resource", "mitigate"))
    assert merged[("opendots_signal_requests_total", put)] == 15
    assert merged[("process_start_time_seconds", ())] == 1000
    assert merged[("python_info", (("implementation", "CPython"), ("major", "3")))] == 1
    assert merged[("opendots_workers", ())] == 2
    assert merged[("opendots_worker_restarts_total", ())] == 1


def test_a_label_value_with_quotes_survives_the_merge() -> None:
    text = '# TYPE x gauge\nx{client="a\\"b"} 1\n'
    assert _samples(merged_metrics([text, text], workers=2, restarts=0))[("x", (("client", 'a"b'),))] == 2
