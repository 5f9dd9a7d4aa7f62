"""RFC 8973 §5: the DHCPv6 (141, 142) and DHCPv4 (147, 148) DOTS option payloads."""

from __future__ import annotations

import pytest

from opendots.discovery.dhcp import (
    DhcpOptionError,
    decode_names,
    encode_name,
    interpret,
    parse_ri,
    parse_v4_addresses,
    parse_v6_addresses,
    read_options_file,
)

# RFC 8973 Figure 4, byte for byte: "dots.example.com", Option-length 18.
FIGURE_4 = bytes([0x04, *b"dots", 0x07, *b"exa", *b"mple", 0x03, *b"com", 0x00])


def test_the_dots_agent_name_of_figure_4_decodes_to_dots_example_com_in_18_octets_rfc8973_5_1_1() -> None:
    assert len(FIGURE_4) == 18
    assert parse_ri(FIGURE_4) == "dots.example.com"
    assert encode_name("dots.example.com") == FIGURE_4


def test_only_the_first_of_several_names_is_used_rfc8973_5_2_3() -> None:
    payload = encode_name("dots1.example.net") + encode_name("dots2.example.net")
    assert decode_names(payload) == ["dots1.example.net", "dots2.example.net"]
    assert parse_ri(payload) == "dots1.example.net"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "no domain name"),
        (b"\x00", "root label alone"),
        (b"\x04dots\x08example", "truncated"),
        (b"\x04dots\x07example\x03com", "not terminated"),
        (b"\xc0\x0c", "compression pointer"),
        (b"\x04do s\x00", "not a host name label"),
        (b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x00", "255"),
    ],
)
def test_a_malformed_domain_name_is_refused_with_the_reason_rfc8415_10(payload: bytes, words: str) -> None:
    with pytest.raises(DhcpOptionError, match=words):
        parse_ri(payload)


def test_v6_addresses_keep_their_order_and_drop_multicast_and_loopback_rfc8973_5_1_3() -> None:
    import ipaddress

    raw = b"".join(
        ipaddress.IPv6Address(a).packed for a in ("2001:db8:122:300::1", "ff02::1", "::1", "2001:db8:122:300::2")
    )
    assert parse_v6_addresses(raw) == ["2001:db8:122:300::1", "2001:db8:122:300::2"]


def test_an_ipv4_mapped_address_in_the_v6_option_becomes_ipv4_and_mapped_loopback_is_dropped_rfc8973_5_1_2() -> None:
    import ipaddress

    raw = ipaddress.IPv6Address("::ffff:192.0.2.7").packed + ipaddress.IPv6Address("::ffff:127.0.0.1").packed
    assert parse_v6_addresses(raw) == ["192.0.2.7"]


@pytest.mark.parametrize("length", [0, 15, 17])
def test_a_v6_address_option_whose_length_is_not_a_multiple_of_16_is_refused_rfc8973_5_1_2(length: int) -> None:
    with pytest.raises(DhcpOptionError, match="multiple of 16"):
        parse_v6_addresses(bytes(length))


def test_v4_addresses_are_4n_octets_and_multicast_loopback_are_dropped_rfc8973_5_2_2() -> None:
    assert parse_v4_addresses(bytes([192, 0, 2, 1, 224, 0, 0, 1, 127, 0, 0, 1, 198, 51, 100, 9])) == [
        "192.0.2.1",
        "198.51.100.9",
    ]
    with pytest.raises(DhcpOptionError, match="multiple of 4"):
        parse_v4_addresses(bytes([192, 0, 2]))


def test_name_and_addresses_together_use_the_addresses_and_verify_the_name_without_resolving_it_rfc8973_5_2_3() -> None:
    (answer,) = interpret({147: FIGURE_4, 148: bytes([192, 0, 2, 1])}, lease=600)
    assert answer.addresses == ["192.0.2.1"]
    assert answer.reference_identifier == "dots.example.com"
    assert not answer.needs_resolution
    assert answer.lease == 600


def test_a_name_alone_is_resolved_and_addresses_alone_serve_as_identifiers_rfc8973_5_1_3() -> None:
    (by_name,) = interpret({141: FIGURE_4})
    assert by_name.needs_resolution and by_name.family == 6
    (by_address,) = interpret({148: bytes([192, 0, 2, 1])})
    assert not by_address.needs_resolution and by_address.reference_identifier == "192.0.2.1"


def test_an_address_option_with_only_discarded_addresses_and_no_name_is_an_error() -> None:
    with pytest.raises(DhcpOptionError, match="no usable address"):
        interpret({148: bytes([127, 0, 0, 1])})


def test_options_file_reads_udhcpc_hex_names_keeps_the_first_instance_and_the_lease() -> None:
    text = f"opt147={FIGURE_4.hex()}\nopt148=c0000201\nopt148=c0000202\nlease=3600\nip=192.0.2.50\n"
    options, lease = read_options_file(text)
    assert options == {147: FIGURE_4, 148: bytes([192, 0, 2, 1])}
    assert lease == 3600.0
    with pytest.raises(DhcpOptionError, match="line 1: opt148 is not hexadecimal"):
        read_options_file("opt148=zz\n")


def test_an_empty_option_line_is_an_option_the_server_did_not_send_as_a_hook_writes_an_unset_variable() -> None:
    # dhclient -6 with option 141 alone: the hook's $new_dhcp6_dots_address is unset (RFC 8973 §5.1, name only).
    options, lease = read_options_file("opt141=4:64:6f:74:73:7:65:78:61:6d:70:6c:65:3:63:6f:6d:0\nopt142=\nlease=\n")
    assert (options, lease) == ({141: FIGURE_4}, None)


def test_options_file_reads_dhclient_colon_hex_without_leading_zeros() -> None:
    options, _ = read_options_file("opt141=4:64:6f:74:73:7:65:78:61:6d:70:6c:65:3:63:6f:6d:0\n")
    assert options == {141: FIGURE_4}
    with pytest.raises(DhcpOptionError, match="not hexadecimal"):
        read_options_file("opt141=4:164\n")
