"""The client core's RFC 9244 side: setup (§7) and pre-or-ongoing-mitigation telemetry (§8.2) requests, tsid/tmid
numbering kept durable like mids, re-sending installed setups at every connection, answers turned into events.
Requests travel, CBOR-encoded as the CoAP shell sends them, to the real server core (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opendots.model import decode_telemetry, encode_telemetry
from opendots.signal.client.core import events as ev
from opendots.signal.client.core.client import DotsClientCore
from opendots.signal.client.core.requests import DotsRequest, DotsResponse, RequestKind
from opendots.signal.client.core.scope import ScopeError
from opendots.signal.client.core.telemetry import setups_from_table
from opendots.signal.client.core.telemetry_bodies import (
    AttackDetail,
    TelemetryError,
    baseline,
    baseline_entry,
    config_entry,
    parse_rate,
    parse_talker,
    pipe_entry,
    report_entry,
)
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.store.client_state import ClientStateStore
from tests.helpers import FIXTURES
from tests.helpers.client_core import CUID, T0, events
from tests.helpers.signal_harness import Harness, make_harness

SETUP = "ietf-dots-telemetry:telemetry-setup"
TELEMETRY = "ietf-dots-telemetry:telemetry"


@pytest.fixture
def store(tmp_path: Path) -> ClientStateStore:
    return ClientStateStore(tmp_path / "client-state.db", CUID)


@pytest.fixture
def server(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, telemetry=TelemetryPolicy(server_originated=True))


def exchange(core: DotsClientCore, server: Harness, request: DotsRequest) -> DotsResponse:
    """REQUEST as the CoAP shell carries it (CBOR body, Uri-Path after .well-known/dots), answered by the server
    core; the client core learns from the answer."""
    payload = encode_telemetry(request.body) if request.body is not None else None
    answer = server.request(request.method, request.path[2:], payload=payload, query=request.query)
    body = answer.body if answer.body is None else decode_telemetry(encode_telemetry(answer.body))
    response = DotsResponse(answer.code, body, answer.max_age, answer.diagnostic)
    core.handle_response(request, response, T0)
    return response


def figure(number: int) -> dict[str, Any]:
    (path,) = (FIXTURES / "rfc9244").glob(f"fig{number:02d}-*.json")
    return json.loads(path.read_text())


def test_the_rfc9244_figure_bodies_are_what_the_builders_produce():
    """Figure 4 (§7.1.2), Figure 11 (§7.2.1), Figure 19 (§7.3.1), Figure 36 (§8.2) from operator values."""
    assert {SETUP: {"telemetry": [config_entry(low_percentile=5, mid_percentile="65", high_percentile=95.0)]}} == (
        figure(4)
    )
    assert {SETUP: {"telemetry": [pipe_entry([("link1", "500:Mbps")])]}} == figure(11)
    entry = baseline(1, ["2001:db8:6401::1", "2001:db8:6401::2/128"], peak=["60:megabit-ps"])
    assert {SETUP: {"telemetry": [baseline_entry([entry])]}} == figure(19)
    report = report_entry(["2001:db8::1"], attack=AttackDetail(32473, 77, severity="high", start_time=1608336568))
    report["total-attack-traffic-protocol"] = [{"protocol": 17, "unit": "megabit-ps", "mid-percentile-g": "900"}]
    assert {TELEMETRY: {"pre-or-ongoing-mitigation": [report]}} == figure(36)


def test_setups_are_installed_with_increasing_tsids_and_read_back(store: ClientStateStore, server: Harness):
    """§7.1.2: a PUT with a new tsid answers 2.01; the GET (§7.1.1) shows it installed with its tsid."""
    core = DotsClientCore(CUID, store, now=T0)
    config = core.telemetry.setup_set(config_entry(measurement_interval="hour", low_percentile=10))
    pipe = core.telemetry.setup_set(pipe_entry([("uplink", "10:Gbps")]))
    assert (config.tsid, pipe.tsid) == (0, 1) and config.confirmable
    assert exchange(core, server, config).code == "2.01"
    assert exchange(core, server, pipe).code == "2.01"
    installed = [e for e in events(core) if isinstance(e, ev.TelemetrySetupInstalled)]
    assert [(e.kind, e.tsid, e.code) for e in installed] == [
        ("current-config", 0, "2.01"),
        ("total-pipe-capacity", 1, "2.01"),
    ]
    answer = exchange(core, server, core.telemetry.setup_get())
    entries = answer.body[SETUP]["telemetry"]
    assert {
        "tsid": 1,
        "total-pipe-capacity": [{"link-id": "uplink", "capacity": "10", "unit": "gigabit-ps"}],
    } in entries
    assert any(e.get("tsid") == 0 and e["current-config"]["low-percentile"] == "10.00" for e in entries)
    assert "max-config-values" in answer.body[SETUP]  # §7.1.1: the acceptable values come along
    assert core.telemetry.server_setup == answer.body


def test_tsid_and_tmid_survive_a_restart_of_the_client(store: ClientStateStore, tmp_path: Path):
    """Like mids (RFC 9132 §4.4.1.1): a restarted client never reuses a lower tsid or tmid."""
    core = DotsClientCore(CUID, store, now=T0)
    core.telemetry.setup_set(config_entry(low_percentile=1))
    core.telemetry.report([report_entry(["192.0.2.1"])])
    store.close()
    again = DotsClientCore(CUID, ClientStateStore(tmp_path / "client-state.db", CUID), now=T0)
    assert again.telemetry.setup_set(config_entry(low_percentile=2)).tsid == 1
    assert again.telemetry.report([report_entry(["192.0.2.1"])]).tmid == 1
    with pytest.raises(ScopeError, match="increase monotonically"):
        again.telemetry.report([report_entry(["192.0.2.1"])], tmid=0)


def test_installed_setups_are_resent_at_every_connection_oldest_first(store: ClientStateStore, server: Harness):
    """§7: setups are not tied to a session; a server that lost them (restart without state) gets them back, one
    that kept them answers 2.04; a changed configuration gets a newer tsid, an unchanged one keeps its own."""
    core = DotsClientCore(CUID, store, now=T0)
    desired = {"baseline": baseline_entry([baseline(1, ["192.0.2.0/24"], normal=["100:Mbps"])])}
    desired["current-config"] = config_entry(mid_percentile=50)
    core.telemetry.configure(desired)
    core.connected(T0, reliable=False)
    puts = [e.request for e in events(core) if e.request.kind is RequestKind.TM_SETUP_PUT]
    assert [(r.setup_kind, r.tsid) for r in puts] == [("baseline", 0), ("current-config", 1)]
    assert [exchange(core, server, r).code for r in puts] == ["2.01", "2.01"]
    core.connected(T0 + 60, reliable=False)  # reconnection: the same tsids again
    again = [e.request for e in events(core) if isinstance(e, ev.SendRequest) and e.request.telemetry]
    assert [r.tsid for r in again] == [0, 1]
    assert [exchange(core, server, r).code for r in again] == ["2.04", "2.04"]
    core.telemetry.configure({**desired, "current-config": config_entry(mid_percentile=60)})
    assert core.telemetry.setups["current-config"][0] == 2 and core.telemetry.setups["baseline"][0] == 0


def test_a_refused_setup_becomes_an_event_and_is_not_recorded(store: ClientStateStore, server: Harness):
    """§7.3.1: a baseline for a prefix outside the client's domain is refused; the client keeps nothing."""
    core = DotsClientCore(CUID, store, now=T0)
    request = core.telemetry.setup_set(baseline_entry([baseline(1, ["203.0.113.0/24"], peak=["1:Gbps"])]))
    response = exchange(core, server, request)
    assert response.code.startswith("4.")
    (refused,) = [e for e in events(core) if isinstance(e, ev.TelemetryRefused)]
    assert refused.code == response.code and refused.request is request
    assert core.telemetry.setups == {} and store.load_telemetry_setups() == {}


def test_setup_delete_of_a_kind_and_the_reset(store: ClientStateStore, server: Harness):
    """§7.1.4: DELETE with the tsid of our configuration; §7.4: DELETE without tsid removes everything."""
    core = DotsClientCore(CUID, store, now=T0)
    exchange(core, server, core.telemetry.setup_set(config_entry(low_percentile=3)))
    exchange(core, server, core.telemetry.setup_set(pipe_entry([("l1", "1:Gbps")])))
    with pytest.raises(TelemetryError, match="no baseline"):
        core.telemetry.setup_delete("baseline")
    delete = core.telemetry.setup_delete("current-config")
    assert delete.tsid == 0 and exchange(core, server, delete).code == "2.02"
    assert list(core.telemetry.setups) == ["total-pipe-capacity"]
    assert exchange(core, server, core.telemetry.setup_delete()).code == "2.02"
    assert core.telemetry.setups == {} and store.load_telemetry_setups() == {}
    assert [e for e in exchange(core, server, core.telemetry.setup_get()).body[SETUP]["telemetry"] if "tsid" in e] == []


def test_a_report_with_attack_details_and_top_talkers_is_stored_under_its_tmid(store: ClientStateStore, server):
    """§8.2: PUT /tm answers 2.04; GET with the tmid gives the entry back with 'tmid' first (Figure 43)."""
    core = DotsClientCore(CUID, store, now=T0)
    talkers = tuple(parse_talker(text) for text in ("198.51.100.7:53", "[2001:db8:1::5]:123", "203.0.113.0/24"))
    attack = AttackDetail(0, 3, "udp_flood", "high", start_time=int(T0), talkers=talkers)
    entry = report_entry(["192.0.2.7"], total_traffic=["40:Mbps"], total_attack_traffic=["25000:pps"], attack=attack)
    request = core.telemetry.report([entry])
    assert request.tmid == 0 and not request.confirmable
    assert exchange(core, server, request).code == "2.04"
    assert [e.tmid for e in events(core) if isinstance(e, ev.TelemetryReported)] == [0]
    (got,) = exchange(core, server, core.telemetry.reports_get(0)).body[TELEMETRY]["pre-or-ongoing-mitigation"]
    assert got == {"tmid": 0, **entry}
    assert got["attack-detail"][0]["top-talker"]["talker"][1] == {
        "source-prefix": "2001:db8:1::5/128",
        "source-port-range": [{"lower-port": 123}],
    }
    assert exchange(core, server, core.telemetry.reports_delete(0)).code == "2.02"
    assert exchange(core, server, core.telemetry.reports_get()).code == "4.04"
    assert core.telemetry.reports == {} and core.telemetry.server_reports is None
    assert not [e for e in events(core) if isinstance(e, ev.TelemetryRefused)]  # a 4.04 GET: simply none


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500:Mbps", ("megabit-ps", 500)), ("25000:pps", ("packet-ps", 25000)), ("7", ("megabit-ps", 7))],
)
def test_rates_read_with_their_units(text: str, expected: tuple[str, int]):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["1.5:Mbps", "-3", "ten", "5:furlongs", "1:mbit"])
def test_bad_rates_are_refused_before_anything_leaves(text: str):
    with pytest.raises(TelemetryError):
        parse_rate(text)


@pytest.mark.parametrize("text", ["2001:db8::1:53x", "198.51.100.7:70000", "[2001:db8::1]53", "not-an-address"])
def test_bad_top_talkers_are_refused(text: str):
    with pytest.raises(TelemetryError):
        parse_talker(text)


def test_bad_configuration_values_are_refused():
    """Out-of-range percentiles, unknown intervals and unit classes: refused locally, with the reason."""
    with pytest.raises(TelemetryError, match="percentile"):
        config_entry(low_percentile=101)
    with pytest.raises(TelemetryError, match="two fraction digits"):
        config_entry(low_percentile="5.001")
    with pytest.raises(TelemetryError, match="measurement-interval"):
        config_entry(measurement_interval="fortnight")
    with pytest.raises(TelemetryError, match="unit class"):
        config_entry(unit_classes=["megabit-ps"])
    with pytest.raises(TelemetryError, match="at least one"):
        config_entry()
    with pytest.raises(TelemetryError, match="given twice"):
        AttackDetail(talkers=(parse_talker("192.0.2.1"), parse_talker("192.0.2.1/32"))).to_yang()


def test_the_telemetry_table_of_client_toml_becomes_setups():
    table = {
        "measurement_interval": "hour",
        "mid_percentile": 50,
        "unit_classes": ["bit-ps", "packet-ps"],
        "pipe": [{"link_id": "uplink", "capacity": "10:Gbps"}],
        "baseline": [{"target_prefix": ["192.0.2.0/24"], "normal": "300:Mbps", "peak": ["900:Mbps", "90000:pps"]}],
    }
    setups = setups_from_table(table)
    assert setups["current-config"]["current-config"]["unit-config"][1] == {"unit": "packet-ps", "unit-status": True}
    assert setups["total-pipe-capacity"] == pipe_entry([("uplink", "10:Gbps")])
    (entry,) = setups["baseline"]["baseline"]
    assert entry["id"] == 1 and entry["total-traffic-normal"] == [
        {"unit": "megabit-ps", "mid-percentile-g": "300", "peak-g": "900"},
        {"unit": "packet-ps", "peak-g": "90000"},
    ]
    with pytest.raises(TelemetryError, match="unknown key 'mid_percentil'"):
        setups_from_table({"mid_percentil": 50})
    with pytest.raises(TelemetryError, match="unknown key 'speed'"):
        setups_from_table({"pipe": [{"link_id": "a", "speed": 1}]})


def test_a_client_that_lost_its_state_catches_up_above_the_tsids_the_server_holds(tmp_path: Path, server: Harness):
    """§7: a tsid below an installed one is refused (4.00). A client restarted without its state file would have
    every setup refused for good; it looks (GET /tm-setup) and installs again above the newest tsid held."""
    old = DotsClientCore(CUID, ClientStateStore(tmp_path / "old.db", CUID), now=T0)
    for percentile in range(1, 7):  # the lost installation reached tsid 5
        assert exchange(old, server, old.telemetry.setup_set(config_entry(low_percentile=percentile))).code in (
            "2.01",
            "2.04",
        )
    fresh = DotsClientCore(CUID, ClientStateStore(tmp_path / "fresh.db", CUID), now=T0)
    fresh.telemetry.configure({"total-pipe-capacity": pipe_entry([("uplink", "1:Gbps")])})
    fresh.connected(T0, reliable=False)
    (put,) = [e.request for e in events(fresh) if e.request.kind is RequestKind.TM_SETUP_PUT]
    assert put.tsid == 0 and exchange(fresh, server, put).code == "4.00"
    (look,) = [e.request for e in events(fresh) if isinstance(e, ev.SendRequest)]
    assert look.kind is RequestKind.TM_SETUP_GET
    exchange(fresh, server, look)
    (again,) = [e.request for e in events(fresh) if isinstance(e, ev.SendRequest)]
    assert again.tsid == 6 and exchange(fresh, server, again).code == "2.01"
    assert fresh.telemetry.setups["total-pipe-capacity"][0] == 6
    assert fresh.telemetry.setup_set(config_entry(low_percentile=9)).tsid == 7  # durable: the counter moved on
    assert not [e for e in events(fresh) if isinstance(e, ev.SendRequest)]  # no loop
