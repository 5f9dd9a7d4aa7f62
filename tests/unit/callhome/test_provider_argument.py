"""`--provider NAME@HOST[:PORT]` of `opendots callhome cpe`, and the URI the CPE dials (RFC 9066 §8.1: port 4647)."""

from __future__ import annotations

import click
import pytest

from opendots.callhome.cpe import ProviderAddress
from opendots.cli.callhome import parse_provider


@pytest.mark.parametrize(
    ("text", "transport", "uri"),
    [
        ("isp.example@192.0.2.1", "tls", "coaps+tcp://192.0.2.1:4647"),
        ("isp.example@192.0.2.1:5000", "dtls", "coaps://192.0.2.1:5000"),
        ("isp.example@[2001:db8::1]:5000", "tls", "coaps+tcp://[2001:db8::1]:5000"),
        ("isp.example@[2001:db8::1]", "dtls", "coaps://[2001:db8::1]:4647"),
        ("isp.example@dots.isp.example", "tls", "coaps+tcp://dots.isp.example:4647"),
    ],
)
def test_a_provider_argument_gives_the_name_to_check_and_the_uri_to_dial(text: str, transport: str, uri: str) -> None:
    address = parse_provider(text, transport)
    assert address.server_name == "isp.example" and address.uri == uri


@pytest.mark.parametrize("text", ["192.0.2.1", "@192.0.2.1", "isp@", "isp@192.0.2.1:0", "isp@192.0.2.1:http"])
def test_a_provider_argument_without_a_name_or_with_a_bad_port_is_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_provider(text, "tls")


def test_the_default_call_home_port_is_4647_rfc9066_8_1() -> None:
    assert ProviderAddress("192.0.2.1", server_name="isp").port == 4647
