"""The domain's one prefix parser (opendots.domain.addresses): the fast reader agrees with ipaddress, one rule for
host bits on the wire and the server (ietf-inet-types ip-prefix canonical form), and the user-input reading."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.domain import ScopeError, parse_prefix, read_user_prefix
from opendots.domain.addresses import plain_network

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
    fast = plain_network(text)
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
    assert plain_network(text) == ipaddress.ip_network(text)


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
    assert plain_network(text) is None


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
    with pytest.raises(ScopeError) as caught:
        parse_prefix(text)
    assert words in str(caught.value)


def test_parse_prefix_keeps_the_neighbours_of_the_refused_ranges() -> None:
    for text in ("126.255.255.255/32", "128.0.0.0/8", "223.255.255.0/24", "240.0.0.0/5", "255.255.255.254/32"):
        assert parse_prefix(text) == ipaddress.ip_network(text)
    for text in ("::2/128", "::/127", "fe00::/8", "fe00::/7"):  # fe00::/7 holds ff00::/8 but is not all multicast
        assert parse_prefix(text) == ipaddress.ip_network(text)
    # Forms only ipaddress reads (netmask notation, a dotted IPv6 tail) still work through it.
    assert parse_prefix("10.0.0.0/255.0.0.0") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_prefix("::ffff:192.0.2.0/120") == ipaddress.ip_network("::ffff:c000:200/120")


@pytest.mark.parametrize(
    ("text", "prefix", "note"),
    [
        ("203.0.113.0/24", "203.0.113.0/24", None),
        (" 192.0.2.7 ", "192.0.2.7/32", None),  # an address alone is that host
        ("2001:db8::7", "2001:db8::7/128", None),
        ("203.0.113.5/24", "203.0.113.0/24", "host bits set"),
        ("2001:db8::1/64", "2001:db8::/64", "host bits set"),
    ],
)
def test_user_input_may_be_an_address_or_have_host_bits_and_the_user_is_told(
    text: str, prefix: str, note: str | None
) -> None:
    read, told = read_user_prefix(text)
    assert read == ipaddress.ip_network(prefix)
    assert (told is None) if note is None else (note in (told or "") and prefix in (told or ""))


@pytest.mark.parametrize(
    ("text", "words"),
    [("127.0.0.5/8", "loopback"), ("224.0.0.1", "multicast"), ("192.0.2.0/33", "invalid"), ("nonsense", "invalid")],
)
def test_user_input_is_still_refused_for_what_no_prefix_may_be(text: str, words: str) -> None:
    with pytest.raises(ScopeError, match=words):
        read_user_prefix(text)


_cidr_texts = st.one_of(_ipv4_text, _ipv6_text, st.sampled_from(["192.0.2.1/24", "10.0.0.0/8", "::1/128"]))


@settings(max_examples=500, deadline=None)
@given(_cidr_texts)
def test_the_client_and_the_server_accept_and_refuse_the_same_prefixes(text: str) -> None:
    """RFC 9132 §4.4.1.1, one rule for host bits: what the client library would send, the server takes."""
    from opendots.signal.client.core.scope import MitigationScope
    from opendots.signal.server.core.messages import Rejected
    from opendots.signal.server.core.scope import parse_scope_entry

    try:
        client = MitigationScope(target_prefixes=(text,)).target_prefixes
    except ScopeError:
        client = None
    try:
        server = parse_scope_entry({"target-prefix": [text], "lifetime": 60}).targets.target_prefixes
    except Rejected:
        server = None
    assert client == server
