"""Bad requests get the right code and a diagnostic, and change nothing in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opendots.signal.server.core import Request
from tests.helpers.signal_harness import (
    ALPHA,
    ALPHA_CUID,
    BRAVO,
    BRAVO_CUID,
    CONFIG,
    SCOPE,
    Harness,
    figure,
    make_harness,
    mitigate_path,
    scope_body,
)

GOOD = ["2001:db8:6401::1/128"]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = make_harness(tmp_path)
    # Some state to protect: a mitigation with a high mid, a session configuration, bravo's mitigation.
    assert h.put(100, scope_body(target_prefix=GOOD, target_protocol=[6])).code == "2.01"
    assert h.request("PUT", ("config", "sid=10"), body=figure("figure23")).code == "2.01"
    assert h.put(1, scope_body(target_prefix=["198.51.100.0/28"]), cuid=BRAVO_CUID, peer=BRAVO).code == "2.01"
    return h


def _put(members: dict[str, Any], mid: int = 200, cuid: str = ALPHA_CUID) -> Request:
    return Request("PUT", mitigate_path(cuid, mid), peer=ALPHA_CUID, body=scope_body(**members))


def _cfg(set_name: str, parameter: str, value: Any, sid: int = 11) -> Request:
    key = "current-value-decimal" if parameter in ("ack-timeout", "ack-random-factor") else "current-value"
    holder = value if isinstance(value, dict) else {key: value}
    return Request("PUT", ("config", f"sid={sid}"), peer=ALPHA_CUID, body={CONFIG: {set_name: {parameter: holder}}})


def _raw(method: str, path: tuple[str, ...], body: Any = None, peer: str | None = ALPHA_CUID, **kw: Any) -> Request:
    return Request(method, path, peer=peer, body=body, **kw)


CASES: list[tuple[str, Request, str]] = [
    ("unknown client", _raw("GET", mitigate_path(), peer="nobody-knows-this-cuid"), "4.01"),
    ("no client identity", _raw("GET", mitigate_path(), peer=None), "4.01"),
    ("foreign cuid PUT", _put({"target-prefix": GOOD}, cuid=BRAVO_CUID), "4.09"),
    ("lower mid overlapping", _put({"target-prefix": GOOD, "target-protocol": [6]}, mid=99), "4.09"),
    ("replayed mid, changed scope", _put({"target-prefix": GOOD, "target-protocol": [17]}, mid=100), "4.00"),
    ("cuid in body", _put({"target-prefix": GOOD, "cuid": ALPHA_CUID}), "4.00"),
    ("mid in body", _put({"target-prefix": GOOD, "mid": 5}), "4.00"),
    ("cdid in body", _put({"target-prefix": GOOD, "cdid": "x"}), "4.00"),
    ("status in body", _put({"target-prefix": GOOD, "status": "attack-stopped"}), "4.00"),
    ("unknown member", _put({"target-prefix": GOOD, "colour": "red"}), "4.00"),
    ("lifetime 0", _put({"target-prefix": GOOD, "lifetime": 0}), "4.00"),
    ("lifetime -2", _put({"target-prefix": GOOD, "lifetime": -2}), "4.00"),
    ("lifetime too big", _put({"target-prefix": GOOD, "lifetime": 2**32}), "4.00"),
    ("lifetime not int", _put({"target-prefix": GOOD, "lifetime": "3600"}), "4.00"),
    ("no lifetime", Request("PUT", mitigate_path(mid=200), peer=ALPHA_CUID, body=figure("figure16")), "4.00"),
    ("no target", _put({"target-protocol": [6]}), "4.00"),
    ("empty prefix list", _put({"target-prefix": []}), "4.00"),
    ("bad prefix", _put({"target-prefix": ["2001:db8:6401::1/129"]}), "4.00"),
    ("host bits set", _put({"target-prefix": ["192.0.2.1/24"]}), "4.00"),
    ("loopback", _put({"target-prefix": ["127.0.0.1/32"]}), "4.00"),
    ("multicast", _put({"target-prefix": ["ff02::1/128"]}), "4.00"),
    ("port 70000", _put({"target-prefix": GOOD, "target-port-range": [{"lower-port": 70000}]}), "4.00"),
    ("upper<lower", _put({"target-prefix": GOOD, "target-port-range": [{"lower-port": 9, "upper-port": 8}]}), "4.00"),
    ("protocol 256", _put({"target-prefix": GOOD, "target-protocol": [256]}), "4.00"),
    ("trigger not bool", _put({"target-prefix": GOOD, "trigger-mitigation": "yes"}), "4.00"),
    ("bad fqdn", _put({"target-fqdn": ["-bad-.example.com"]}), "4.00"),
    ("bad uri", _put({"target-uri": ["not a uri"]}), "4.00"),
    ("unauthorized prefix", _put({"target-prefix": ["198.51.100.0/28"]}), "4.00"),
    ("unauthorized fqdn", _put({"target-fqdn": ["www.bravo.example"]}), "4.00"),
    ("unauthorized uri", _put({"target-uri": ["https://www.bravo.example/"]}), "4.00"),
    ("unknown alias", _put({"alias-name": ["web-servers"]}), "4.00"),
    ("bad attack-status", _put({"target-prefix": GOOD, "attack-status": "on-fire"}), "4.00"),
    ("two scopes", _raw("PUT", mitigate_path(mid=200), {SCOPE: {"scope": [{}, {}]}}), "4.00"),
    ("scope not a list", _raw("PUT", mitigate_path(mid=200), {SCOPE: {"scope": {}}}), "4.00"),
    ("wrong top member", _raw("PUT", mitigate_path(mid=200), figure("figure27")), "4.00"),
    ("no body", _raw("PUT", mitigate_path(mid=200)), "4.00"),
    ("PUT without mid", _raw("PUT", mitigate_path(), scope_body(target_prefix=GOOD)), "4.00"),
    ("DELETE without mid", _raw("DELETE", mitigate_path()), "4.00"),
    ("missing cuid", _raw("GET", ("mitigate",)), "4.00"),
    ("mid before cuid", _raw("GET", ("mitigate", "mid=1", f"cuid={ALPHA_CUID}")), "4.00"),
    ("cdid after cuid", _raw("GET", ("mitigate", f"cuid={ALPHA_CUID}", "cdid=x")), "4.00"),
    ("empty cuid", _raw("GET", ("mitigate", "cuid=")), "4.00"),
    ("mid not a number", _raw("GET", (*mitigate_path(), "mid=abc")), "4.00"),
    ("mid negative", _raw("GET", (*mitigate_path(), "mid=-1")), "4.00"),
    ("mid > uint32", _raw("GET", (*mitigate_path(), f"mid={2**32}")), "4.00"),
    ("unknown resource", _raw("GET", ("telemetry",)), "4.04"),
    ("no resource", _raw("GET", ()), "4.04"),
    ("POST mitigate", _raw("POST", mitigate_path(mid=1)), "4.05"),
    ("GET hb", _raw("GET", ("hb",)), "4.05"),
    ("hb with cuid", _raw("PUT", ("hb", f"cuid={ALPHA_CUID}"), figure("figure27")), "4.00"),
    ("hb bad body", _raw("PUT", ("hb",), {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": "yes"}}), "4.00"),
    ("bad c query", _raw("GET", mitigate_path(), query=("c=x",)), "4.00"),
    ("unknown query", _raw("GET", mitigate_path(), query=("colour=red",)), "4.00"),
    ("bad port query", _raw("GET", mitigate_path(), query=("target-port=80-x",)), "4.00"),
    ("config PUT without sid", _raw("PUT", ("config",), figure("figure23")), "4.00"),
    ("config with cuid", _raw("GET", ("config", f"cuid={ALPHA_CUID}")), "4.00"),
    ("config decreasing sid", _raw("PUT", ("config", "sid=9"), figure("figure23")), "4.00"),
    ("config unknown sid GET", _raw("GET", ("config", "sid=11")), "4.04"),
    ("config unknown sid DELETE", _raw("DELETE", ("config", "sid=11")), "4.04"),
    ("client sends min-value", _cfg("idle-config", "max-retransmit", {"min-value": 2, "current-value": 3}), "4.00"),
    ("config unknown parameter", _cfg("idle-config", "colour", 3), "4.00"),
    ("config unknown set", _cfg("busy-config", "max-retransmit", 3), "4.00"),
    ("config empty", _raw("PUT", ("config", "sid=11"), {CONFIG: {}}), "4.00"),
    ("config decimal text", _cfg("idle-config", "ack-timeout", "two"), "4.00"),
    ("config decimal number", _cfg("idle-config", "ack-timeout", 2.5), "4.00"),
    ("config 3 fraction digits", _cfg("idle-config", "ack-timeout", "2.001"), "4.00"),
    ("config uint16 overflow", _cfg("idle-config", "max-retransmit", 65536), "4.00"),
    ("heartbeat 10 < 15", _cfg("idle-config", "heartbeat-interval", 10), "4.22"),
    ("heartbeat 241 > 240", _cfg("mitigating-config", "heartbeat-interval", 241), "4.22"),
    ("missing-hb 21", _cfg("idle-config", "missing-hb-allowed", 21), "4.22"),
    ("missing-hb 2", _cfg("mitigating-config", "missing-hb-allowed", 2), "4.22"),
    ("ack-timeout 0.50", _cfg("idle-config", "ack-timeout", "0.50"), "4.22"),
    ("ack-random-factor 5", _cfg("idle-config", "ack-random-factor", "5.00"), "4.22"),
    ("probing-rate 4", _cfg("idle-config", "probing-rate", 4), "4.22"),
    ("max-retransmit 1", _cfg("idle-config", "max-retransmit", 1), "4.22"),
    ("POST config", _raw("POST", ("config",)), "4.05"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "request_", "code"), CASES, ids=[case[0] for case in CASES])
def test_refused_with_the_right_code_and_nothing_changed(harness: Harness, label: str, request_: Request, code: str):
    before = harness.dump()
    response, events = harness.settle_request(request_, harness.now)
    assert response.code == code, response.diagnostic
    assert response.diagnostic, "every error carries a diagnostic"
    assert harness.dump() == before
    assert not [e for e in events if type(e).__name__.startswith("Mitigation")]
    # The core keeps serving afterwards.
    assert harness.get(100).code == "2.05"


def test_efficacy_update_for_unknown_mid_is_silently_ignored(harness: Harness):
    before = harness.dump()
    response = harness.put(555, figure("figure16"), if_match_empty=True)
    assert response.silent and response.code == "4.04"
    assert harness.dump() == before


def test_efficacy_update_with_changed_scope_or_without_attack_status(harness: Harness):
    before = harness.dump()
    changed = scope_body(target_prefix=GOOD, target_protocol=[17], attack_status="under-attack")
    assert harness.put(100, changed, if_match_empty=True).code == "4.00"
    assert harness.put(100, scope_body(target_prefix=GOOD, target_protocol=[6]), if_match_empty=True).code == "4.00"
    assert harness.dump() == before


def test_a_failing_store_answers_5_03_and_keeps_memory_unchanged(harness: Harness):
    before = harness.dump()
    harness.store.database.connection.execute("PRAGMA query_only = ON")  # every write now fails in SQLite
    try:
        response = harness.put(300, scope_body(target_prefix=["2001:db8:6401::300/128"]))
        assert response.code == "5.03", response.diagnostic
        assert harness.get(300).code == "4.04"
        assert harness.delete(100).code == "5.03"
    finally:
        harness.store.database.connection.execute("PRAGMA query_only = OFF")
    assert harness.dump() == before
    assert harness.get(100).body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["status"] == (
        "attack-mitigation-in-progress"
    )
    assert ALPHA.name == "alpha"
