"""Parsing of a 'scope' entry: the fast prefix reader agrees with ipaddress, and every check still runs on raw dicts."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.mitigate.base import PortRange
from opendots.signal.core.messages import AttackStatus, Rejected
from opendots.signal.core.scope import _plain_network, parse_prefix, parse_scope_body, parse_scope_entry

SCOPE = "ietf-dots-signal-channel:mitigation-scope"

_hex_group = st.text("0123456789abcdefABCDEF", min_size=0, max_size=5)
_ipv6_text = st.builds(
    lambda groups, joiners, length: "".join(g + j for g, j in zip(groups, joiners, strict=False)) + f"/{length}",
    st.lists(_hex_group, min_size=0, max_size=9),
    st.lists(st.sampled_from([":", ":", ":", "::", ":::", ""]), min_size=0, max_size=9),
    st.sampled_from(["0", "8", "32", "48", "64", "127", "128", "129", "064", "200", "1000"]),
)
_octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "", "0255"]))
_ipv4_text = st.builds(
    lambda octets, length: ".".join(octets) + f"/{length}",
    st.lists(_octet, min_size=2, max_size=5),
    st.sampled_from(["0", "4", "8", "24", "30", "31", "32", "33", "024", "99"]),
)


def _reference(text: str) -> Any:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None


@settings(max_examples=2000, deadline=None)
@given(st.one_of(_ipv6_text, _ipv4_text))
def test_the_fast_prefix_reader_accepts_only_what_ip_network_accepts_and_reads_it_alike(text: str) -> None:
    fast = _plain_network(text)
    if fast is not None:
        reference = _reference(text)
        assert reference is not None and type(fast) is type(reference) and fast == reference
        assert str(fast) == str(reference)


@pytest.mark.parametrize(
    "text",
    [
        "2001:db8::/32",
        "2001:DB8:0:1::/64",
        "::/0",
        "1:2:3:4:5:6:7:8/128",
        "1::2:3:4:5:6:7/128",
        "::1:2:3:4:5:6:7/128",
        "fe80::/10",
        "::ffff:c000:200/120",
        "192.0.2.0/24",
        "198.51.100.7/32",
        "0.0.0.0/1",
    ],
)
def test_the_fast_prefix_reader_takes_the_plain_forms(text: str) -> None:
    assert _plain_network(text) == ipaddress.ip_network(text)


@pytest.mark.parametrize(
    "text",
    [
        "2001:db8::1/64",  # host bits
        "2001:db8::/129",
        "1:2:3:4:5:6:7:8::/128",
        "2001:db8:::/48",
        "12345::/16",
        "::ffff:192.0.2.0/120",  # dotted tail: left to ipaddress
        "fe80::1%eth0/128",
        "192.0.2.1/24",
        "192.0.2.0/33",
        "192.0.02.0/24",
        "192.0.2/24",
        "256.0.0.0/8",
        "10.0.0.0/255.0.0.0",
        "192.0.2.0",
        " 192.0.2.0/24",
        "192.0.2.0/+24",
    ],
)
def test_the_fast_prefix_reader_leaves_every_other_form_to_ipaddress(text: str) -> None:
    assert _plain_network(text) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("127.0.0.1/32", "loopback"),
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        ("ff02::1/128", "multicast"),
        ("ff00::/8", "multicast"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("255.255.255.0/24", "broadcast"),
        ("0.0.0.0/0", "broadcast"),
        ("192.0.2.1/24", "host bits set"),
        ("2001:db8::1/64", "host bits set"),
        ("2001:db8::/129", "invalid target-prefix"),
        ("192.0.2.0", "needs a prefix length"),
        ("2001:db8::", "needs a prefix length"),
        ("www.example.com", "does not appear to be an IPv4 or IPv6 network"),
    ],
)
def test_parse_prefix_refuses_with_a_diagnostic(text: str, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_prefix(text)
    assert caught.value.response.code == "4.00"
    assert words in str(caught.value)


def test_parse_prefix_keeps_the_neighbours_of_the_refused_ranges() -> None:
    for text in ("126.255.255.255/32", "128.0.0.0/8", "223.255.255.0/24", "240.0.0.0/5", "255.255.255.254/32"):
        assert parse_prefix(text) == ipaddress.ip_network(text)
    for text in ("::2/128", "::/127", "fe00::/8", "fe00::/7"):  # fe00::/7 holds ff00::/8 but is not all multicast
        assert parse_prefix(text) == ipaddress.ip_network(text)
    # Forms only ipaddress reads (netmask notation, a dotted IPv6 tail) still work through it.
    assert parse_prefix("10.0.0.0/255.0.0.0") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_prefix("::ffff:192.0.2.0/120") == ipaddress.ip_network("::ffff:c000:200/120")


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
        ({"target-protocol": [6], "lifetime": 60}, "at least one of target-prefix"),
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
    assert targets.prefixes == (ipaddress.ip_network("2001:db8::/32"), ipaddress.ip_network("192.0.2.0/24"))
    assert targets.port_ranges == (PortRange(80, 80), PortRange(8000, 8080))
    assert targets.protocols == (6, 17)
    assert targets.fqdns == ("www.example.com",)
    assert targets.uris == ("https://www.example.com/x",)
    assert targets.aliases == ("web",)
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
    ]


def test_an_efficacy_update_has_no_lifetime() -> None:
    entry = {"target-prefix": ["192.0.2.0/24"], "attack-status": "under-attack"}
    request = parse_scope_body({SCOPE: {"scope": [entry]}})
    assert request.lifetime is None and request.attack_status is AttackStatus.UNDER_ATTACK
    assert request.acl_controls == () and request.targets.port_ranges == ()
