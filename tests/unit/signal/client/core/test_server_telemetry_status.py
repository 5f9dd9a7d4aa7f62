"""The agent keeps what a mitigation status notification carries of RFC 9244 §9.2 server-originated telemetry, and
`opendots client status` renders it from the agent's cache with its units."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.cli.client import _status_entries
from opendots.cli.render import current_and_peak
from opendots.signal.client.core.requests import DotsResponse
from opendots.store.client_state import ClientStateStore
from tests.helpers.client_core import CUID, T0, connected_core, events, grant

TAT = "ietf-dots-telemetry:total-attack-traffic"


@pytest.fixture
def store(tmp_path: Path) -> ClientStateStore:
    return ClientStateStore(tmp_path / "client-state.db", CUID)


def test_the_agents_status_keeps_the_servers_telemetry_and_the_table_shows_rates_with_units(store) -> None:
    core = connected_core(store)
    mid = grant(core, T0)
    events(core)
    measured = [
        {"unit": "packet-ps", "mid-percentile-g": "1800", "peak-g": "5000", "current-g": "2000"},
        {"unit": "bit-ps", "peak-g": "4000000", "current-g": "1600000"},
    ]
    entry = {
        "mid": mid,
        "status": "attack-mitigation-in-progress",
        "lifetime": 500,
        "pkts-dropped": "70000",
        TAT: measured,
    }
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [entry]}}
    core.handle_response(core.status(mid, observe=0), DotsResponse("2.05", body, observe=4), T0 + 20)
    record = core.mitigations[mid]
    assert record.last_entry[TAT] == measured
    # A later notification without counters changed keeps the latest measurement (the entries are merged).
    entry = {"mid": mid, "status": "attack-successfully-mitigated", "lifetime": 480}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [entry]}}
    core.handle_response(core.status(mid, observe=0), DotsResponse("2.05", body, observe=5), T0 + 40)
    (shown,) = _status_entries({"mitigations": [record.to_json()]})
    assert shown["status"] == "attack-successfully-mitigated" and shown[TAT] == measured
    assert current_and_peak(shown[TAT]) == "2000 pps (peak 5000 pps), 1600000 bps (peak 4000000 bps)"
