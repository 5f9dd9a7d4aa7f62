"""The payloads nodes of one PostgreSQL database NOTIFY each other (opendots.store.postgres_cluster): counters
measured by the lease holder, read back exactly, and anything else refused rather than believed."""

from __future__ import annotations

import pytest

from opendots.domain import Counters
from opendots.store.postgres_cluster import counters_from, counters_payload


def test_measured_counters_travel_exactly_and_unmeasured_ones_stay_unmeasured():
    counters = Counters(bytes_dropped=2**63, pkts_dropped=7)
    assert counters_from(counters_payload("c/1", counters)) == ("c/1", counters)


@pytest.mark.parametrize(
    "payload",
    ["", "[]", '{"key": 1}', '{"key": "c/1", "pkts_dropped": "7"}', '{"key": "c/1", "bps_dropped": 1.5}', "{"],
)
def test_a_payload_that_is_not_counters_is_ignored(payload):
    assert counters_from(payload) is None
