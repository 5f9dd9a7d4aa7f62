"""Request building for the DOTS client (RFC 9132 §4.4-§4.7): paths, bodies, options; scope validation."""

from __future__ import annotations

import pytest

from opendots.signal.client.core import requests as r
from opendots.signal.client.core.scope import MitigationScope, PortRange, ScopeError, parse_protocol

CUID = "dz6pHjaADkaFTbjr0JGBpw"


def figure7_scope() -> MitigationScope:
    return MitigationScope(
        target_prefixes=("2001:db8:6401::1/128", "2001:db8:6401::2/128"),
        target_port_ranges=(PortRange(80), PortRange(443), PortRange(8080)),
        target_protocols=(6,),
        lifetime=3600,
    )


def test_mitigation_request_matches_rfc_figure_7() -> None:
    request = r.mitigation_request(CUID, 123, figure7_scope())
    assert request.method == "PUT"
    assert request.path == (".well-known", "dots", "mitigate", f"cuid={CUID}", "mid=123")
    assert not request.confirmable and not request.if_match_empty and request.observe is None
    assert request.body == {
        "ietf-dots-signal-channel:mitigation-scope": {
            "scope": [
                {
                    "target-prefix": ["2001:db8:6401::1/128", "2001:db8:6401::2/128"],
                    "target-port-range": [{"lower-port": 80}, {"lower-port": 443}, {"lower-port": 8080}],
                    "target-protocol": [6],
                    "lifetime": 3600,
                }
            ]
        }
    }


def test_every_scope_attribute_and_trigger_false_are_sent() -> None:
    scope = MitigationScope(
        target_prefixes=("192.0.2.7",),
        target_port_ranges=(PortRange.parse("1024-65535"),),
        target_protocols=(parse_protocol("udp"),),
        target_fqdns=("www.example.com",),
        target_uris=("https://example.com/x",),
        alias_names=("web",),
        lifetime=-1,
        trigger_mitigation=False,
    )
    entry = r.mitigation_request(CUID, 1, scope).body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]
    assert entry == {
        "target-prefix": ["192.0.2.7/32"],
        "target-port-range": [{"lower-port": 1024, "upper-port": 65535}],
        "target-protocol": [17],
        "target-fqdn": ["www.example.com"],
        "target-uri": ["https://example.com/x"],
        "alias-name": ["web"],
        "lifetime": -1,
        "trigger-mitigation": False,
    }
    assert MitigationScope.from_yang(entry) == scope


def test_efficacy_update_is_a_conditional_put_with_attack_status() -> None:
    request = r.efficacy_request(CUID, 123, figure7_scope(), "under-attack")
    assert request.method == "PUT" and request.if_match_empty
    entry = request.body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]
    assert entry["attack-status"] == "under-attack"
    assert entry["target-prefix"] == ["2001:db8:6401::1/128", "2001:db8:6401::2/128"]
    with pytest.raises(ScopeError, match="attack-status"):
        r.efficacy_request(CUID, 123, figure7_scope(), "over")


def test_withdraw_status_and_config_requests() -> None:
    withdraw = r.withdraw_request(CUID, 9)
    assert (withdraw.method, withdraw.path[-1], withdraw.body) == ("DELETE", "mid=9", None)
    everything = r.status_request(CUID, content="n", observe=0)
    assert everything.path == (".well-known", "dots", "mitigate", f"cuid={CUID}")
    assert everything.query == ("c=n",) and everything.observe == 0
    with pytest.raises(ScopeError):
        r.status_request(CUID, content="x")
    assert r.config_get_request().path == (".well-known", "dots", "config")
    assert r.config_get_request(4).path[-1] == "sid=4"
    put = r.config_put_request(5, {"x": 1})
    assert put.confirmable and put.method == "PUT" and put.path[-1] == "sid=5"
    assert r.config_delete_request(5).method == "DELETE"
    heartbeat = r.heartbeat_request(False)
    assert heartbeat.path == (".well-known", "dots", "hb") and not heartbeat.confirmable
    assert heartbeat.body == {"ietf-dots-signal-channel:heartbeat": {"peer-hb-status": False}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one target"),
        ({"target_prefixes": ("192.0.2.0/24",), "lifetime": 0}, "lifetime"),
        ({"target_prefixes": ("192.0.2.0/24",), "lifetime": -2}, "lifetime"),
        ({"target_prefixes": ("127.0.0.1",)}, "loopback"),
        ({"target_prefixes": ("224.0.0.1",)}, "multicast"),
        ({"target_prefixes": ("192.0.2.0/33",)}, "invalid target-prefix"),
        ({"target_prefixes": ("192.0.2.1/24",)}, "host bits set"),  # the wire's rule: the server refuses it too
        ({"target_prefixes": ("192.0.2.0/24",), "target_protocols": ("bogus",)}, "unknown protocol"),
        ({"target_prefixes": ("192.0.2.0/24",), "target_protocols": (256,)}, "0-255"),
        ({"target_fqdns": ("",)}, "empty"),
    ],
)
def test_bad_scopes_are_refused_locally(kwargs: dict, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        MitigationScope(**kwargs)


def test_port_range_parsing() -> None:
    assert PortRange.parse("53") == PortRange(53)
    assert PortRange.parse("80-80") == PortRange(80)
    assert str(PortRange.parse("1-2")) == "1-2"
    for bad in ("70000", "9-1", "a", "1-b"):
        with pytest.raises(ScopeError):
            PortRange.parse(bad)


def test_mid_and_cuid_bounds() -> None:
    with pytest.raises(ScopeError):
        r.withdraw_request(CUID, 2**32)
    with pytest.raises(ScopeError):
        r.withdraw_request("", 1)
