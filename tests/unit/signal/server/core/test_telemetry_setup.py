"""DOTS telemetry setup on the server core (RFC 9244 §7): every §7 figure body accepted and read back, the tsid
rules, reset, conflicts between clients of one domain, bad input refused with nothing stored, a restart."""

from __future__ import annotations

import copy
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.model import decode_telemetry, encode_telemetry, json_to_cbor
from opendots.signal.server.core import Request, Response
from opendots.signal.server.core.events import TelemetrySetupChanged
from opendots.signal.server.core.telemetry_config import TelemetryPolicy
from opendots.signal.server.core.telemetry_setup import _ranges_meet
from tests.helpers import FIXTURES
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, BRAVO_CUID, Harness, make_harness, scope_body

SETUP = "ietf-dots-telemetry:telemetry-setup"
OTHER_CUID = "hmcpH87lmPGsSTjkhXCbin"  # RFC 9244 Figure 13's cuid: here a second DOTS client of alpha's domain

# Figure → (tsid, cuid) of its Uri-Path.
FIGURES = {
    4: (123, ALPHA_CUID),
    5: (124, ALPHA_CUID),
    6: (125, ALPHA_CUID),
    11: (126, ALPHA_CUID),
    13: (896, OTHER_CUID),
    15: (127, ALPHA_CUID),
    17: (128, ALPHA_CUID),
    19: (129, ALPHA_CUID),
    20: (130, ALPHA_CUID),
}


def figure(number: int) -> dict[str, Any]:
    (path,) = (FIXTURES / "rfc9244").glob(f"fig{number:02d}-*.json")
    return json.loads(path.read_text())


def entry(body: dict[str, Any]) -> dict[str, Any]:
    (only,) = body[SETUP]["telemetry"]
    return only


def setup_body(**kinds: Any) -> dict[str, Any]:
    return {SETUP: {"telemetry": [{key.replace("_", "-"): value for key, value in kinds.items()}]}}


def config_body(**config: Any) -> dict[str, Any]:
    return setup_body(current_config={key.replace("_", "-"): value for key, value in config.items()})


def path(tsid: int | None = None, cuid: str = ALPHA_CUID) -> tuple[str, ...]:
    return ("tm-setup", f"cuid={cuid}", *((f"tsid={tsid}",) if tsid is not None else ()))


def put(harness: Harness, tsid: int | None, body: Any, cuid: str = ALPHA_CUID, peer: Any = ALPHA) -> Response:
    # As the CoAP shell does: the core gets CBOR bytes, not validated here, so that what the data model refuses
    # reaches the core's decoder.
    payload = body if isinstance(body, bytes) else cbor2.dumps(json_to_cbor(body))
    return harness.request("PUT", path(tsid, cuid), peer, payload=payload)


def put_figure(harness: Harness, number: int) -> Response:
    tsid, cuid = FIGURES[number]
    return put(harness, tsid, figure(number), cuid)


def get(harness: Harness, tsid: int | None = None, cuid: str = ALPHA_CUID, peer: Any = ALPHA, **kw: Any) -> Response:
    response = harness.request("GET", path(tsid, cuid), peer, **kw)
    if response.body is not None:  # every body the server answers is valid ietf-dots-telemetry, and survives CBOR
        assert decode_telemetry(encode_telemetry(response.body)) == response.body
    return response


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    # Figure 6 asks for server-originated telemetry: a server announcing it accepts the request.
    return make_harness(tmp_path, telemetry=TelemetryPolicy(server_originated=True))


@pytest.mark.parametrize("number", [4, 5, 6, 11, 13, 15, 19, 20])
def test_every_rfc9244_section7_figure_put_is_created_and_read_back_equal(harness: Harness, number: int):
    """§7.1.2 (Figures 4-6), §7.2.1 (Figures 11, 13, 15), §7.3.1 (Figures 19, 20): 2.01, then a GET with the tsid
    (§7.1.3, §7.2.2, §7.3.2) answers the figure's entry with its tsid."""
    tsid, cuid = FIGURES[number]
    assert put_figure(harness, number).code == "2.01"
    response = get(harness, tsid, cuid)
    assert response.code == "2.05"
    assert response.body == {SETUP: {"telemetry": [{"tsid": tsid, **entry(figure(number))}]}}
    assert harness.request("GET", path(tsid + 1, cuid)).code == "4.04"  # §7.1.3: an unknown tsid


def test_the_figures_in_order_leave_what_the_rfc_says(harness: Harness):
    """A newer tsid replaces the older configuration (§7.1.2), the older pipe sharing a link (§7.2.1: Figure 15
    removes tsid=126, Figure 17 removes link1), the older baseline with the same targets (§7.3.1)."""
    for number in FIGURES:
        assert put_figure(harness, number).code == "2.01", number
    for gone in (123, 124, 126, 127, 129):
        assert get(harness, gone).code == "4.04", gone
    assert entry(get(harness, 125).body) == {"tsid": 125, **entry(figure(6))}
    link2 = {"link-id": "link2", "capacity": "500", "unit": "megabit-ps"}
    assert entry(get(harness, 128).body) == {"tsid": 128, "total-pipe-capacity": [link2]}
    assert entry(get(harness, 130).body) == {"tsid": 130, **entry(figure(20))}
    assert entry(get(harness, 896, OTHER_CUID).body) == {"tsid": 896, **entry(figure(13))}  # another cuid
    stored = [(row[0], row[1]) for row in harness.dump()["signal_telemetry_setups"]]
    assert stored == [(ALPHA_CUID, 125), (ALPHA_CUID, 128), (ALPHA_CUID, 130), (OTHER_CUID, 896)]


def test_a_put_of_an_installed_tsid_is_changed(harness: Harness):
    """§7.1.2: 2.04 when the tsid is found."""
    assert put_figure(harness, 4).code == "2.01"
    assert put(harness, 123, config_body(low_percentile="7.00")).code == "2.04"
    assert entry(get(harness, 123).body)["current-config"] == {"low-percentile": "7.00"}


def test_get_without_tsid_announces_the_acceptable_values_and_everything_installed(harness: Harness):
    """§7.1.1 (Figure 2): max-config-values >= min-config-values, the supported unit classes, and the current
    configuration (the defaults until one is installed), pipe and baselines."""
    body = get(harness).body[SETUP]
    maximum, minimum = body["max-config-values"], body["min-config-values"]
    for name in ("low-percentile", "mid-percentile", "high-percentile"):
        assert Decimal(maximum[name]) >= Decimal(minimum[name])
    assert maximum["telemetry-notify-interval"] >= minimum["telemetry-notify-interval"]
    assert maximum["server-originated-telemetry"] is True
    assert [u["unit"] for u in body["supported-unit-classes"]["unit-config"]] == ["packet-ps", "bit-ps", "byte-ps"]
    (default,) = body["telemetry"]
    assert "tsid" not in default
    assert default["current-config"]["low-percentile"] == "10.00"  # §7.1.2's defaults: 10th, 50th, 90th
    assert default["current-config"]["high-percentile"] == "90.00"
    for number in (4, 11, 19):
        put_figure(harness, number)
    installed = get(harness).body[SETUP]["telemetry"]
    assert installed == [{"tsid": FIGURES[n][0], **entry(figure(n))} for n in (4, 11, 19)]
    # §5.4: 'c' selects configuration (the setups) or non-configuration (the acceptable values) data.
    assert list(get(harness, query=("c=c",)).body[SETUP]) == ["telemetry"]
    assert "telemetry" not in get(harness, query=("c=n",)).body[SETUP]
    assert get(harness, query=("target-prefix=2001:db8::/32",)).code == "4.00"  # §10: an unsupported query


def test_the_acceptable_values_come_from_the_policy(tmp_path: Path):
    policy = TelemetryPolicy(
        interval=("hour", "week"), percentiles=(Decimal("5.00"), Decimal("95.00")), unit_classes=("packet-ps",)
    )
    harness = make_harness(tmp_path, telemetry=policy)
    body = get(harness).body[SETUP]
    assert body["max-config-values"]["measurement-interval"] == "week"
    assert body["min-config-values"]["measurement-interval"] == "hour"
    assert body["max-config-values"]["high-percentile"] == "95.00"
    assert body["min-config-values"]["low-percentile"] == "5.00"
    assert body["max-config-values"]["server-originated-telemetry"] is False
    assert body["supported-unit-classes"] == {"unit-config": [{"unit": "packet-ps", "unit-status": True}]}


def test_delete_of_a_tsid_goes_back_to_the_defaults(harness: Harness):
    """§7.1.4 (Figure 8): 2.02, also for a tsid that does not exist."""
    put_figure(harness, 4)
    assert harness.request("DELETE", path(123)).code == "2.02"
    assert get(harness, 123).code == "4.04"
    assert get(harness).body[SETUP]["telemetry"][0]["current-config"]["low-percentile"] == "10.00"
    assert harness.request("DELETE", path(123)).code == "2.02"
    assert harness.dump()["signal_telemetry_setups"] == []


def test_delete_without_tsid_resets_every_setup_and_lets_tsids_start_again(harness: Harness):
    """§7.4 (Figure 21): every setup of the cuid goes; the client restarts its tsids (rollover, RFC 9132 §4.4.1)."""
    for number in (4, 11, 19):
        put_figure(harness, number)
    put_figure(harness, 13)
    assert harness.request("DELETE", path()).code == "2.02"
    assert [row[0] for row in harness.dump()["signal_telemetry_setups"]] == [OTHER_CUID]  # only that cuid's
    assert put(harness, 1, figure(4)).code == "2.01"


def test_installing_replacing_and_deleting_setups_is_an_event_for_the_audit_log_and_a_refusal_is_not(harness: Harness):
    """/tm-setup is not observable, but an operator's audit log records every change (TelemetrySetupChanged)."""
    changed = [TelemetrySetupChanged("alpha", ALPHA_CUID)]
    assert put_figure(harness, 4).code == "2.01" and harness.events == changed
    assert put_figure(harness, 4).code == "2.04" and harness.events == changed
    assert put(harness, 122, figure(4)).code == "4.00" and harness.events == []  # a tsid going backwards
    assert harness.request("DELETE", path(123)).code == "2.02" and harness.events == changed
    assert harness.request("DELETE", path(123)).code == "2.02" and harness.events == []  # nothing was held


def test_setups_are_kept_per_client(harness: Harness):
    """Like mitigations: a client sees and changes only its own setups, and cannot take another's cuid."""
    put_figure(harness, 19)
    assert get(harness, 129, peer=BRAVO).code == "4.04"
    assert get(harness, cuid=BRAVO_CUID, peer=BRAVO).body[SETUP]["telemetry"] == [
        {"current-config": TelemetryPolicy(server_originated=True).default_config()}
    ]
    before = harness.dump()
    assert put(harness, 200, figure(4), peer=BRAVO).code == "4.09"  # cuid collision
    assert harness.request("DELETE", path(), BRAVO).code == "2.02"  # nothing of hers to delete
    assert harness.request("DELETE", path(129), BRAVO).code == "2.02"
    assert harness.dump() == before
    assert get(harness, 129).code == "2.05"


def test_a_telemetry_cuid_belongs_to_its_client_for_mitigations_too(harness: Harness):
    put_figure(harness, 13)
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/24"]), cuid=OTHER_CUID, peer=BRAVO).code == "4.09"


def test_pipe_and_baseline_conflicts_between_clients_of_one_domain(harness: Harness):
    """§7.5: another DOTS client of the domain (another cuid of alpha) setting the same link is refused 4.09
    (overlapping pipe scope, 5), the same targets likewise (overlapping targets, 1); disjoint ones are fine."""
    put_figure(harness, 11)
    put_figure(harness, 19)
    before = harness.dump()
    response = put(harness, 1, figure(11), cuid=OTHER_CUID)
    assert (response.code, "(5)" in response.diagnostic) == ("4.09", True)
    baseline = entry(figure(19))["baseline"][0]
    narrower = {**baseline, "id": 9, "target-prefix": ["2001:db8:6401::1/128"]}
    response = put(harness, 2, setup_body(baseline=[narrower]), cuid=OTHER_CUID)
    assert (response.code, "(1)" in response.diagnostic) == ("4.09", True)
    assert harness.dump() == before
    elsewhere = {**narrower, "target-prefix": ["192.0.2.0/24"]}
    assert put(harness, 3, setup_body(baseline=[elsewhere]), cuid=OTHER_CUID).code == "2.01"


def test_a_baseline_replaces_an_older_one_with_the_same_id_or_overlapping_targets(harness: Harness):
    """§7.3.1: overlapping targets (or the same id) replace; a disjoint baseline, or the whole domain, stays."""
    base = {"total-traffic-normal": [{"unit": "megabit-ps", "peak-g": "60"}]}
    put(harness, 1, setup_body(baseline=[{"id": 1, "target-prefix": ["192.0.2.0/25"], **base}]))
    put(harness, 2, setup_body(baseline=[{"id": 2, "target-prefix": ["2001:db8:6401::/64"], **base}]))
    put(harness, 3, setup_body(baseline=[{"id": 3, **base}]))  # no target: the domain as a whole
    assert put(harness, 4, setup_body(baseline=[{"id": 4, "target-prefix": ["192.0.2.0/24"], **base}])).code == "2.01"
    assert [row[1] for row in harness.dump()["signal_telemetry_setups"]] == [2, 3, 4]
    assert put(harness, 5, setup_body(baseline=[{"id": 2, "target-fqdn": ["www.example.com"], **base}])).code == "2.01"
    assert put(harness, 6, setup_body(baseline=[{"id": 6, **base}])).code == "2.01"
    assert [row[1] for row in harness.dump()["signal_telemetry_setups"]] == [4, 5, 6]


def _figure4_with(**config: Any) -> dict[str, Any]:
    body = copy.deepcopy(figure(4))
    entry(body)["current-config"].update({key.replace("_", "-"): value for key, value in config.items()})
    return body


def _unknown_unit() -> bytes:
    """Figure 11 with unit 99, which no unit enumeration has (the encoder refuses to write it)."""
    cbor = json_to_cbor(figure(11))
    cbor[203][129][0][136][0][134] = 99  # telemetry-setup / telemetry / total-pipe-capacity / unit
    return cbor2.dumps(cbor)


BAD_PUTS: dict[str, tuple[Any, str]] = {
    # §7.1.2: a value the server does not accept (outside max/min-config-values) → 4.22.
    "percentile above the maximum": (_figure4_with(high_percentile="150.00"), "4.22"),
    "negative percentile": (_figure4_with(low_percentile="-1.00"), "4.22"),
    "interval outside the limits": (config_body(measurement_interval="month"), "4.22"),
    "notify interval outside the limits": (setup_body(current_config={"telemetry-notify-interval": 3600}), "4.22"),
    "notify interval inside the limits (control)": (
        setup_body(current_config={"telemetry-notify-interval": 600}),
        "2.01",
    ),
    "one unit class both on and off": (
        config_body(unit_config=[{"unit": "bit-ps", "unit-status": True}, {"unit": "bit-ps", "unit-status": False}]),
        "4.00",  # §7.1.2: conflicting values
    ),
    "unit class not supported": (config_body(unit_config=[{"unit": "byte-ps", "unit-status": True}]), "4.22"),
    "pipe in an unsupported unit class": (
        setup_body(total_pipe_capacity=[{"link-id": "l1", "capacity": "5", "unit": "gigabyte-ps"}]),
        "4.22",
    ),
    # The data model refuses an unknown unit, and the RFC's text what it forbids → 4.00.
    "unknown unit": (_unknown_unit(), "4.00"),
    "percentiles out of order": (_figure4_with(mid_percentile="99.00"), "4.00"),
    "sample not shorter than the interval": (
        config_body(measurement_interval="hour", measurement_sample="hour"),
        "4.00",
    ),
    "empty configuration": (setup_body(current_config={}), "4.00"),
    "no setup at all": ({SETUP: {"telemetry": []}}, "4.00"),
    "a mix of configuration and pipe": (
        {SETUP: {"telemetry": [entry(figure(4)), entry(figure(11))]}},
        "4.00",
    ),
    "tsid in the body": ({SETUP: {"telemetry": [{"tsid": 131, **entry(figure(4))}]}}, "4.00"),
    "server-to-client data in a request": ({SETUP: {"supported-query-type": ["mid"], **figure(4)[SETUP]}}, "4.00"),
    "capacity 0 for every link": (
        setup_body(total_pipe_capacity=[{"link-id": "link1", "capacity": "0", "unit": "megabit-ps"}]),
        "4.00",
    ),
    "two units of one class for a link": (
        setup_body(
            total_pipe_capacity=[
                {"link-id": "link1", "capacity": "500", "unit": "megabit-ps"},
                {"link-id": "link1", "capacity": "1", "unit": "gigabit-ps"},
            ]
        ),
        "4.00",
    ),
    "baseline for a prefix the client does not own": (
        setup_body(baseline=[{"id": 1, "target-prefix": ["198.51.100.0/24"]}]),
        "4.00",
    ),
    "baseline for an unknown alias": (setup_body(baseline=[{"id": 1, "alias-name": ["nowhere"]}]), "4.00"),
    "a signal channel body": (
        {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}},
        "4.00",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PUTS))
def test_bad_setups_get_the_rfc_error_and_store_nothing(tmp_path: Path, case: str):
    """§7.1.2 (4.22 for values the server does not accept, 4.00 for invalid ones), §7.2.1, §7.3, §10."""
    policy = TelemetryPolicy(
        unit_classes=("packet-ps", "bit-ps"), interval=("5-minutes", "week"), notify_interval=(10, 600)
    )
    harness = make_harness(tmp_path, telemetry=policy)
    body, code = BAD_PUTS[case]
    before = harness.dump()
    response = put(harness, 131, body)
    assert response.code == code, response.diagnostic
    if code != "2.01":
        assert response.diagnostic
        assert harness.dump() == before
        assert get(harness, 131).code == "4.04"


def test_server_originated_telemetry_is_refused_by_a_server_that_sends_none(tmp_path: Path):
    """§7.1.1, §7.1.2: 'server-originated-telemetry' false in max-config-values, so Figure 6 gets 4.22."""
    harness = make_harness(tmp_path)
    assert put_figure(harness, 6).code == "4.22"
    assert harness.dump()["signal_telemetry_setups"] == []


def test_a_tsid_going_backwards_is_refused_and_nothing_is_stored(harness: Harness):
    """§7.1.2: tsid values MUST increase; a lower new tsid violates the telemetry extension (§10: 4.00)."""
    put_figure(harness, 20)
    before = harness.dump()
    assert put(harness, 129, figure(19)).code == "4.00"
    assert put(harness, 5, figure(4)).code == "4.00"
    assert harness.dump() == before


@pytest.mark.parametrize(
    ("method", "segments"),
    [
        ("PUT", ("tm-setup", f"cuid={ALPHA_CUID}")),  # §7.1.2: tsid is mandatory in a PUT
        ("GET", ("tm-setup", "tsid=1")),  # cuid is mandatory
        ("GET", ("tm-setup", "tsid=1", f"cuid={ALPHA_CUID}")),  # tsid after cuid
        ("GET", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=")),  # §5.3: empty values
        ("GET", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=4294967296")),  # uint32
        ("POST", ("tm-setup", f"cuid={ALPHA_CUID}", "tsid=1")),
    ],
)
def test_malformed_uri_paths_and_methods_are_refused(harness: Harness, method: str, segments: tuple[str, ...]):
    response = harness.request(method, segments, payload=encode_telemetry(figure(4)))
    assert response.code == ("4.05" if method == "POST" else "4.00")
    assert harness.dump()["signal_telemetry_setups"] == []


def test_the_number_of_setups_per_client_is_bounded(tmp_path: Path):
    harness = make_harness(tmp_path, telemetry=TelemetryPolicy(max_setups_per_client=2))
    put_figure(harness, 4)
    put_figure(harness, 11)
    assert put_figure(harness, 19).code == "5.03"
    assert put(harness, 127, figure(5)).code == "2.01"  # replaces tsid=123: still two


def test_the_number_of_cuids_per_client_is_bounded_as_for_mitigations(tmp_path: Path):
    harness = make_harness(tmp_path, max_cuids_per_client=1)
    assert put_figure(harness, 4).code == "2.01"
    assert put_figure(harness, 13).code == "5.03"  # a second cuid
    assert [row[0] for row in harness.dump()["signal_telemetry_setups"]] == [ALPHA_CUID]
    assert harness.dump()["signal_cuids"] == []


def test_setups_survive_a_restart(harness: Harness):
    """§7: valid until the server ceases to serve the domain; stored like mitigations."""
    for number in FIGURES:
        put_figure(harness, number)
    before = get(harness).body, get(harness, 896, OTHER_CUID).body
    harness.restart()
    assert (get(harness).body, get(harness, 896, OTHER_CUID).body) == before
    assert put(harness, 129, figure(19)).code == "4.00"  # the tsid order survives too
    assert put(harness, 131, figure(4)).code == "2.01"
    assert get(harness, 125).code == "4.04"  # replaced by the newer configuration


def test_a_refused_write_changes_nothing(harness: Harness):
    """As for mitigations: the store fails, the client gets 5.03, and memory is as before."""
    request = Request("PUT", path(123), peer=ALPHA_CUID, payload=encode_telemetry(figure(4)))
    decision = harness.server.handle(request, harness.now)
    assert decision.changes.put_telemetry_setups
    assert harness.server.write_failed(decision, harness.now).code == "5.03"
    assert get(harness, 123).code == "4.04"


def test_address_overlap_is_one_sweep_that_agrees_with_comparing_every_pair():
    """§7.3.1's overlap on addresses, as sorted ranges (thousands of prefixes: linear, not quadratic)."""
    rng = random.Random(9244)
    for _ in range(300):
        first, second = (
            tuple(sorted((low, low + rng.randrange(0, 40)) for low in rng.sample(range(1000), rng.randrange(0, 12))))
            for _ in range(2)
        )
        brute = any(a <= d and c <= b for a, b in first for c, d in second)
        assert _ranges_meet(first, second) is brute, (first, second)


def test_a_body_handed_over_decoded_is_validated_too(harness: Harness):
    """Bodies reach the core as CBOR from the shell; one given as YANG-JSON is held to the same module."""
    invalid = _figure4_with(mid_percentile="99.00")  # the module's 'must': high >= mid
    response, _ = harness.settle_request(Request("PUT", path(123), peer=ALPHA_CUID, body=invalid), harness.now)
    assert response.code == "4.00" and "high-percentile" in response.diagnostic
    response, _ = harness.settle_request(Request("PUT", path(123), peer=ALPHA_CUID, body=figure(4)), harness.now)
    assert response.code == "2.01"
