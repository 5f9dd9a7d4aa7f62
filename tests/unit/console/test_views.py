"""The console's rates and charts of dropped traffic: computed between the mitigators' measurements, never between
two snapshots of the same counters; bounded per mitigation and forgotten with the mitigation."""

from __future__ import annotations

from opendots.console.page import chart_svg
from opendots.console.views import HISTORY, CounterHistory, rate_text


def _listed(pkts: int | None, mid: int = 1) -> list[dict]:
    return [{"cuid": "c", "mid": mid, "pkts-dropped": pkts, "bytes-dropped": None if pkts is None else pkts * 100}]


def test_rates_come_from_two_measurements_and_a_snapshot_between_polls_adds_nothing():
    history = CounterHistory(poll_interval=10.0)
    first = _listed(1_000)
    history.observe(first, 100.0)
    assert first[0]["pkt-rate"] is None and first[0]["chart"] == []  # one measurement: no rate yet
    second = _listed(21_000)
    history.observe(second, 110.0)
    assert second[0]["pkt-rate"] == 2_000.0 and second[0]["bit-rate"] == 1_600_000.0
    between = _listed(21_000)
    history.observe(between, 112.0)  # the same counters, before the next poll: still the last interval's rate
    assert between[0]["pkt-rate"] == 2_000.0
    quiet = _listed(21_000)
    history.observe(quiet, 121.0)  # unchanged across a whole poll interval: measured again, nothing dropped
    assert quiet[0]["pkt-rate"] == 0.0 and quiet[0]["chart"] == [2000.0, 0.0]
    assert rate_text(2_000.0, 1_600_000.0) == "2.0 kpkt/s, 1.6 Mbit/s" and rate_text(None, None) == "-"


def test_history_is_bounded_and_dropped_with_the_mitigation():
    history = CounterHistory(poll_interval=1.0)
    for second in range(3 * HISTORY):
        history.observe(_listed(second * 10), float(second))
    assert len(history.samples["c/1"]) == HISTORY
    unmeasured = _listed(None, mid=2)
    history.observe(unmeasured, 1_000.0)
    assert unmeasured[0]["pkt-rate"] is None and list(history.samples) == []


def test_a_chart_is_a_plain_svg_line_scaled_to_its_highest_point():
    assert chart_svg([5.0]) == ""
    svg = chart_svg([0.0, 10.0, 5.0])
    assert svg.startswith("<svg") and 'points="0.0,23.0 60.0,1.0 120.0,12.0"' in svg
