"""Every RFC 9132 example body a server sees or sends, driven through the sans-I/O core."""

from __future__ import annotations

import binascii
import csv
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.domain.defaults import PROBING_RATE
from opendots.mitigate.base import Counters
from opendots.signal.server.core import (
    MitigationActivated,
    MitigationChanged,
    ParameterSet,
    Redirection,
    ServerSettings,
    SessionConfig,
    Status,
)
from tests.helpers import FIXTURES, REPOSITORY
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    CONFIG,
    DATA,
    SCOPE,
    Harness,
    figure,
    make_harness,
    mitigate_path,
)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


KEY_TABLE = REPOSITORY / "opendots" / "model" / "cbor-keys.tsv"


@pytest.mark.parametrize("declared", ["[signal] gateways", "[[clients]] gateway = true"])
def test_figure7_request_through_a_gateway_is_created_and_answered_as_figure10(tmp_path: Path, declared: str):
    if declared == "[signal] gateways":
        harness = make_harness(tmp_path, trusted_gateways=frozenset({"alpha"}))
    else:
        harness = Harness(tmp_path / "signal.db", ServerSettings(clients=[replace(ALPHA, gateway=True), BRAVO]))
    response = harness.request(
        "PUT", mitigate_path(ALPHA_CUID, 123, cdid="7eeaf349529eb55ed50113"), body=figure("figure07")
    )
    assert response.code == "2.01"
    assert response.body == figure("figure10")
    activated = [e for e in harness.events if isinstance(e, MitigationActivated)]
    assert len(activated) == 1
    scope = activated[0].scope
    assert scope.key == f"{ALPHA_CUID}/123"
    assert [str(p) for p in scope.target_prefixes] == ["2001:db8:6401::1/128", "2001:db8:6401::2/128"]
    assert [(r.lower, r.upper) for r in scope.target_port_ranges] == [(80, 80), (443, 443), (8080, 8080)]
    assert scope.target_protocols == (6,)
    (row,) = harness.dump()["signal_mitigations"]
    assert row[:4] == (ALPHA_CUID, 123, "alpha", "7eeaf349529eb55ed50113")


def test_a_cdid_from_a_client_that_is_not_a_trusted_gateway_is_ignored(harness: Harness):
    """RFC 9132 §4.4.1: DOTS servers MUST ignore 'cdid' attributes directly supplied by source DOTS clients."""
    response = harness.request(
        "PUT", mitigate_path(ALPHA_CUID, 123, cdid="7eeaf349529eb55ed50113"), body=figure("figure07")
    )
    assert response.code == "2.01" and response.body == figure("figure10")
    (row,) = harness.dump()["signal_mitigations"]
    assert row[:4] == (ALPHA_CUID, 123, "alpha", None)
    # The operator reloads [[clients]] with alpha declared a gateway: its next request's cdid counts.
    harness.server.set_clients([replace(ALPHA, gateway=True), BRAVO])
    body = figure("figure07")
    body[SCOPE]["scope"][0]["target-prefix"] = ["2001:db8:6401::9/128"]
    assert (
        harness.request("PUT", mitigate_path(ALPHA_CUID, 124, cdid="7eeaf349529eb55ed50113"), body=body).code == "2.01"
    )
    assert [row[3] for row in harness.dump()["signal_mitigations"]] == [None, "7eeaf349529eb55ed50113"]


def _names_by_key() -> dict[int, str]:
    with KEY_TABLE.open() as table:
        return {int(row["cbor_key"]): row["parameter_name"] for row in csv.DictReader(table, delimiter="\t")}


def _to_json(value: Any, names: dict[int, str]) -> Any:
    """CBOR keys to YANG-JSON names with the spec's key table (the key of the top member is already qualified)."""
    if isinstance(value, dict):
        return {names[key]: _to_json(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json(item, names) for item in value]
    return value


def test_figure8_cbor_is_the_same_request_as_figure7(harness: Harness):
    payload = binascii.unhexlify((DATA / "figure08-mitigation-request.cbor.hex").read_text().strip())
    body = _to_json(cbor2.loads(payload), _names_by_key())
    assert body == figure("figure07")
    response = harness.put(123, body)
    assert (response.code, response.body) == ("2.01", figure("figure10"))


def test_figure11_cuid_collision(harness: Harness):
    assert harness.put(12, figure("figure07")).code == "2.01"
    before = harness.dump()
    other_body = {SCOPE: {"scope": [{"target-prefix": ["198.51.100.0/28"], "lifetime": 3600}]}}
    response = harness.put(12, other_body, cuid=ALPHA_CUID, peer=BRAVO)
    assert response.code == "4.09"
    assert response.body == figure("figure11")
    assert harness.dump() == before
    # (3) of Figure 11: the same request with a new cuid is accepted.
    assert harness.put(12, other_body, cuid="bravo-fresh-cuid-00001", peer=BRAVO).code == "2.01"


def test_figure14_get_all_mitigations(harness: Harness):
    def request(protocol: int, lifetime: int) -> dict[str, Any]:
        prefixes = ["2001:db8:6401::1/128", "2001:db8:6401::2/128"]
        return {SCOPE: {"scope": [{"target-prefix": prefixes, "target-protocol": [protocol], "lifetime": lifetime}]}}

    # Start times and remaining lifetimes of the figure, seen from GET time 1507818500.
    harness.now = 1507818393
    assert harness.put(12333, request(6, 1755 + 107)).code == "2.01"
    harness.now = 1507818434
    assert harness.put(12332, request(17, 1756 + 66)).code == "2.01"
    harness.report_status(f"{ALPHA_CUID}/12332", Status.ATTACK_SUCCESSFULLY_MITIGATED)
    harness.report_status(f"{ALPHA_CUID}/12333", Status.ATTACK_STOPPED)
    harness.report_counters(f"{ALPHA_CUID}/12332", Counters(134334555, 333334444, 43344, 432432))
    harness.report_counters(f"{ALPHA_CUID}/12333", Counters(0, 0, 0, 0))
    harness.now = 1507818500
    response = harness.get(observe=0)
    assert response.code == "2.05"
    assert response.observable
    assert response.body == figure("figure14")
    # A counter nobody measured is never reported as zero.
    harness.report_counters(f"{ALPHA_CUID}/12333", Counters())
    entry = harness.get(12333).body[SCOPE]["scope"][0]
    assert "bytes-dropped" not in entry and entry["status"] == "attack-stopped"


def test_figure15_status_notifications(harness: Harness):
    assert harness.put(12332, figure("figure07")).code == "2.01"
    response = harness.get(12332, observe=0)
    assert response.observable
    assert response.body[SCOPE]["scope"][0]["status"] == "attack-mitigation-in-progress"
    seen = []
    for status in (Status.ATTACK_SUCCESSFULLY_MITIGATED, Status.ATTACK_STOPPED):
        harness.now += 10
        (event,) = harness.report_status(f"{ALPHA_CUID}/12332", status)
        assert isinstance(event, MitigationChanged) and event.client == "alpha" and event.mid == 12332
        seen.append(event.snapshot[SCOPE]["scope"][0]["status"])
    assert seen == ["attack-successfully-mitigated", "attack-stopped"]
    # The persisted status follows, so a restart reports the same.
    harness.restart()
    assert harness.get(12332).body[SCOPE]["scope"][0]["status"] == "attack-stopped"


def test_figure16_efficacy_update(harness: Harness):
    assert harness.put(123, figure("figure07")).code == "2.01"
    harness.now += 100
    response = harness.put(123, figure("figure16"), if_match_empty=True)
    assert response.code == "2.04"
    # Figure 16 carries no lifetime: the remaining lifetime is unchanged.
    assert response.body == {SCOPE: {"scope": [{"mid": 123, "lifetime": 3500}]}}
    (row,) = harness.dump()["signal_mitigations"]
    assert row[-1] == 1  # attack-status under-attack, stored


def test_figure17_withdraw_keeps_mitigating_for_the_active_but_terminating_period(harness: Harness):
    assert harness.put(123, figure("figure07")).code == "2.01"
    assert harness.delete(123).code == "2.02"
    entry = harness.get(123).body[SCOPE]["scope"][0]
    assert entry["status"] == "dots-client-withdrawn-mitigation"


def test_figure20_config_response(tmp_path: Path):
    # Figure 20's server runs with a current probing-rate of 15 (Appendix C's default is 5).
    example = ParameterSet(probing_rate=15)
    assert ParameterSet().probing_rate == PROBING_RATE == 5
    h = make_harness(tmp_path, session_defaults=SessionConfig(mitigating=example, idle=example))
    response = h.request("GET", ("config",), observe=0)
    assert response.code == "2.05"
    # RFC 9132's figure predates RFC 9362: our server adds the robust-transmission attributes to each set
    # (tests/unit/signal/server/core/test_robust_config.py), and renders the rest exactly as the figure.
    body = response.body
    for parameters in body[CONFIG].values():
        robust = [member for member in parameters if member.startswith("ietf-dots-robust-trans:")]
        assert len(robust) == 6
        for member in robust:
            del parameters[member]
    assert body == figure("figure20")
    assert response.max_age == 3600
    assert response.observable


def test_figures21_23_24_config_put_and_delete(harness: Harness):
    response = harness.request("PUT", ("config", "sid=123"), body=figure("figure23"))
    assert response.code == "2.01"
    assert harness.request("PUT", ("config", "sid=123"), body=figure("figure23")).code == "2.04"
    body = harness.request("GET", ("config", "sid=123")).body[CONFIG]
    assert body["mitigating-config"]["heartbeat-interval"]["current-value"] == 30
    assert body["idle-config"]["heartbeat-interval"]["current-value"] == 0
    assert body["idle-config"]["ack-timeout"]["current-value-decimal"] == "2.00"
    # Parameters absent from the PUT keep the server's defaults.
    assert body["idle-config"]["missing-hb-allowed"]["current-value"] == 15
    assert harness.server.session_config("alpha").mitigating.ack_random_factor == Decimal("1.50")
    assert harness.request("DELETE", ("config", "sid=123")).code == "2.02"
    assert harness.server.session_config("alpha") == SessionConfig()
    assert harness.dump()["signal_session_configs"] == []
    assert harness.request("GET", ("config", "sid=123")).code == "4.04"


def test_figure26_redirection(harness: Harness):
    assert harness.put(123, figure("figure07")).code == "2.01"
    harness.server.set_redirection(Redirection("alt-server.example", ("2001:db8:6401::1", "2001:db8:6401::2"), ttl=600))
    for response in (harness.get(), harness.put(124, figure("figure07")), harness.request("GET", ("config",))):
        assert response.code == "5.03"
        assert response.body == figure("figure26")
        assert response.max_age == 600
    # Heartbeats still flow so the session stays up while clients move.
    assert harness.request("PUT", ("hb",), body=figure("figure27")).code == "2.04"
    harness.server.set_redirection(None)
    assert harness.get(123).code == "2.05"


def test_figure27_heartbeat(harness: Harness):
    response = harness.request("PUT", ("hb",), body=figure("figure27"))
    assert (response.code, response.body) == ("2.04", None)
    assert harness.request("PUT", ("hb",), peer=None, body=figure("figure27")).code == "4.01"


def test_every_figure_file_is_valid_json():
    paths = list((FIXTURES / "signal").glob("*.json"))
    assert paths
    for path in paths:
        json.loads(path.read_text())
