"""RFC 8768 rules as the gateway applies them."""

from __future__ import annotations

import pytest

from opendots.gateway.hoplimit import (
    DEFAULT_HOP_LIMIT,
    IdentityError,
    check_identity,
    check_initial,
    forward_value,
    relayed_diagnostic,
)


def test_an_absent_hop_limit_is_inserted_with_the_configured_initial_value_16_by_default_rfc8768_s3() -> None:
    assert DEFAULT_HOP_LIMIT == 16
    assert forward_value(None, initial=16, identity="gw1").value == 16
    assert forward_value(None, initial=4, identity="gw1").value == 4


def test_a_received_hop_limit_is_decremented_before_the_request_is_forwarded_rfc8768_s3() -> None:
    assert forward_value(5, initial=16, identity="gw1").value == 4
    assert forward_value(255, initial=16, identity="gw1").value == 254


def test_a_hop_limit_that_reaches_0_is_not_forwarded_but_answered_5_08_naming_the_gateway_rfc8768_s3_s4() -> None:
    decision = forward_value(1, initial=16, identity="gw1.example.net")
    assert (decision.value, decision.code, decision.diagnostic) == (None, "5.08", "gw1.example.net")


def test_a_received_hop_limit_of_0_is_a_bad_request_rfc8768_s3() -> None:
    decision = forward_value(0, initial=16, identity="gw1")
    assert (decision.value, decision.code) == (None, "4.00")


def test_a_boundary_gateway_told_to_rewrite_ignores_the_received_value_rfc8768_s3() -> None:
    assert forward_value(1, initial=16, identity="gw1", rewrite=True).value == 16


def test_a_relayed_5_08_gets_the_gateways_identifier_prepended_with_a_space_rfc8768_s4() -> None:
    relayed = relayed_diagnostic("gw2", identity="gw1", room=1024)
    assert (relayed.diagnostic, relayed.loop) == ("gw1 gw2", False)
    assert relayed_diagnostic("", identity="gw1", room=1024).diagnostic == "gw1"


def test_a_relayed_5_08_is_left_unchanged_when_the_identifier_would_not_fit_rfc8768_s4() -> None:
    relayed = relayed_diagnostic("gw2 gw3", identity="gw1", room=len("gw2 gw3") + 3)
    assert (relayed.diagnostic, relayed.loop) == ("gw2 gw3", False)


def test_a_5_08_that_already_names_the_gateway_is_a_loop_and_gets_no_second_identifier_rfc8768_s4() -> None:
    relayed = relayed_diagnostic("gw2 gw1", identity="gw1", room=1024)
    assert (relayed.diagnostic, relayed.loop) == ("gw2 gw1", True)
    # Whole identifiers only: gw1 is not named by gw10.
    assert relayed_diagnostic("gw10", identity="gw1", room=1024).loop is False


def test_an_identifier_with_a_space_is_refused_rfc8768_s4() -> None:
    assert check_identity("p11.example.net") == "p11.example.net"
    for bad in ("two words", "", "tab\there"):
        with pytest.raises(IdentityError):
            check_identity(bad)
    for bad_value in (0, 256, True, "16"):
        with pytest.raises(ValueError):
            check_initial(bad_value)  # type: ignore[arg-type]
