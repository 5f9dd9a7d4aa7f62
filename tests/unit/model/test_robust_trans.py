"""The data model and RFC 9362: the official ietf-dots-robust-trans module augments both configuration sets, its
CBOR keys (Table 2) map to the RFC's names, and bodies in both directions validate and round-trip."""

from __future__ import annotations

from decimal import Decimal

import cbor2
import pytest

from opendots.model import ModelError, decode_signal, encode_signal, json_to_cbor, key_table

CONFIG = "ietf-dots-signal-channel:signal-config"
ROBUST = "ietf-dots-robust-trans"
TABLE_2 = {
    32776: "max-payloads",
    32777: "non-max-retransmit",
    32778: "non-timeout",
    32779: "non-receive-timeout",
    32780: "non-probing-wait",
    32781: "non-partial-timeout",  # go-dots names it non-partial-wait; the RFC's name is this one
}


def test_rfc9362_table2_keys_carry_the_rfc_names() -> None:
    table = key_table()
    for key, name in TABLE_2.items():
        entry = table.by_key[key]
        assert entry.name == f"{ROBUST}:{name}" and entry.module == ROBUST


def server_set() -> dict:
    """One set as a server sends it (RFC 9362 Figure 1, server-to-client-only case)."""
    integer = {"max-value": 50, "min-value": 1, "current-value": 10}
    seconds = {"max-value-decimal": "600.00", "min-value-decimal": "10.00", "current-value-decimal": "223.00"}
    return {
        f"{ROBUST}:max-payloads": integer,
        f"{ROBUST}:non-max-retransmit": {"max-value": 15, "min-value": 1, "current-value": 3},
        f"{ROBUST}:non-timeout": {**seconds, "current-value-decimal": "2.00"},
        f"{ROBUST}:non-receive-timeout": {**seconds, "current-value-decimal": "4.00"},
        f"{ROBUST}:non-probing-wait": seconds,
        f"{ROBUST}:non-partial-timeout": seconds,
    }


@pytest.mark.parametrize("set_name", ["idle-config", "mitigating-config"])
def test_a_server_get_body_with_min_max_current_validates_and_round_trips(set_name: str) -> None:
    body = {CONFIG: {set_name: server_set()}}
    payload = encode_signal(body)
    assert decode_signal(payload) == body
    wire = cbor2.loads(payload)[30][44 if set_name == "idle-config" else 32]
    assert set(wire) == set(TABLE_2)
    assert wire[32781] == {41: Decimal("600.00"), 42: Decimal("10.00"), 43: Decimal("223.00")}


@pytest.mark.parametrize(
    ("member", "holder"),
    [
        ("max-payloads", {"current-value-decimal": "10.00"}),  # a uint16, not seconds
        ("non-timeout", {"current-value": 2}),  # seconds are decimal64
        ("max-payloads", {"current-value": 70000}),
        ("non-partial-timeout", {"current-value-decimal": "1.005"}),  # 2 fraction digits
    ],
)
def test_wrongly_typed_attributes_are_refused_with_4_00(member: str, holder: dict) -> None:
    with pytest.raises(ModelError) as caught:
        encode_signal({CONFIG: {"idle-config": {f"{ROBUST}:{member}": holder}}})
    assert caught.value.code == "4.00" and member in caught.value.diagnostic


def test_the_go_dots_name_is_not_a_member() -> None:
    with pytest.raises(ModelError):
        json_to_cbor({CONFIG: {"idle-config": {f"{ROBUST}:non-partial-wait": {"current-value-decimal": "9.00"}}}})
