"""Parsing of a 'scope' entry by the server: every check runs on raw dicts (prefix reading: test_domain_parsing)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from opendots.domain import PortRange
from opendots.signal.server.core.messages import AttackStatus, Rejected
from opendots.signal.server.core.scope import parse_scope_body, parse_scope_entry

SCOPE = "ietf-dots-signal-channel:mitigation-scope"


def _refusal(entry: Any) -> str:
    with pytest.raises(Rejected) as caught:
        parse_scope_entry(entry)
    assert caught.value.response.code == "4.00"
    return str(caught.value)


GOOD = {"target-prefix": ["2001:db8::/32"], "lifetime": 3600}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("not an object", "must be an object"),
        ({**GOOD, "mid": 1}, "'mid' must not appear"),
        ({**GOOD, "status": 2}, "sent by servers only"),
        ({**GOOD, "colour": "red"}, "unknown parameter 'colour'"),
        ({**GOOD, 7: "x"}, "unknown parameter 7"),
        ({**GOOD, "target-fqdn": []}, "'target-fqdn' is empty"),
        ({"target-prefix": "2001:db8::/32"}, "'target-prefix' must be a list of str"),
        ({"target-prefix": ()}, "'target-prefix' must be a list of str"),
        ({"target-prefix": None}, "'target-prefix' must be a list of str"),
        ({**GOOD, "target-protocol": [True]}, "'target-protocol' must be a list of int"),
        ({**GOOD, "target-protocol": [6, 256]}, "target-protocol 256 is not in 0..255"),
        ({**GOOD, "target-port-range": [{"lower-port": 80, "x": 1}]}, "holds 'lower-port'"),
        ({**GOOD, "target-port-range": [{"upper-port": 80}]}, "holds 'lower-port'"),
        ({**GOOD, "target-port-range": [{"lower-port": False}]}, "port False is not in 0..65535"),
        ({**GOOD, "target-port-range": [{"lower-port": 1, "upper-port": 70000}]}, "port 70000"),
        ({**GOOD, "target-port-range": [{"lower-port": 9, "upper-port": 8}]}, "below lower-port"),
        ({**GOOD, "target-port-range": [{"lower-port": 9}, {"lower-port": 9, "upper-port": 10}]}, "twice"),
        ({"target-protocol": [6], "lifetime": 60}, "at least one target"),
        ({**GOOD, "trigger-mitigation": 1}, "'trigger-mitigation' must be true or false"),
        ({**GOOD, "lifetime": None}, "'lifetime' must be an integer"),
        ({**GOOD, "lifetime": 0}, "a 'lifetime' of 0"),
        ({**GOOD, "attack-status": None}, "unknown attack-status None"),
        ({**GOOD, "ietf-dots-signal-control:acl-list": None}, "must be a list"),
        # The first problem in member order is the one reported.
        ({"target-prefix": ["::1/128"], "target-protocol": [300]}, "loopback"),
        ({"target-protocol": [300], "target-prefix": ["::1/128"]}, "loopback"),
        ({"target-prefix": ["2001:db8::/32"], "target-port-range": [{"lower-port": -1}], "lifetime": 0}, "port -1"),
    ],
)
def test_a_raw_entry_is_fully_checked(entry: Any, words: str) -> None:
    assert words in _refusal(entry)


def test_a_full_entry_is_parsed() -> None:
    entry = {
        "target-prefix": ["2001:db8::/32", "192.0.2.0/24", "2001:db8::/32"],
        "target-port-range": [{"lower-port": 80}, {"lower-port": 8000, "upper-port": 8080}],
        "target-protocol": [6, 17, 6],
        "target-fqdn": ["WWW.Example.com."],
        "target-uri": ["https://www.example.com/x"],
        "alias-name": ["web"],
        "lifetime": -1,
        "trigger-mitigation": False,
        "attack-status": "under-attack",
        "ietf-dots-signal-control:acl-list": [{"acl-name": "a", "activation-type": "immediate"}],
        "ietf-dots-telemetry:total-attack-traffic": [{"unit": "packet-ps", "mid-percentile-g": "5"}],
    }
    request = parse_scope_entry(entry)
    targets = request.targets
    assert targets.target_prefixes == (ipaddress.ip_network("2001:db8::/32"), ipaddress.ip_network("192.0.2.0/24"))
    assert targets.target_port_ranges == (PortRange(80, 80), PortRange(8000, 8080))
    assert targets.target_protocols == (6, 17)
    assert targets.target_fqdns == ("www.example.com",)
    assert targets.target_uris == ("https://www.example.com/x",)
    assert targets.alias_names == ("web",)
    assert request.lifetime == -1 and request.trigger_mitigation is False
    assert request.attack_status is AttackStatus.UNDER_ATTACK
    assert [control.acl_name for control in request.acl_controls] == ["a"]
    assert list(request.document) == [
        "target-prefix",
        "target-port-range",
        "target-protocol",
        "target-fqdn",
        "target-uri",
        "alias-name",
        "lifetime",
        "trigger-mitigation",
        "ietf-dots-signal-control:acl-list",
        "ietf-dots-telemetry:total-attack-traffic",  # RFC 9244 §9.1: kept with the request
    ]


def test_an_efficacy_update_has_no_lifetime() -> None:
    entry = {"target-prefix": ["192.0.2.0/24"], "attack-status": "under-attack"}
    request = parse_scope_body({SCOPE: {"scope": [entry]}})
    assert request.lifetime is None and request.attack_status is AttackStatus.UNDER_ATTACK
    assert request.acl_controls == () and request.targets.target_port_ranges == ()
