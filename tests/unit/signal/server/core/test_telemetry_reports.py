"""DOTS pre-or-ongoing-mitigation telemetry on the server core (RFC 9244 §8.2) and the telemetry attributes of
mitigation requests and efficacy updates (§9.1): every figure body accepted and read back, the tmid rules, the
Uri-Query filters, bad input refused with nothing stored, a restart, isolation between clients."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.config import ClientAuthorization
from opendots.domain.targets import parse_targets
from opendots.model import decode_telemetry, encode_signal, encode_telemetry, json_to_cbor
from opendots.signal.server.core import Response, ServerSettings
from opendots.signal.server.core.authorization import StaticAliasDirectory
from opendots.signal.server.core.events import TelemetryChanged
from opendots.signal.server.core.telemetry_config import SUPPORTED_QUERY_TYPES, TelemetryPolicy
from tests.helpers import FIXTURES
from tests.helpers.signal_harness import ALPHA_CUID, BRAVO, SCOPE, Harness, mitigate_path

TM = "ietf-dots-telemetry:telemetry"
PRE = "pre-or-ongoing-mitigation"
OTHER_CUID = "hmcpH87lmPGsSTjkhXCbin"  # a second DOTS client of alpha's domain

# The RFC's examples use 2001:db8::/32: here alpha's domain, with 192.0.2.0/24 and names for the filters.
ALPHA = ClientAuthorization(
    name="alpha",
    cuid=ALPHA_CUID,
    prefixes=(ipaddress.ip_network("2001:db8::/32"), ipaddress.ip_network("192.0.2.0/24")),
    fqdns=("www.example.com", "*.alpha.example"),
    uris=("https://portal.example.net/login",),
)
ALIASES = StaticAliasDirectory(
    {
        "alpha": {
            "https1": parse_targets({"target-prefix": ["2001:db8:6401::1/128"]}),
            "https2": parse_targets({"target-prefix": ["2001:db8:6401::2/128"]}),
        }
    }
)
G = {"low-percentile-g": "10", "mid-percentile-g": "20", "high-percentile-g": "30", "peak-g": "40", "current-g": "25"}


def figure(number: int, variant: str = "") -> dict[str, Any]:
    (path,) = (FIXTURES / "rfc9244").glob(f"fig{number:02d}-*{variant}.json")
    return json.loads(path.read_text())


def report(*entries: dict[str, Any]) -> dict[str, Any]:
    return {TM: {PRE: list(entries)}}


def attack(target: dict[str, Any], **more: Any) -> dict[str, Any]:
    """An entry with TARGET and a total-attack-traffic (so not a mere §8.3 request)."""
    return {"target": target, "total-attack-traffic": [{"unit": "megabit-ps", "mid-percentile-g": "900"}], **more}


def every_attribute() -> dict[str, Any]:
    """One entry with every §8.1 attribute a client may send (Figures 25-29)."""
    talker = {
        "spoofed-status": True,
        "source-prefix": "203.0.113.0/24",
        "source-port-range": [{"lower-port": 1024, "upper-port": 65535}],
        "source-icmp-type-range": [{"lower-type": 3, "upper-type": 4}],
        "total-attack-traffic": [{"unit": "megabit-ps", **G}],
        "total-attack-connection-protocol": [{"protocol": 6, "connection-c": G}],
    }
    detail = {
        "vendor-id": 32473,
        "attack-id": 77,
        "attack-description": "SYN flood",
        "attack-severity": "high",
        "start-time": "1608336568",
        "end-time": "1608336868",
        "source-count": G,
        "top-talker": {"talker": [talker, {"source-prefix": "198.51.100.7/32", "spoofed-status": False}]},
    }
    connections = {"connection-c": G, "embryonic-c": G, "connection-ps-c": G, "request-ps-c": G, "partial-request-c": G}
    return report(
        {
            "target": {
                "target-prefix": ["2001:db8::1/128"],
                "target-port-range": [{"lower-port": 443}],
                "target-protocol": [6],
            },
            "total-traffic": [{"unit": "megabit-ps", **G}],
            "total-traffic-protocol": [{"unit": "megabit-ps", "protocol": 6, **G}],
            "total-traffic-port": [{"unit": "megabit-ps", "port": 443, **G}],
            "total-attack-traffic": [{"unit": "megabit-ps", **G}],
            "total-attack-traffic-protocol": [{"unit": "megabit-ps", "protocol": 6, **G}],
            "total-attack-traffic-port": [{"unit": "megabit-ps", "port": 443, **G}],
            "total-attack-connection-protocol": [{"protocol": 6, **connections}],
            "total-attack-connection-port": [{"protocol": 6, "port": 443, "connection-c": G}],
            "attack-detail": [detail],
        }
    )


def talkers(count: int) -> dict[str, Any]:
    listed = [{"source-prefix": f"10.{i // 256}.{i % 256}.0/24"} for i in range(count)]
    return report(
        {
            "target": {"target-prefix": ["2001:db8::1/128"]},
            "attack-detail": [{"vendor-id": 32473, "attack-id": 1, "top-talker": {"talker": listed}}],
        }
    )


def with_tmid(body: dict[str, Any], *tmids: int) -> dict[str, Any]:
    """BODY as a GET answers it: 'tmid' first in each entry (RFC 9244 Figure 43)."""
    entries = body[TM][PRE]
    return report(*({"tmid": tmid, **entry} for tmid, entry in zip(tmids, entries, strict=True)))


def path(tmid: int | None = None, cuid: str = ALPHA_CUID) -> tuple[str, ...]:
    return ("tm", f"cuid={cuid}", *((f"tmid={tmid}",) if tmid is not None else ()))


def make(tmp_path: Path, **policy: Any) -> Harness:
    settings = ServerSettings(clients=[ALPHA, BRAVO], aliases=ALIASES, telemetry=TelemetryPolicy(**policy))
    return Harness(tmp_path / "signal.db", settings)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make(tmp_path)


def put(harness: Harness, tmid: int | None, body: Any, cuid: str = ALPHA_CUID, peer: Any = ALPHA) -> Response:
    # As the CoAP shell does: CBOR bytes, not validated here, so what the data model refuses reaches the core.
    payload = body if isinstance(body, bytes) else cbor2.dumps(json_to_cbor(body))
    return harness.request("PUT", path(tmid, cuid), peer, payload=payload)


def get(harness: Harness, tmid: int | None = None, cuid: str = ALPHA_CUID, peer: Any = ALPHA, **kw: Any) -> Response:
    response = harness.request("GET", path(tmid, cuid), peer, **kw)
    if response.body is not None:  # every body the server answers is valid ietf-dots-telemetry, and survives CBOR
        assert decode_telemetry(encode_telemetry(response.body)) == response.body
    return response


def reports(harness: Harness) -> list[tuple[Any, ...]]:
    return harness.dump()["signal_telemetry_reports"]


# --- every figure body (§8.2, §8.3) ------------------------------------------------------------------


def test_figure_36_pre_or_ongoing_mitigation_telemetry_is_accepted_with_2_04_and_read_back_equal_rfc9244_8_2(
    harness: Harness,
) -> None:
    assert put(harness, 123, figure(36)).code == "2.04"  # §8.2: 2.04 when accepted
    expected = with_tmid(figure(36), 123)
    assert get(harness, 123).body == expected
    assert get(harness).body == expected
    assert harness.events == []  # a GET changes nothing
    assert [row[:2] for row in reports(harness)] == [(ALPHA_CUID, 123)]


def test_figure_43_body_without_its_tmid_is_accepted_and_read_back_as_figure_43_rfc9244_8_3(
    harness: Harness,
) -> None:
    sent = copy.deepcopy(figure(43, "fixed"))
    del sent[TM][PRE][0]["tmid"]
    assert put(harness, 567, sent).code == "2.04"
    assert get(harness, 567).body == figure(43, "fixed")


def test_figure_39_target_only_request_is_kept_like_a_report_rfc9244_8_3(harness: Harness) -> None:
    assert put(harness, 567, figure(39)).code == "2.04"
    assert get(harness, 567).body == with_tmid(figure(39), 567)


def test_every_pre_or_ongoing_mitigation_attribute_is_accepted_and_read_back_equal_rfc9244_8_1(
    harness: Harness,
) -> None:
    assert put(harness, 1, every_attribute()).code == "2.04"
    assert get(harness, 1).body == with_tmid(every_attribute(), 1)


def test_several_entries_in_one_put_are_kept_together_under_one_tmid_rfc9244_8_3(harness: Harness) -> None:
    body = report(attack({"target-prefix": ["2001:db8::1/128"]}), attack({"target-fqdn": ["www.example.com"]}))
    assert put(harness, 9, body).code == "2.04"
    assert get(harness, 9).body == with_tmid(body, 9, 9)


def test_a_put_or_delete_tells_the_clients_tm_observers_rfc9244_8_2(harness: Harness) -> None:
    put(harness, 1, figure(36))
    assert harness.events == [TelemetryChanged("alpha", ALPHA_CUID)]
    harness.request("DELETE", path(1), ALPHA)
    assert harness.events == [TelemetryChanged("alpha", ALPHA_CUID)]
    harness.request("DELETE", path(1), ALPHA)  # nothing left to delete: nobody to tell
    assert harness.events == []


# --- tmid rules (§8.2) -----------------------------------------------------------------------------


def test_a_higher_tmid_with_an_overlapping_target_deletes_the_lower_one_rfc9244_8_2(harness: Harness) -> None:
    put(harness, 1, report(attack({"target-prefix": ["2001:db8::/64"]})))
    put(harness, 2, report(attack({"target-prefix": ["192.0.2.0/25"]})))
    assert put(harness, 3, report(attack({"target-prefix": ["2001:db8::1/128"]}))).code == "2.04"
    assert get(harness, 1).code == "4.04"  # overlapped: "automatically deleted and no longer available"
    assert get(harness, 2).code == "2.05"  # no common address: kept
    assert [row[1] for row in reports(harness)] == [2, 3]


def test_overlap_is_by_name_and_alias_as_well_as_address_rfc9244_8_2(harness: Harness) -> None:
    put(harness, 1, report(attack({"target-fqdn": ["www.example.com"]})))
    put(harness, 2, report(attack({"alias-name": ["https1"]})))
    put(harness, 3, report(attack({"target-prefix": ["2001:db8:6401::1/128"]})))  # what https1 names
    put(harness, 4, report(attack({"target-fqdn": ["www.example.com"]})))
    assert [row[1] for row in reports(harness)] == [3, 4]


def test_the_same_tmid_again_replaces_its_telemetry_rfc9244_8_2(harness: Harness) -> None:
    put(harness, 5, figure(36))
    assert put(harness, 5, every_attribute()).code == "2.04"
    assert get(harness, 5).body == with_tmid(every_attribute(), 5)


def test_a_new_tmid_below_the_newest_is_refused_and_nothing_stored_rfc9244_8_2(harness: Harness) -> None:
    put(harness, 10, report(attack({"target-prefix": ["2001:db8::1/128"]})))
    before = harness.dump()
    response = put(harness, 9, report(attack({"target-prefix": ["192.0.2.1/32"]})))
    assert (response.code, "tmid=10" in (response.diagnostic or "")) == ("4.00", True)
    assert harness.dump() == before


def test_a_put_without_tmid_is_refused_rfc9244_8_2(harness: Harness) -> None:
    assert put(harness, None, figure(36)).code == "4.00"
    assert reports(harness) == []


def test_tmid_must_come_after_cuid_and_be_a_uint32_rfc9244_8_2(harness: Harness) -> None:
    payload = cbor2.dumps(json_to_cbor(figure(36)))
    for bad in (("tm", "tmid=1", f"cuid={ALPHA_CUID}"), ("tm", f"cuid={ALPHA_CUID}", "tmid=-1")):
        assert harness.request("PUT", bad, ALPHA, payload=payload).code == "4.00"
    assert (
        harness.request("PUT", ("tm", f"cuid={ALPHA_CUID}", "tmid=4294967296"), ALPHA, payload=payload).code == "4.00"
    )
    assert reports(harness) == []


# --- DELETE (§8.2 Figures 37, 38) --------------------------------------------------------------------


def test_figure_37_deletes_one_tmid_and_figure_38_every_tmid_rfc9244_8_2(harness: Harness) -> None:
    put(harness, 123, figure(36))
    put(harness, 124, report(attack({"target-prefix": ["192.0.2.0/24"]})))
    put(harness, 1, report(attack({"target-prefix": ["192.0.2.0/24"]})), cuid=OTHER_CUID)
    assert harness.request("DELETE", path(123), ALPHA).code == "2.02"
    assert get(harness, 123).code == "4.04"
    assert get(harness).body == with_tmid(report(attack({"target-prefix": ["192.0.2.0/24"]})), 124)
    assert harness.request("DELETE", path(), ALPHA).code == "2.02"
    assert get(harness).code == "4.04"
    assert [row[:2] for row in reports(harness)] == [(OTHER_CUID, 1)]  # the other cuid's stay


# --- Uri-Query filters (§8.3, the same as GET /mitigate) ---------------------------------------------


@pytest.fixture
def filtered(harness: Harness) -> Harness:
    put(harness, 1, report(attack({"target-prefix": ["2001:db8::1/128"], "target-protocol": [17]})))
    put(
        harness,
        2,
        report(
            attack(
                {"target-prefix": ["192.0.2.0/28"], "target-port-range": [{"lower-port": 443}], "target-protocol": [6]}
            )
        ),
    )
    put(harness, 3, report(attack({"target-fqdn": ["a.alpha.example"]}), attack({"alias-name": ["https2"]})))
    put(harness, 4, report(attack({"target-uri": ["https://portal.example.net/login"]})))
    harness.put(7, {SCOPE: {"scope": [{"target-prefix": ["192.0.2.128/32"], "lifetime": 3600}]}})
    put(harness, 5, report(attack({"mid-list": [7]})))
    return harness


def selected(harness: Harness, *query: str, tmid: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    response = get(harness, tmid, query=query)
    if response.code == "4.04":
        return []
    assert response.code == "2.05", response.diagnostic
    return [(entry["tmid"], entry["target"]) for entry in response.body[TM][PRE]]


@pytest.mark.parametrize(
    ("query", "tmids"),
    [
        (("target-prefix=2001:db8::/32",), [1, 3]),  # 3's second entry: alias https2 is 2001:db8:6401::2
        (("target-prefix=192.0.2.0/24",), [2, 5]),  # 5 names mid=7, which protects 192.0.2.128
        (("target-prefix=192.0.2.5,2001:db8::1",), [1, 2]),
        (("target-protocol=17",), [1, 3, 3, 4, 5]),  # an entry without target-protocol matches any protocol
        (("target-protocol=6-10", "target-port=400-500"), [2, 3, 3, 4, 5]),
        (("target-fqdn=*.alpha.example",), [3]),
        (("target-uri=https://portal.example.net/login",), [4]),
        (("alias-name=https2",), [3]),
        (("mid=5-9",), [5]),
        (("mid=8",), []),
        (("target-prefix=198.51.100.0/24",), []),
    ],
)
def test_uri_query_filters_select_entries_rfc9244_8_3(
    filtered: Harness, query: tuple[str, ...], tmids: list[int]
) -> None:
    assert [tmid for tmid, _ in selected(filtered, *query)] == tmids


def test_a_filter_applies_to_the_entries_of_one_tmid_too_rfc9244_8_3(filtered: Harness) -> None:
    assert selected(filtered, "alias-name=https2", tmid=3) == [(3, {"alias-name": ["https2"]})]
    assert selected(filtered, "alias-name=https2", tmid=1) == []


def test_content_n_leaves_tmid_and_target_and_c_everything_rfc9244_5_4(filtered: Harness) -> None:
    body = get(filtered, 1, query=("c=n",)).body
    assert body == report({"tmid": 1, "target": {"target-prefix": ["2001:db8::1/128"], "target-protocol": [17]}})
    assert get(filtered, 1, query=("c=c",)).body == get(filtered, 1).body


@pytest.mark.parametrize(
    "query",
    [("source-prefix=203.0.113.0/24",), ("target-port=70000",), ("c=x",), ("target-fqdn=a.*.example",), ("mid",)],
)
def test_unsupported_or_malformed_uri_query_gets_4_00_rfc9244_8_3(filtered: Harness, query: tuple[str, ...]) -> None:
    assert get(filtered, query=query).code == "4.00"


def test_tm_setup_get_announces_the_query_types_tm_supports_rfc9244_7_1_1(harness: Harness) -> None:
    body = harness.request("GET", ("tm-setup", f"cuid={ALPHA_CUID}"), ALPHA, query=("c=n",)).body
    assert body["ietf-dots-telemetry:telemetry-setup"]["supported-query-type"] == list(SUPPORTED_QUERY_TYPES)
    put(harness, 1, figure(36))
    names = {"target-alias": "alias-name", "content": "c"}
    values = {"target-prefix": "2001:db8::/32", "target-port": "1-65535", "target-protocol": "0-255", "mid": "0-9"}
    for kind in SUPPORTED_QUERY_TYPES:  # every type announced is understood (not 4.00)
        assert get(harness, query=(f"{names.get(kind, kind)}={values.get(kind, 'a')}",)).code in ("2.05", "4.04")


# --- bad input: refused, nothing stored ----------------------------------------------------------------


def test_a_target_outside_the_clients_domain_is_refused_and_nothing_stored_rfc9244_8_2(harness: Harness) -> None:
    for target in ({"target-prefix": ["198.51.100.0/24"]}, {"target-fqdn": ["www.bravo.example"]}):
        response = put(harness, 1, report(attack(target)))
        assert response.code == "4.00", target
    assert reports(harness) == []


def test_thousands_of_top_talkers_are_refused_by_the_cap_with_4_22_rfc9244_8_1_5(harness: Harness) -> None:
    response = put(harness, 1, talkers(3000))
    assert (response.code, "at most 256" in (response.diagnostic or "")) == ("4.22", True)
    assert reports(harness) == []
    assert put(harness, 1, talkers(256)).code == "2.04"  # the cap itself is allowed


def test_the_top_talker_cap_is_configurable_rfc9244_8_1_5(tmp_path: Path) -> None:
    harness = make(tmp_path, max_top_talkers=10)
    assert put(harness, 1, talkers(11)).code == "4.22"
    assert put(harness, 1, talkers(10)).code == "2.04"


def test_more_reports_than_the_cap_get_5_03_with_max_age_and_a_replacing_one_still_goes_rfc9244_8_2(
    tmp_path: Path,
) -> None:
    harness = make(tmp_path, max_reports_per_client=2)
    put(harness, 1, report(attack({"target-prefix": ["192.0.2.1/32"]})))
    put(harness, 2, report(attack({"target-prefix": ["192.0.2.2/32"]})), cuid=OTHER_CUID)  # counted per client
    before = harness.dump()
    response = put(harness, 3, report(attack({"target-prefix": ["192.0.2.3/32"]})))
    assert (response.code, response.max_age is not None) == ("5.03", True)
    assert harness.dump() == before
    assert put(harness, 3, report(attack({"target-prefix": ["192.0.2.1/32"]}))).code == "2.04"  # replaces tmid=1
    assert put(harness, 3, report(attack({"target-prefix": ["192.0.2.9/32"]}))).code == "2.04"  # same tmid


@pytest.mark.parametrize(
    "body",
    [
        figure(43, "fixed"),  # 'tmid' is server-to-client only
        figure(43, "verbatim-invalid"),  # the RFC's figure itself: 'target-protocol' outside 'target'
        report(),
        report({"total-attack-traffic": [{"unit": "megabit-ps", "mid-percentile-g": "900"}]}),  # no target
        report(attack({"target-port-range": [{"lower-port": 80}]})),  # no target-prefix/fqdn/uri/alias/mid-list
        report(attack({"alias-name": ["nosuchalias"]})),
        report(attack({"mid-list": [99]})),  # no such mitigation of this client
        {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"current-config": {"measurement-sample": "second"}}]}},
        {SCOPE: {"scope": [{"target-prefix": ["2001:db8::1/128"], "lifetime": 3600}]}},
        report(attack({"target-prefix": ["2001:db8::1/128", "2001:db8::1/128"]})),  # a leaf-list repeats a value
    ],
)
def test_bad_bodies_get_4_00_and_nothing_is_stored_rfc9244_8_2(harness: Harness, body: dict[str, Any]) -> None:
    payload = encode_signal(body, validate=False) if SCOPE in body else cbor2.dumps(json_to_cbor(body))
    assert put(harness, 1, payload).code == "4.00"
    assert reports(harness) == []


def test_a_put_without_body_and_other_methods_are_refused(harness: Harness) -> None:
    assert harness.request("PUT", path(1), ALPHA).code == "4.00"
    assert harness.request("POST", path(1), ALPHA).code == "4.05"
    assert reports(harness) == []


# --- restart, isolation -----------------------------------------------------------------------------


def test_reports_survive_a_restart_and_their_rules_still_hold_rfc9244_8_2(harness: Harness) -> None:
    harness.put(7, {SCOPE: {"scope": [{"target-prefix": ["192.0.2.128/32"], "lifetime": 3600}]}})
    put(harness, 1, report(attack({"alias-name": ["https1"]})))
    put(harness, 2, every_attribute())
    put(harness, 3, report(attack({"mid-list": [7]})))
    before = get(harness).body
    harness.restart()
    assert get(harness).body == before
    assert put(harness, 0, figure(36)).code == "4.00"  # below tmid=3, as before the restart
    put(harness, 4, report(attack({"target-prefix": ["2001:db8:6401::1/128"]})))  # overlaps https1 (tmid=1)
    put(harness, 5, report(attack({"target-prefix": ["192.0.2.128/32"]})))  # overlaps mid=7 (tmid=3)
    assert [row[1] for row in reports(harness)] == [2, 4, 5]


def test_a_client_never_sees_or_changes_another_clients_reports(harness: Harness) -> None:
    put(harness, 1, report(attack({"target-prefix": ["192.0.2.1/32"]})))
    assert get(harness, peer=BRAVO).code == "4.04"
    assert get(harness, 1, peer=BRAVO).code == "4.04"
    assert put(harness, 2, report(attack({"target-prefix": ["192.0.2.1/32"]})), peer=BRAVO).code == "4.09"
    assert harness.request("DELETE", path(), BRAVO).code == "2.02"
    assert get(harness, 1).code == "2.05"
    # Bravo's own cuid, same addresses (both may protect 192.0.2.0/24): no overlap across clients.
    assert (
        put(harness, 1, report(attack({"target-prefix": ["192.0.2.1/32"]})), cuid=BRAVO.cuid, peer=BRAVO).code == "2.04"
    )
    assert put(harness, 1, report(attack({"target-prefix": ["192.0.2.1/32"]}))).code == "2.04"
    assert len(reports(harness)) == 2
    assert harness.request("GET", path(), None).code == "4.01"


# --- §9.1: telemetry attributes of mitigation requests and efficacy updates ----------------------------

SCOPE_TELEMETRY = {
    "ietf-dots-telemetry:total-attack-traffic": [{"unit": "megabit-ps", "mid-percentile-g": "900"}],
    "ietf-dots-telemetry:attack-detail": [
        {
            "vendor-id": 32473,
            "attack-id": 77,
            "attack-severity": "high",
            "top-talker": {"talker": [{"source-prefix": "203.0.113.0/24", "spoofed-status": False}]},
        }
    ],
}


def stored_request(harness: Harness, mid: int) -> dict[str, Any]:
    (row,) = [row for row in harness.dump()["signal_mitigations"] if row[1] == mid]
    return json.loads(row[4])


def test_figure_45_efficacy_update_with_telemetry_is_accepted_and_its_telemetry_stored_rfc9244_9_1(
    harness: Harness,
) -> None:
    assert harness.put(123, {SCOPE: {"scope": [{"alias-name": ["https1", "https2"], "lifetime": 3600}]}}).code == "2.01"
    assert harness.put(123, figure(45), if_match_empty=True).code == "2.04"
    stored = stored_request(harness, 123)
    assert stored["ietf-dots-telemetry:total-attack-traffic"] == [{"unit": "megabit-ps", "mid-percentile-g": "900"}]
    assert stored["alias-name"] == ["https1", "https2"] and stored["lifetime"] == 3600  # the request is kept
    (entry,) = harness.get(123).body[SCOPE]["scope"]
    assert not any(name.startswith("ietf-dots-telemetry:") for name in entry)  # not replayed as server telemetry
    harness.restart()
    assert stored_request(harness, 123) == stored


def test_a_mitigation_request_with_telemetry_attributes_gets_2_01_and_keeps_them_rfc9244_9_1(
    harness: Harness,
) -> None:
    body = {SCOPE: {"scope": [{"target-prefix": ["2001:db8::1/128"], "lifetime": 3600, **SCOPE_TELEMETRY}]}}
    assert harness.put(1, body).code == "2.01"
    assert {k: v for k, v in stored_request(harness, 1).items() if k in SCOPE_TELEMETRY} == SCOPE_TELEMETRY
    assert harness.put(1, body).code == "2.04"  # a refresh repeating them is still a refresh


def test_a_mitigation_request_with_too_many_top_talkers_gets_4_22_and_nothing_stored_rfc9244_9_1(
    tmp_path: Path,
) -> None:
    harness = make(tmp_path, max_top_talkers=1)
    detail = copy.deepcopy(SCOPE_TELEMETRY["ietf-dots-telemetry:attack-detail"])
    detail[0]["top-talker"]["talker"].append({"source-prefix": "203.0.114.0/24"})
    entry = {"target-prefix": ["2001:db8::1/128"], "lifetime": 3600, "ietf-dots-telemetry:attack-detail": detail}
    assert harness.put(1, {SCOPE: {"scope": [entry]}}).code == "4.22"
    assert harness.dump()["signal_mitigations"] == []
    assert harness.request("GET", mitigate_path(), ALPHA).code == "4.04"


def test_figure_45_telemetry_in_a_new_mitigation_request_gets_2_01_rfc9244_9_1(harness: Harness) -> None:
    body = figure(45)
    (entry,) = body[SCOPE]["scope"]
    del entry["attack-status"]  # an efficacy update's member (RFC 9132 §4.4.3); a new request has a lifetime
    entry["lifetime"] = 3600
    assert harness.put(123, body).code == "2.01"
    assert stored_request(harness, 123)["ietf-dots-telemetry:total-attack-traffic"] == [
        {"unit": "megabit-ps", "mid-percentile-g": "900"}
    ]


def test_an_efficacy_update_without_telemetry_keeps_the_last_one_and_a_refresh_replaces_it_rfc9244_9_1(
    harness: Harness,
) -> None:
    request = {SCOPE: {"scope": [{"target-prefix": ["2001:db8::1/128"], "lifetime": 3600, **SCOPE_TELEMETRY}]}}
    harness.put(1, request)
    update = {SCOPE: {"scope": [{"target-prefix": ["2001:db8::1/128"], "attack-status": "under-attack"}]}}
    assert harness.put(1, update, if_match_empty=True).code == "2.04"
    assert {k: v for k, v in stored_request(harness, 1).items() if k in SCOPE_TELEMETRY} == SCOPE_TELEMETRY
    traffic = {"ietf-dots-telemetry:total-attack-traffic": [{"unit": "megabit-ps", "peak-g": "5"}]}
    refresh = {SCOPE: {"scope": [{"target-prefix": ["2001:db8::1/128"], "lifetime": 3600, **traffic}]}}
    assert harness.put(1, refresh).code == "2.04"
    assert {k: v for k, v in stored_request(harness, 1).items() if k in SCOPE_TELEMETRY} == traffic


def test_clients_of_one_domain_may_report_on_the_same_target_without_conflict_rfc9244_8_3(harness: Harness) -> None:
    body = report(attack({"target-prefix": ["2001:db8::1/128"]}))
    assert put(harness, 1, body).code == "2.04"
    assert put(harness, 7, body, cuid=OTHER_CUID).code == "2.04"
    assert [row[:2] for row in reports(harness)] == [(ALPHA_CUID, 1), (OTHER_CUID, 7)]
