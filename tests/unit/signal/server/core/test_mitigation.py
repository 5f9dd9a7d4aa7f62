"""Mitigation request life cycle: mid rules, lifetimes, withdrawal, efficacy, filters, conflicts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from opendots.domain.defaults import ACTIVE_BUT_TERMINATING, MAX_ACTIVE_BUT_TERMINATING
from opendots.mitigate.base import Counters
from opendots.signal.server.core import (
    MitigationActivated,
    MitigationChanged,
    MitigationExpired,
    MitigationUpdated,
    MitigationWithdrawn,
    StaticAliasDirectory,
    Status,
    Targets,
)
from tests.helpers.signal_harness import (
    ALPHA_CUID,
    BRAVO,
    BRAVO_CUID,
    NO_HEARTBEAT,
    SCOPE,
    Harness,
    make_harness,
    scope_body,
)

HOST1 = "2001:db8:6401::1/128"
HOST2 = "2001:db8:6401::2/128"


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, session_defaults=NO_HEARTBEAT)


def entry(h: Harness, mid: int) -> dict:
    response = h.get(mid)
    assert response.code == "2.05", response.diagnostic
    return response.body[SCOPE]["scope"][0]


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def test_every_scope_attribute_is_accepted_and_replayed(tmp_path: Path):
    aliases = StaticAliasDirectory(
        {"alpha": {"web": Targets(target_prefixes=(ipaddress.ip_network("192.0.2.128/25"),), target_protocols=(6,))}}
    )
    h = make_harness(tmp_path, aliases=aliases)
    body = scope_body(
        target_prefix=[HOST1, "192.0.2.0/28"],
        target_port_range=[{"lower-port": 80}, {"lower-port": 1024, "upper-port": 65535}],
        target_protocol=[6, 17],
        target_fqdn=["www.example.com", "api.alpha.example"],
        target_uri=["https://portal.example.net/login", "http://[2001:db8:6401::1]:8080/x"],
        alias_name=["web"],
        lifetime=600,
        trigger_mitigation=True,
    )
    assert h.put(1, body).code == "2.01"
    (activated,) = [e for e in h.events if isinstance(e, MitigationActivated)]
    assert [str(p) for p in activated.scope.target_prefixes] == [HOST1, "192.0.2.0/28", "192.0.2.128/25"]
    assert activated.names == ("www.example.com", "api.alpha.example", "portal.example.net", "2001:db8:6401::1")
    got = entry(h, 1)
    request = body[SCOPE]["scope"][0]
    assert {k: got[k] for k in request} == request
    assert got["status"] == "attack-mitigation-in-progress" and got["mitigation-start"] == str(int(h.now))


def test_refresh_same_mid_gives_2_04_and_a_new_lifetime(harness: Harness):
    body = scope_body(target_prefix=[HOST1], lifetime=100)
    assert harness.put(5, body).code == "2.01"
    harness.advance(60)
    assert entry(harness, 5)["lifetime"] == 40
    response = harness.put(5, scope_body(target_prefix=[HOST1], lifetime=300))
    assert response.code == "2.04"
    assert response.body == {SCOPE: {"scope": [{"mid": 5, "lifetime": 300}]}}
    assert not [e for e in harness.events if isinstance(e, MitigationActivated)]  # still enforced, nothing to redo


def test_lifetime_expiry_with_a_fake_clock(harness: Harness):
    assert harness.put(5, scope_body(target_prefix=[HOST1], lifetime=100)).code == "2.01"
    assert harness.server.next_timer() == harness.now + 100
    assert harness.advance(99.5) == []
    events = harness.advance(0.5)
    assert kinds(events) == ["MitigationExpired", "MitigationChanged"]
    assert events[0] == MitigationExpired("alpha", ALPHA_CUID, 5, f"{ALPHA_CUID}/5", True)
    assert events[1].snapshot[SCOPE]["scope"][0]["status"] == "attack-mitigation-terminated"
    assert harness.get(5).code == "4.04"
    assert harness.dump()["signal_mitigations"] == []


def test_indefinite_lifetime_and_server_maximum(tmp_path: Path):
    h = make_harness(tmp_path, max_lifetime=7200, allow_indefinite=False)
    assert h.put(1, scope_body(target_prefix=[HOST1], lifetime=-1)).body[SCOPE]["scope"][0]["lifetime"] == 7200
    assert h.put(2, scope_body(target_prefix=[HOST2], lifetime=99999)).body[SCOPE]["scope"][0]["lifetime"] == 7200
    h2 = make_harness(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)
    assert h2.put(1, scope_body(target_prefix=[HOST1], lifetime=-1)).body[SCOPE]["scope"][0]["lifetime"] == -1
    h2.advance(10**7)
    assert entry(h2, 1)["lifetime"] == -1


def test_higher_mid_overlapping_replaces_lower_one(harness: Harness):
    assert harness.put(10, scope_body(target_prefix=[HOST1, HOST2])).code == "2.01"
    assert harness.put(11, scope_body(target_prefix=["2001:db8:6401::/64"])).code == "2.01"
    assert kinds(harness.events) == [
        "MitigationActivated",
        "MitigationWithdrawn",
        "MitigationChanged",
        "MitigationChanged",
    ]
    withdrawn = harness.events[1]
    assert isinstance(withdrawn, MitigationWithdrawn) and withdrawn.mid == 10 and withdrawn.reason == "superseded"
    assert harness.get(10).code == "4.04"
    assert [row[1] for row in harness.dump()["signal_mitigations"]] == [11]


def test_lower_mid_overlapping_is_refused_with_conflict_information(harness: Harness):
    assert harness.put(20, scope_body(target_prefix=[HOST1], target_port_range=[{"lower-port": 443}])).code == "2.01"
    before = harness.dump()
    response = harness.put(19, scope_body(target_prefix=["2001:db8:6401::/64"]))
    assert response.code == "4.09"
    info = response.body[SCOPE]["scope"][0]["conflict-information"]
    assert info == {
        "conflict-cause": "overlapping-targets",
        "conflict-scope": {"target-prefix": [HOST1], "target-port-range": [{"lower-port": 443}], "mid": 20},
    }
    assert harness.dump() == before


def test_disjoint_protocols_or_ports_do_not_overlap(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=[HOST1], target_protocol=[6])).code == "2.01"
    assert harness.put(2, scope_body(target_prefix=[HOST1], target_protocol=[17])).code == "2.01"
    assert harness.put(3, scope_body(target_prefix=[HOST2], target_port_range=[{"lower-port": 53}])).code == "2.01"
    assert harness.put(4, scope_body(target_prefix=[HOST2], target_port_range=[{"lower-port": 80}])).code == "2.01"
    assert len(harness.get().body[SCOPE]["scope"]) == 4


def test_delete_keeps_mitigating_during_active_but_terminating(harness: Harness):
    assert harness.put(7, scope_body(target_prefix=[HOST1])).code == "2.01"
    assert harness.delete(7).code == "2.02"
    assert kinds(harness.events) == ["MitigationChanged"]
    assert entry(harness, 7)["status"] == "dots-client-withdrawn-mitigation"
    assert harness.delete(7).code == "2.02"  # idempotent
    assert harness.advance(ACTIVE_BUT_TERMINATING - 1) == []
    events = harness.advance(1)
    assert kinds(events) == ["MitigationWithdrawn", "MitigationChanged"]
    assert events[0].reason == "client"
    assert events[1].snapshot[SCOPE]["scope"][0]["status"] == "attack-mitigation-terminated"
    assert harness.get(7).code == "4.04"


def test_asking_again_during_terminating_revives_and_lengthens_the_period(harness: Harness):
    body = scope_body(target_prefix=[HOST1])
    assert harness.put(7, body).code == "2.01"
    assert harness.delete(7).code == "2.02"
    harness.advance(30)
    assert harness.put(7, body).code == "2.04"
    assert entry(harness, 7)["status"] == "attack-mitigation-in-progress"
    assert harness.delete(7).code == "2.02"
    assert harness.server.next_timer() == harness.now + 2 * ACTIVE_BUT_TERMINATING
    for _ in range(3):
        assert harness.put(7, body).code == "2.04"
        assert harness.delete(7).code == "2.02"
    assert harness.server.next_timer() == harness.now + MAX_ACTIVE_BUT_TERMINATING


def test_delete_of_unknown_mid_is_2_02_and_changes_nothing(harness: Harness):
    before = harness.dump()
    assert harness.delete(999).code == "2.02"
    assert harness.dump() == before and harness.events == []


def test_get_all_is_4_04_when_the_client_has_none(harness: Harness):
    assert harness.get().code == "4.04"


def test_get_filters_and_content_selection(tmp_path: Path):
    aliases = StaticAliasDirectory(
        {"alpha": {"dns": Targets(target_prefixes=(ipaddress.ip_network("192.0.2.53/32"),))}}
    )
    h = make_harness(tmp_path, aliases=aliases)
    h.put(1, scope_body(target_prefix=[HOST1], target_protocol=[6], target_port_range=[{"lower-port": 443}]))
    h.put(2, scope_body(target_prefix=[HOST2], target_protocol=[17]))
    h.put(3, scope_body(target_fqdn=["shop.alpha.example"]))
    h.put(4, scope_body(target_uri=["https://portal.example.net/login"]))
    h.put(5, scope_body(alias_name=["dns"]))

    def mids(*query: str) -> list[int] | str:
        response = h.get(query=query)
        return response.code if response.code != "2.05" else [e["mid"] for e in response.body[SCOPE]["scope"]]

    assert mids() == [1, 2, 3, 4, 5]
    assert mids("target-prefix=2001:db8:6401::/64") == [1, 2]
    assert mids("target-prefix=2001:db8:6401::2/128") == [2]
    assert mids("target-protocol=17") == [2, 3, 4, 5]  # an unrestricted protocol matches any
    assert mids("target-prefix=2001:db8:6401::/64", "target-protocol=0-10") == [1]
    assert mids("target-port=400-500", "target-prefix=2001:db8:6401::/64") == [1, 2]
    assert mids("target-fqdn=*.alpha.example") == [3]
    assert mids("target-uri=https://portal.example.net/login") == [4]
    assert mids("alias-name=dns,other") == [5]
    assert mids("mid=2-4") == [2, 3, 4]
    assert mids("target-prefix=198.51.100.0/24") == "4.04"
    config_only = h.get(1, query=("c=c",)).body[SCOPE]["scope"][0]
    assert set(config_only) == {"mid", "target-prefix", "target-protocol", "target-port-range", "lifetime"}
    state_only = h.get(1, query=("c=n",)).body[SCOPE]["scope"][0]
    assert set(state_only) == {"mid", "mitigation-start", "status"}


def test_efficacy_update_refreshes_with_a_lifetime(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=[HOST1], lifetime=100)).code == "2.01"
    harness.advance(50)
    body = scope_body(target_prefix=[HOST1], lifetime=200, attack_status="attack-successfully-mitigated")
    response = harness.put(1, body, if_match_empty=True)
    assert response.code == "2.04" and response.body[SCOPE]["scope"][0]["lifetime"] == 200
    assert harness.dump()["signal_mitigations"][0][-1] == 2


def test_preconfigured_request_waits_with_status_8(harness: Harness):
    body = scope_body(target_prefix=["2001:db8:6401::/64"], trigger_mitigation=False, lifetime=-1)
    assert harness.put(1, body).code == "2.01"
    assert not [e for e in harness.events if isinstance(e, MitigationActivated)]
    got = entry(harness, 1)
    assert got["status"] == "attack-mitigation-signal-loss" and "mitigation-start" not in got
    # An immediate request overlapping a waiting preconfigured one does not replace it.
    assert harness.put(2, scope_body(target_prefix=[HOST1])).code == "2.01"
    assert [e["mid"] for e in harness.get().body[SCOPE]["scope"]] == [1, 2]
    # Deleting a waiting preconfigured request removes it at once (nothing is being enforced).
    assert harness.delete(1).code == "2.02"
    assert harness.get(1).code == "4.04"


def test_immediate_request_deactivates_a_triggered_preconfigured_one(tmp_path: Path):
    harness = make_harness(tmp_path)  # default heartbeat: 30 s x 15 missing before the session is lost
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::/64"], trigger_mitigation=False)).code == "2.01"
    events = harness.advance(30 * 15)  # no traffic: the session is lost, the preconfigured request fires
    assert "MitigationActivated" in kinds(events)
    assert entry(harness, 1)["status"] == "attack-mitigation-in-progress"
    assert harness.put(2, scope_body(target_prefix=[HOST1])).code == "2.01"
    withdrawn = [e for e in harness.events if isinstance(e, MitigationWithdrawn)]
    assert [(w.mid, w.reason) for w in withdrawn] == [(1, "server")]
    notices = [e.snapshot[SCOPE]["scope"][0]["status"] for e in harness.events if isinstance(e, MitigationChanged)]
    assert "attack-mitigation-withdrawn" in notices
    assert entry(harness, 1)["status"] == "attack-mitigation-signal-loss"


def test_conflict_with_another_clients_active_mitigation_is_refused(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=["192.0.2.0/26"], lifetime=500)).code == "2.01"
    harness.advance(100)
    before = harness.dump()
    response = harness.put(9, scope_body(target_prefix=["192.0.2.0/24"]), cuid=BRAVO_CUID, peer=BRAVO)
    assert response.code == "4.09"
    info = response.body[SCOPE]["scope"][0]["conflict-information"]
    assert info == {
        "conflict-status": "request-inactive-other-active",
        "conflict-cause": "overlapping-targets",
        "retry-timer": 400,
        "conflict-scope": {"target-prefix": ["192.0.2.0/26"]},
    }
    assert "mid" not in info["conflict-scope"]  # never reveal the other client's identifiers
    assert harness.dump() == before


def test_conflict_policy_accept_answers_2_01_with_conflict_status_2(tmp_path: Path):
    h = make_harness(tmp_path, cross_client_conflicts="accept")
    assert h.put(1, scope_body(target_prefix=["192.0.2.0/26"])).code == "2.01"
    response = h.put(9, scope_body(target_prefix=["192.0.2.0/25"]), cuid=BRAVO_CUID, peer=BRAVO)
    assert response.code == "2.01"
    assert response.body[SCOPE]["scope"][0]["conflict-information"]["conflict-status"] == "request-active"
    assert h.get(9, cuid=BRAVO_CUID, peer=BRAVO).body[SCOPE]["scope"][0]["conflict-information"]


def test_alias_change_seen_at_refresh_updates_the_mitigator(tmp_path: Path):
    table = {"alpha": {"web": Targets(target_prefixes=(ipaddress.ip_network("192.0.2.0/28"),))}}
    h = make_harness(tmp_path, aliases=StaticAliasDirectory(table))
    body = scope_body(alias_name=["web"])
    assert h.put(1, body).code == "2.01"
    table["alpha"]["web"] = Targets(target_prefixes=(ipaddress.ip_network("192.0.2.16/28"),))
    assert h.put(1, body).code == "2.04"
    (updated,) = [e for e in h.events if isinstance(e, MitigationUpdated)]
    assert [str(p) for p in updated.scope.target_prefixes] == ["192.0.2.16/28"]


def test_mitigator_feedback_ignores_unknown_or_withdrawn(harness: Harness):
    assert harness.report_status("nope/1", Status.ATTACK_STOPPED) == []
    assert harness.put(1, scope_body(target_prefix=[HOST1])).code == "2.01"
    harness.delete(1)
    assert harness.report_status(f"{ALPHA_CUID}/1", Status.ATTACK_STOPPED) == []


def test_capacity_limits_answer_5_03_without_storing(tmp_path: Path):
    h = make_harness(tmp_path, max_mitigations_per_client=2, max_cuids_per_client=2)
    assert h.put(1, scope_body(target_prefix=[HOST1])).code == "2.01"
    assert h.put(2, scope_body(target_prefix=[HOST2])).code == "2.01"
    before = h.dump()
    assert h.put(3, scope_body(target_prefix=["192.0.2.0/28"])).code == "5.03"
    assert h.put(1, scope_body(target_prefix=[HOST1])).code == "2.04"  # refreshing stays possible
    h.delete(2)
    h.advance(ACTIVE_BUT_TERMINATING)
    assert h.put(1, scope_body(target_prefix=["192.0.2.0/28"]), cuid="second-alpha-cuid-0000").code == "2.01"
    assert h.put(1, scope_body(target_prefix=["192.0.2.64/28"]), cuid="third-alpha-cuid-00000").code == "5.03"
    assert before != h.dump()


def test_expiry_fires_once_even_after_many_updates(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=[HOST1], lifetime=100)).code == "2.01"
    for status in (Status.ATTACK_SUCCESSFULLY_MITIGATED, Status.ATTACK_STOPPED, Status.ATTACK_SUCCESSFULLY_MITIGATED):
        harness.report_status(f"{ALPHA_CUID}/1", status)
    assert harness.put(1, scope_body(target_prefix=[HOST1], lifetime=100)).code == "2.04"
    assert kinds(harness.advance(100)) == ["MitigationExpired", "MitigationChanged"]
    assert harness.server.next_timer() is None


def test_expiry_is_retried_when_the_store_fails(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=[HOST1], lifetime=100)).code == "2.01"
    connection = harness.store.database.connection
    connection.execute("PRAGMA query_only = ON")
    assert harness.advance(150) == []
    assert harness.get(1).code == "2.05"  # still held: nothing was deleted
    connection.execute("PRAGMA query_only = OFF")
    assert harness.server.next_timer() == harness.now + 1  # retried a second after the failure, not in a loop
    assert kinds(harness.advance(1)) == ["MitigationExpired", "MitigationChanged"]
    assert harness.dump()["signal_mitigations"] == []


def test_refresh_may_list_the_same_targets_in_another_order(harness: Harness):
    assert harness.put(1, scope_body(target_prefix=[HOST1, HOST2], target_protocol=[6, 17])).code == "2.01"
    assert harness.put(1, scope_body(target_prefix=[HOST2, HOST1], target_protocol=[17, 6])).code == "2.04"
    assert harness.put(1, scope_body(target_prefix=[HOST2], target_protocol=[17, 6])).code == "4.00"


def test_changed_counters_are_notified_and_unchanged_ones_are_not(harness: Harness):
    assert harness.put(4, scope_body(target_prefix=[HOST1])).code == "2.01"
    key = f"{ALPHA_CUID}/4"
    events = harness.report_counters(key, Counters(bytes_dropped=920, pkts_dropped=10))
    assert kinds(events) == ["MitigationChanged"]
    notified = events[0].snapshot[SCOPE]["scope"][0]
    assert (notified["bytes-dropped"], notified["pkts-dropped"]) == ("920", "10")
    assert "bps-dropped" not in notified  # not measured: never reported as zero
    assert harness.report_counters(key, Counters(bytes_dropped=920, pkts_dropped=10)) == []
    assert harness.report_counters("nope/1", Counters(bytes_dropped=1)) == []


def statuses(events) -> list[str]:
    return [e.snapshot[SCOPE]["scope"][0]["status"] for e in events if isinstance(e, MitigationChanged)]


def fired_preconfigured(tmp_path: Path) -> Harness:
    harness = make_harness(tmp_path)  # default heartbeat: 30 s x 15 missing before the session is lost
    assert harness.put(1, scope_body(target_prefix=["2001:db8:6401::/64"], trigger_mitigation=False)).code == "2.01"
    assert "MitigationActivated" in kinds(harness.advance(30 * 15))  # no traffic: lost, the request fires
    return harness


def test_a_stopped_preconfigured_request_announces_3_four_times_then_8(tmp_path: Path):
    """Table 3: for trigger-mitigation false, status 3 "will be transmitted four times and then transition to 8"."""
    harness = fired_preconfigured(tmp_path)
    first = harness.report_status(f"{ALPHA_CUID}/1", Status.ATTACK_STOPPED)
    assert statuses(first) == ["attack-stopped"] and "MitigationWithdrawn" in kinds(first)
    assert entry(harness, 1)["status"] == "attack-mitigation-signal-loss"  # what the request now is
    later = []
    for _ in range(3):
        later.append(statuses(harness.advance(2.0)))
    assert later == [["attack-stopped"], ["attack-stopped"], ["attack-stopped", "attack-mitigation-signal-loss"]]
    assert statuses(harness.advance(60)) == []  # announced, and nothing more


def test_a_preconfigured_request_withdrawn_for_an_immediate_one_announces_7_four_times_then_8(tmp_path: Path):
    harness = fired_preconfigured(tmp_path)
    assert harness.put(2, scope_body(target_prefix=[HOST1])).code == "2.01"
    assert statuses(harness.events).count("attack-mitigation-withdrawn") == 1
    seen = statuses(harness.advance(2.0)) + statuses(harness.advance(2.0)) + statuses(harness.advance(2.0))
    assert seen == ["attack-mitigation-withdrawn"] * 3 + ["attack-mitigation-signal-loss"]


def test_announcements_stop_when_the_request_is_deleted(tmp_path: Path):
    harness = fired_preconfigured(tmp_path)
    harness.report_status(f"{ALPHA_CUID}/1", Status.ATTACK_STOPPED)
    assert statuses(harness.advance(2.0)) == ["attack-stopped"]
    assert harness.delete(1).code == "2.02"
    assert statuses(harness.advance(10)) == []
    assert len(harness.server.mitigation_requests.announcements) == 0
