"""Top talkers a client names (RFC 9244 §8.1.5) reach the actuators with the mitigation's scope: from the request's
attack details (§9.1), an efficacy update's (§9.1), and the client's own pre-or-ongoing-mitigation telemetry on
overlapping targets (§8.2), before or after the mitigation starts; spoofed talkers never."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.domain import PortRange
from opendots.model import json_to_cbor
from opendots.signal.server.core.events import MitigationActivated, MitigationUpdated
from opendots.signal.server.core.talkers import MAX_TALKERS, talkers_of
from tests.helpers.signal_harness import ALPHA, ALPHA_CUID, BRAVO, SCOPE, Harness, make_harness

net = ipaddress.ip_network
DETAIL = "ietf-dots-telemetry:attack-detail"


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path)


def detail(*talkers: dict[str, Any]) -> dict[str, Any]:
    return {"vendor-id": 0, "attack-id": 2, "top-talker": {"talker": list(talkers)}}


def talker(prefix: str, spoofed: bool | None = None, port: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"source-prefix": prefix}
    if spoofed is not None:
        entry["spoofed-status"] = spoofed
    if port is not None:
        entry["source-port-range"] = [{"lower-port": port}]
    return entry


def mitigation(target: str, **more: Any) -> dict[str, Any]:
    return {SCOPE: {"scope": [{"target-prefix": [target], "lifetime": 3600, **more}]}}


def report(harness: Harness, tmid: int, target: str, *talkers: dict[str, Any], peer: Any = ALPHA) -> str:
    cuid = peer.cuid
    body = {"ietf-dots-telemetry:telemetry": {"pre-or-ongoing-mitigation": [
        {"target": {"target-prefix": [target]}, "attack-detail": [detail(*talkers)]}
    ]}}  # fmt: skip
    payload = cbor2.dumps(json_to_cbor(body))
    return harness.request("PUT", ("tm", f"cuid={cuid}", f"tmid={tmid}"), peer, payload=payload).code


def scopes(events: list[Any], kind: type) -> list[Any]:
    return [event.scope for event in events if isinstance(event, kind)]


def test_spoofed_talkers_are_left_out_and_ports_are_kept_only_when_every_talker_names_some_rfc9244_8_1_5():
    details = [detail(talker("198.51.100.7/32", port=53), talker("198.51.100.8/32", spoofed=True, port=123))]
    assert talkers_of(details) == ((net("198.51.100.7/32"),), (PortRange(53, 53),))
    details.append(detail(talker("198.51.100.9/32", spoofed=False)))
    assert talkers_of(details) == ((net("198.51.100.7/32"), net("198.51.100.9/32")), ())
    assert talkers_of([detail(talker("198.51.100.8/32", spoofed=True))]) == ((), ())


def test_the_attack_details_of_a_mitigation_request_go_with_its_scope_rfc9244_9_1(harness: Harness):
    named = [detail(talker("198.51.100.7/32", spoofed=False), talker("198.51.100.66/32", spoofed=True))]
    assert harness.put(1, mitigation("192.0.2.1/32", **{DETAIL: named})).code == "2.01"
    (scope,) = scopes(harness.events, MitigationActivated)
    assert scope.top_talkers == (net("198.51.100.7/32"),)
    assert harness.put(2, mitigation("192.0.2.2/32")).code == "2.01"
    assert scopes(harness.events, MitigationActivated)[0].top_talkers == ()


def test_telemetry_reported_before_the_request_names_the_talkers_of_an_overlapping_mitigation_rfc9244_8_2(
    harness: Harness,
):
    assert report(harness, 1, "192.0.2.0/28", talker("198.51.100.7/32"), talker("198.51.100.8/32")) == "2.04"
    assert harness.put(1, mitigation("192.0.2.1/32")).code == "2.01"
    (scope,) = scopes(harness.events, MitigationActivated)
    assert scope.top_talkers == (net("198.51.100.7/32"), net("198.51.100.8/32"))
    assert harness.put(2, mitigation("192.0.2.100/32")).code == "2.01"  # outside the report's target
    assert scopes(harness.events, MitigationActivated)[0].top_talkers == ()


def test_telemetry_reported_during_a_mitigation_updates_its_scope_with_the_talkers_rfc9244_8_2(harness: Harness):
    assert harness.put(1, mitigation("192.0.2.1/32")).code == "2.01"
    assert report(harness, 1, "192.0.2.1/32") == "2.04"  # no talker yet (FastNetMon's ban): nothing to do
    assert scopes(harness.events, MitigationUpdated) == []
    assert report(harness, 2, "192.0.2.1/32", talker("198.51.100.7/32")) == "2.04"
    (scope,) = scopes(harness.events, MitigationUpdated)
    assert scope.key == f"{ALPHA_CUID}/1" and scope.top_talkers == (net("198.51.100.7/32"),)
    assert scope.target_prefixes == (net("192.0.2.1/32"),)


def test_another_clients_telemetry_never_names_talkers_for_a_mitigation_rfc9244_8_2(harness: Harness):
    """bravo shares 192.0.2.0/24 with alpha: its report is about its own view, never alpha's mitigation."""
    assert harness.put(1, mitigation("192.0.2.1/32")).code == "2.01"
    assert report(harness, 1, "192.0.2.1/32", talker("198.51.100.7/32"), peer=BRAVO) == "2.04"
    assert scopes(harness.events, MitigationUpdated) == []
    assert harness.put(2, mitigation("192.0.2.2/32")).code == "2.01"
    assert scopes(harness.events, MitigationActivated)[0].top_talkers == ()


def test_an_efficacy_update_with_attack_details_updates_the_scope_with_its_talkers_rfc9244_9_1(harness: Harness):
    assert harness.put(1, mitigation("192.0.2.1/32")).code == "2.01"
    update = {SCOPE: {"scope": [{"target-prefix": ["192.0.2.1/32"], "attack-status": "under-attack",
                                 DETAIL: [detail(talker("198.51.100.9/32"))]}]}}  # fmt: skip
    assert harness.put(1, update, if_match_empty=True).code == "2.04"
    (scope,) = scopes(harness.events, MitigationUpdated)
    assert scope.top_talkers == (net("198.51.100.9/32"),)


def test_talkers_gathered_from_many_reports_are_bounded_for_the_actuators():
    many = [detail(*(talker(f"198.51.{i}.{j}/32") for j in range(200))) for i in range(3)]
    prefixes, _ = talkers_of(many)
    assert len(prefixes) == MAX_TALKERS and prefixes[0] == net("198.51.0.0/32")
