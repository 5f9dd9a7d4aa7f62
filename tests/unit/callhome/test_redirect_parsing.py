"""RFC 9066 §5.2.2 redirection bodies as a Call Home DOTS server reads them (CBOR keys 32773-32775, YANG module
ietf-dots-call-home), the TTL processing of RFC 9132 §4.6, and the §5.2.1 heartbeat adjustment for NAT bindings."""

from __future__ import annotations

import cbor2
import pytest

from opendots.callhome.redirect import (
    INFINITE_TTL,
    RedirectError,
    nat_adjusted,
    parse_redirect,
    redirect_body,
    redirect_from_json,
)
from opendots.model import encode_signal
from opendots.signal.server.core import ServerSettings

CBOR = 271
FIGURE_9 = {
    "ietf-dots-signal-channel:redirected-signal": {
        "ietf-dots-call-home:alt-ch-client": "alt-call-home-client.example",
        "ietf-dots-call-home:alt-ch-client-record": ["2001:db8:6401::1", "2001:db8:6401::2"],
        "ietf-dots-call-home:ttl": 600,
    }
}


def test_the_figure_9_redirection_is_read_with_its_cbor_keys_rfc9066_5_2_2() -> None:
    payload = encode_signal(FIGURE_9)
    keys = cbor2.loads(payload)
    (content,) = keys.values()
    assert set(content) == {32773, 32774, 32775}  # RFC 9066 Table 2
    redirect = parse_redirect(payload, CBOR, now=1000.0)
    assert redirect.name == "alt-call-home-client.example"
    assert redirect.records == ("2001:db8:6401::1", "2001:db8:6401::2")
    assert redirect.expires_at == 1600.0 and not redirect.expired(1599.9) and redirect.expired(1600.0)


def test_the_body_a_provider_builds_is_figure_9() -> None:
    built = redirect_body("alt-call-home-client.example", ("2001:db8:6401::1", "2001:db8:6401::2"), 600)
    assert built == FIGURE_9


@pytest.mark.parametrize(("ttl", "expires"), [(None, None), (INFINITE_TTL, None), (0, 1000.0)])
def test_no_ttl_or_the_infinite_one_hold_until_redirected_again_and_zero_only_for_this_session(
    ttl: int | None, expires: float | None
) -> None:
    assert redirect_from_json(redirect_body("alt.example", (), ttl), now=1000.0).expires_at == expires


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ({"ietf-dots-call-home:alt-ch-client-record": ["192.0.2.1"]}, "alt-ch-client"),
        ({"ietf-dots-call-home:alt-ch-client": "a.example", "alt-server": "b.example"}, "MUST NOT"),
        ({"ietf-dots-call-home:alt-ch-client": "a.example", "alt-server-record": ["192.0.2.1"]}, "MUST NOT"),
        ({"ietf-dots-call-home:alt-ch-client": "a.example", "ietf-dots-call-home:ttl": -1}, "uint32"),
        ({"ietf-dots-call-home:alt-ch-client": "a.example", "ietf-dots-call-home:alt-ch-client-record": ["x"]}, "x"),
    ],
)
def test_a_redirection_the_cpe_cannot_service_is_refused_with_the_reason(content: dict, complaint: str) -> None:
    body = {"ietf-dots-signal-channel:redirected-signal": content}
    with pytest.raises(RedirectError, match=complaint):
        redirect_from_json(body, now=0.0)


def test_a_body_failing_the_yang_module_or_not_cbor_is_refused() -> None:
    not_a_name = cbor2.dumps({31: {32773: 7}})  # alt-ch-client must be a domain-name string
    with pytest.raises(RedirectError):
        parse_redirect(not_a_name, CBOR, now=0.0)
    with pytest.raises(RedirectError, match="271"):
        parse_redirect(encode_signal(FIGURE_9), 50, now=0.0)


def test_too_many_alternate_addresses_are_refused() -> None:
    records = [f"192.0.2.{n}" for n in range(17)]
    with pytest.raises(RedirectError, match="at most"):
        redirect_from_json(redirect_body("a.example", tuple(records)), now=0.0)


def test_the_heartbeat_interval_is_kept_within_half_the_nat_binding_timeout_rfc9066_5_2_1() -> None:
    settings = nat_adjusted(ServerSettings(clients=[]), 20.0)
    assert settings.session_defaults.idle.heartbeat_interval == 10
    assert settings.session_defaults.mitigating.heartbeat_interval == 10
    assert settings.limits.heartbeat_interval == (10, 10)  # a provider may not configure one the NAT would lose
    roomy = nat_adjusted(ServerSettings(clients=[]), 600.0)
    assert roomy.session_defaults.idle.heartbeat_interval == 30  # the RFC 9132 default already fits
    assert roomy.limits.heartbeat_interval == (15, 240)
