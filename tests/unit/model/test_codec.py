"""Bad payloads and bodies get a clear ModelError with the CoAP code to answer with; good ones round-trip."""

from __future__ import annotations

import copy
import json
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendots.model import (
    ModelError,
    cbor_to_json,
    decode_signal,
    decode_signal_with_ignored,
    decode_telemetry,
    encode_signal,
    json_to_cbor,
    validate_signal,
    validate_telemetry,
)
from tests.helpers import FIXTURES

DATA = FIXTURES
FIGURE7 = json.loads((DATA / "rfc9132" / "fig07-mitigation-request.json").read_text())
FIGURE8 = bytes.fromhex((DATA / "rfc9132" / "fig08-mitigation-request.cbor.hex").read_text().strip())


def _scope_cbor(**members: Any) -> bytes:
    """A CBOR mitigation request whose only scope holds ``members`` (integer keys as strings k<N>)."""
    return cbor2.dumps({1: {2: [{int(key[1:]): value for key, value in members.items()}]}})


def _rejected(payload: bytes, code: str = "4.00", **kwargs: Any) -> str:
    with pytest.raises(ModelError) as caught:
        decode_signal(payload, **kwargs)
    assert caught.value.code == code
    return caught.value.diagnostic


# --------------------------------------------------------------------------------------------- malformed payloads


def test_truncated_cbor_is_malformed() -> None:
    assert "malformed CBOR" in _rejected(FIGURE8[:-3])


def test_trailing_bytes_are_rejected() -> None:
    assert "after the CBOR item" in _rejected(FIGURE8 + b"\x00")


@pytest.mark.parametrize("item", [[1, 2], "text", 7, None])
def test_top_level_must_be_a_map(item: Any) -> None:
    assert "map" in _rejected(cbor2.dumps(item))


def test_empty_payload_is_rejected() -> None:
    assert "empty" in _rejected(b"")


def test_text_keys_are_rejected() -> None:
    assert "integers" in _rejected(cbor2.dumps({"ietf-dots-signal-channel:mitigation-scope": {}}))


@pytest.mark.parametrize("key", [0, 65536, -1])
def test_keys_outside_the_registry_range_are_rejected(key: int) -> None:
    payload = cbor2.dumps({1: {2: [{6: ["2001:db8::/32"], key: 1}]}})
    assert "outside 1-65535" in _rejected(payload)


def test_oversize_payload_is_413() -> None:
    assert "exceeds" in _rejected(FIGURE8, code="4.13", max_size=len(FIGURE8) - 1)
    assert decode_signal(FIGURE8, max_size=len(FIGURE8)) == FIGURE7
    big = cbor2.dumps({1: {2: [{13: ["x" * 1000] * 70}]}})
    assert len(big) > 64 * 1024
    _rejected(big, code="4.13")


def test_deep_nesting_and_cycles_are_rejected() -> None:
    _rejected(b"\x81" * 60000 + b"\x00")
    # Tag 28 marks a shareable map, tag 29 refers back to it: the scope list contains the whole message.
    cyclic = bytes.fromhex("d81ca101a10281d81d00")
    assert "nested too deeply" in _rejected(cyclic)


def test_the_dots_cbor_tag_271_is_accepted() -> None:
    assert decode_signal(cbor2.dumps(cbor2.CBORTag(271, cbor2.loads(FIGURE8)))) == FIGURE7


# ----------------------------------------------------------------------------------------- comprehension rules


def test_unknown_comprehension_required_keys_are_listed_in_the_diagnostic() -> None:
    payload = cbor2.dumps({1: {2: [{6: ["2001:db8::1/128"], 100: 1, 300: "x"}]}})
    diagnostic = _rejected(payload)
    assert "comprehension-required" in diagnostic
    assert "/100" in diagnostic
    assert "/300" in diagnostic


def test_unknown_comprehension_optional_keys_are_dropped_and_reported() -> None:
    message = cbor2.loads(FIGURE8)
    message[1][2][0][250] = "future telemetry"  # 128-255: optional
    message[1][2][0][40000] = {1: 2}  # 32768-49151: optional
    message[60000] = True  # private use: optional
    body, ignored = decode_signal_with_ignored(cbor2.dumps(message))
    assert body == FIGURE7
    assert sorted(ignored) == sorted(
        [
            "/ietf-dots-signal-channel:mitigation-scope/scope[0]/250",
            "/ietf-dots-signal-channel:mitigation-scope/scope[0]/40000",
            "/60000",
        ]
    )
    assert decode_signal(cbor2.dumps(message)) == FIGURE7


# ---------------------------------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"k7": [{8: "80"}]}, "lower-port: expected an integer"),
        ({"k6": "2001:db8::/32"}, "target-prefix: expected an array"),
        ({"k10": [True]}, "target-protocol[0]: expected an integer"),
        ({"k14": 3600.0}, "lifetime"),
        ({"k16": "attack-stopped"}, "status: expected an unsigned integer"),
        ({"k45": 1}, "trigger-mitigation: expected a boolean"),
        ({"k15": "1507818434"}, "mitigation-start: expected an integer"),
        ({"k13": [b"bytes"]}, "alias-name[0]: expected a text string"),
    ],
)
def test_wrong_cbor_types_are_rejected(members: dict[str, Any], expected: str) -> None:
    assert expected in _rejected(_scope_cbor(**members))


def test_decimal64_must_be_a_tag4_decimal_fraction_with_at_most_two_digits() -> None:
    def config(value: Any) -> bytes:
        return cbor2.dumps({30: {32: {40: {43: value}}}})

    assert "decimal fraction" in _rejected(config(1.5))
    assert "fraction digits" in _rejected(config(cbor2.CBORTag(4, [-3, 1505])))
    body = decode_signal(config(cbor2.CBORTag(4, [-1, 15])))  # another exponent, same value: accepted
    assert body["ietf-dots-signal-channel:signal-config"]["mitigating-config"]["ack-random-factor"] == {
        "current-value-decimal": "1.50"
    }


def test_heartbeat_boolean() -> None:
    assert decode_signal(cbor2.dumps({49: {51: False}})) == {
        "ietf-dots-signal-channel:heartbeat": {"peer-hb-status": False}
    }
    assert "expected a boolean" in _rejected(cbor2.dumps({49: {51: 1}}))


# ------------------------------------------------------------------------------------------- ranges and schema


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"k7": [{8: 70000}]}, "lower-port: invalid-type"),
        ({"k6": ["192.0.2.0/33"]}, "target-prefix/0: invalid value"),
        ({"k6": ["2001:db8::/129"]}, "target-prefix/0: invalid value"),
        ({"k10": [256]}, "target-protocol"),
        ({"k14": -2}, "lifetime"),
        ({"k7": [{8: 443, 9: 80}]}, "must-violation"),
        ({"k7": [{8: 80}, {8: 80}]}, "non-unique-key"),
        ({"k16": 99}, "99 is not a defined value"),
        ({"k29": 3}, "3 is not a defined value"),
        ({"k4": "dz6pHjaADkaFTbjr0JGBpw"}, "cuid: member not allowed here"),
        ({"k16": 2, "k29": 1}, "member-not-allowed"),
        ({"k185": "192.0.2.0/24"}, "source-prefix: member not allowed here"),
    ],
)
def test_out_of_range_and_schema_violations_are_rejected(members: dict[str, Any], expected: str) -> None:
    assert expected in _rejected(_scope_cbor(**members))


def test_lifetime_minus_one_means_indefinite_and_is_accepted() -> None:
    body = decode_signal(_scope_cbor(k6=["2001:db8::/32"], k14=-1))
    assert body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["lifetime"] == -1


def test_oversized_integers_are_rejected_before_conversion() -> None:
    assert "out of range" in _rejected(_scope_cbor(k25=2**70))
    assert "bytes-dropped" in _rejected(_scope_cbor(k25=-5))


def test_body_must_name_one_message_case_that_matches_its_contents() -> None:
    with pytest.raises(ModelError, match="not part of a heartbeat message"):
        validate_signal({"ietf-dots-signal-channel:heartbeat": {"scope": [{}]}})
    with pytest.raises(ModelError, match="exactly one member"):
        validate_signal({**FIGURE7, "ietf-dots-signal-channel:heartbeat": {"peer-hb-status": True}})
    with pytest.raises(ModelError, match="empty heartbeat"):
        validate_signal({"ietf-dots-signal-channel:heartbeat": {}})
    with pytest.raises(ModelError, match="unexpected top-level member"):
        validate_signal({"ietf-dots-telemetry:telemetry": {}})
    with pytest.raises(ModelError, match="unexpected top-level member"):
        validate_telemetry(FIGURE7)


def test_redirect_needs_alt_server_or_call_home_client() -> None:
    with pytest.raises(ModelError, match="alt-server"):
        validate_signal({"ietf-dots-signal-channel:redirected-signal": {"alt-server-record": ["2001:db8::1"]}})


def test_json_side_errors(production_encoding: None) -> None:
    bad_enum = copy.deepcopy(FIGURE7)
    bad_enum["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["status"] = "bogus"
    with pytest.raises(ModelError, match="'bogus' is not a defined name"):
        json_to_cbor(bad_enum)
    with pytest.raises(ModelError):
        validate_signal(bad_enum)
    unknown = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"no-such-member": 1}]}}
    with pytest.raises(ModelError, match="no DOTS CBOR key"):
        encode_signal(unknown, validate=False)
    number_for_uint64 = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"bytes-dropped": 5}]}}
    with pytest.raises(ModelError, match="bytes-dropped"):
        validate_signal(number_for_uint64)
    with pytest.raises(ModelError, match="decimal64 as a string"):
        json_to_cbor(
            {"ietf-dots-signal-channel:signal-config": {"idle-config": {"ack-timeout": {"current-value-decimal": 2}}}}
        )


def test_telemetry_range_checks() -> None:
    setup = {
        "ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"current-config": {"telemetry-notify-interval": 0}}]}
    }
    with pytest.raises(ModelError, match="telemetry-notify-interval"):
        validate_telemetry(setup)
    with pytest.raises(ModelError) as caught:
        decode_telemetry(cbor2.dumps({203: {129: [{175: {133: [{134: 99, 135: True}]}}]}}))
    assert "99 is not a defined value" in caught.value.diagnostic


def test_cbor_to_json_does_not_validate() -> None:
    body, ignored = cbor_to_json(cbor2.loads(_scope_cbor(k7=[{8: 70000}])))
    assert body["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["target-port-range"] == [{"lower-port": 70000}]
    assert ignored == []


# ------------------------------------------------------------------------------------------------ property test

_ipv4_prefixes = st.builds(lambda host, length: f"203.0.113.{host}/{length}", st.integers(0, 255), st.just(32))
_ipv6_prefixes = st.builds(
    lambda word, length: f"2001:db8:{word:x}::/{length}", st.integers(0, 0xFFFF), st.integers(48, 128)
)
_STATUSES = [
    "attack-mitigation-in-progress",
    "attack-successfully-mitigated",
    "attack-stopped",
    "attack-exceeded-capability",
    "dots-client-withdrawn-mitigation",
    "attack-mitigation-terminated",
    "attack-mitigation-withdrawn",
    "attack-mitigation-signal-loss",
]
_counter = st.integers(0, 2**64 - 1).map(str)


@st.composite
def _scopes(draw: st.DrawFn) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "target-prefix": draw(st.lists(_ipv4_prefixes | _ipv6_prefixes, min_size=1, max_size=4, unique=True))
    }
    lower_ports = draw(st.lists(st.integers(0, 65535), max_size=4, unique=True))
    if lower_ports:
        scope["target-port-range"] = [{"lower-port": port} for port in lower_ports]
    if draw(st.booleans()):
        scope["target-protocol"] = draw(st.lists(st.integers(0, 255), min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        scope["target-fqdn"] = draw(
            st.lists(st.sampled_from(["example.com", "www.example.net", "a.b.example"]), min_size=1, unique=True)
        )
    scope["lifetime"] = draw(st.sampled_from([-1, 0, 1, 3600, 2**32 - 1]))
    if draw(st.booleans()):
        scope["trigger-mitigation"] = draw(st.booleans())
    if draw(st.booleans()):
        scope["mid"] = draw(st.integers(0, 2**32 - 1))
        scope["status"] = draw(st.sampled_from(_STATUSES))
        scope["bytes-dropped"] = draw(_counter)
        scope["pps-dropped"] = draw(_counter)
    elif draw(st.booleans()):
        scope["attack-status"] = draw(st.sampled_from(["under-attack", "attack-successfully-mitigated"]))
    if draw(st.booleans()):
        scope["ietf-dots-call-home:source-prefix"] = draw(st.lists(_ipv4_prefixes, min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        scope["ietf-dots-signal-control:acl-list"] = [
            {
                "acl-name": "acl-1",
                "activation-type": draw(st.sampled_from(["activate-when-mitigating", "immediate", "deactivate"])),
            }
        ]
    return scope


@settings(max_examples=60, deadline=None)
@given(st.lists(_scopes(), min_size=1, max_size=3))
def test_mitigation_bodies_round_trip(scopes: list[dict[str, Any]]) -> None:
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": scopes}}
    assert decode_signal(encode_signal(body)) == body


@settings(max_examples=40, deadline=None)
@given(st.decimals(min_value=0, max_value=655, places=2, allow_nan=False, allow_infinity=False))
def test_decimal64_round_trips(value: Any) -> None:
    text = format(value, "f")
    body = {
        "ietf-dots-signal-channel:signal-config": {
            "mitigating-config": {"ack-timeout": {"current-value-decimal": text}}
        }
    }
    assert decode_signal(encode_signal(body)) == body


def _conflict(cause: str, conflict_scope: dict[str, Any]) -> dict[str, Any]:
    information = {"conflict-status": "request-inactive-other-active", "conflict-cause": cause}
    return {
        "ietf-dots-signal-channel:mitigation-scope": {
            "scope": [{"mid": 5, "conflict-information": {**information, "conflict-scope": conflict_scope}}]
        }
    }


def test_conflict_scope_members_follow_the_conflict_cause() -> None:
    # The 'when' conditions of RFC 9132's conflict-scope, evaluated in the derived view.
    overlapping = _conflict("overlapping-targets", {"target-prefix": ["2001:db8::/32"], "mid": 12})
    assert decode_signal(encode_signal(overlapping)) == overlapping
    acl = {"acl-list": [{"acl-name": "an-accept-list", "acl-type": "ietf-access-control-list:ipv6-acl-type"}]}
    accept_list = _conflict("conflict-with-acceptlist", acl)
    assert decode_signal(encode_signal(accept_list)) == accept_list
    with pytest.raises(ModelError, match="member-not-allowed: target-prefix"):
        validate_signal(_conflict("conflict-with-acceptlist", {"target-prefix": ["2001:db8::/32"]}))
    with pytest.raises(ModelError, match="member-not-allowed: acl-list"):
        validate_signal(_conflict("overlapping-targets", acl))
    # eth ACLs are not a DOTS data channel feature (RFC 8783 §4.2), so that identity does not exist here.
    eth = {"acl-list": [{"acl-name": "x", "acl-type": "ietf-access-control-list:eth-acl-type"}]}
    with pytest.raises(ModelError, match="acl-type: invalid value"):
        validate_signal(_conflict("conflict-with-acceptlist", eth))


def test_a_misplaced_member_is_converted_and_then_named_by_validation() -> None:
    body, _ = cbor_to_json({5: 123})
    assert body == {"mid": 123}
    assert json_to_cbor(body) == {5: 123}
    assert "unexpected top-level member 'mid'" in _rejected(cbor2.dumps({5: 123}))


def test_diagnostics_stay_short() -> None:
    payload = cbor2.dumps({1: {2: [dict.fromkeys(range(300, 3000), 0)]}})
    diagnostic = _rejected(payload)
    assert len(diagnostic) <= 512
    assert diagnostic.startswith("unknown comprehension-required CBOR key(s): ")
    assert "..." in diagnostic
