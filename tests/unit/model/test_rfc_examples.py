"""Every example body of RFC 9132, 9133, 9066, 9244 and 9362 (tests/fixtures, see its README.md): it validates,
and JSON → CBOR → JSON gives it back unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.model import (
    ModelError,
    decode_signal,
    decode_telemetry,
    encode_signal,
    encode_telemetry,
    json_to_cbor,
    validate_signal,
    validate_telemetry,
)
from tests.helpers import FIXTURES

DATA = FIXTURES
EXAMPLES = sorted(path for path in DATA.glob("rfc*/*.json") if "verbatim-invalid" not in path.name)


def _load(relative: str) -> dict[str, Any]:
    return json.loads((DATA / relative).read_text(encoding="utf-8"))


def _is_telemetry(body: dict[str, Any]) -> bool:
    return next(iter(body)).startswith("ietf-dots-telemetry:")


def test_the_examples_are_all_there() -> None:
    per_rfc = {rfc: len(list((DATA / rfc).glob("*.json"))) for rfc in ("rfc9132", "rfc9133", "rfc9066", "rfc9244")}
    assert per_rfc == {"rfc9132": 16, "rfc9133": 8, "rfc9066": 2, "rfc9244": 15}
    assert len(list((DATA / "rfc9362").glob("*.json"))) == 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_example_validates_and_round_trips(path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    if _is_telemetry(body):
        validate_telemetry(body)
        payload = encode_telemetry(body)
        assert decode_telemetry(payload) == body
    else:
        validate_signal(body)
        payload = encode_signal(body)
        assert decode_signal(payload) == body
    # The wire form uses integer keys only, at every level.
    assert _all_keys_are_integers(cbor2.loads(payload))


def _all_keys_are_integers(item: Any) -> bool:
    if isinstance(item, dict):
        return all(isinstance(key, int) and _all_keys_are_integers(value) for key, value in item.items())
    if isinstance(item, list):
        return all(_all_keys_are_integers(value) for value in item)
    return True


def test_figure7_encodes_to_the_bytes_of_figure8() -> None:
    figure8 = bytes.fromhex((DATA / "rfc9132" / "fig08-mitigation-request.cbor.hex").read_text().strip())
    assert encode_signal(_load("rfc9132/fig07-mitigation-request.json")) == figure8
    assert decode_signal(figure8) == _load("rfc9132/fig07-mitigation-request.json")


def test_hand_checked_keys_of_a_mitigation_request() -> None:
    # RFC 9132 Table 5: mitigation-scope 1, scope 2, target-prefix 6, target-port-range 7, lower-port 8,
    # target-protocol 10, lifetime 14.
    cbor = json_to_cbor(_load("rfc9132/fig07-mitigation-request.json"))
    scope = cbor[1][2][0]
    assert set(scope) == {6, 7, 10, 14}
    assert scope[7] == [{8: 80}, {8: 443}, {8: 8080}]
    assert scope[14] == 3600


def test_hand_checked_status_enumeration_and_64bit_counters() -> None:
    # status 16: attack-successfully-mitigated = 2, attack-stopped = 3 (RFC 9132 Table 3); mitigation-start 15 and
    # bytes-dropped 25 are uint64: JSON strings, CBOR unsigned integers.
    scopes = json_to_cbor(_load("rfc9132/fig14-get-response.json"))[1][2]
    assert [scope[16] for scope in scopes] == [2, 3]
    assert scopes[0][15] == 1507818434
    assert scopes[0][25] == 134334555


def test_hand_checked_decimal64_is_a_tag4_decimal_fraction() -> None:
    # signal-config 30, mitigating-config 32, ack-random-factor 40, current-value-decimal 43: tag 4 [-2, 150].
    payload = encode_signal(_load("rfc9132/fig20-config-response.json"))
    # ack-random-factor (40) {max-value-decimal (41): 4.00, min-value-decimal (42): 1.10, current (43): 1.50}
    ack_random_factor = "1828 a3 1829 c482 21 190190 182a c482 21 186e 182b c482 21 1896"
    assert bytes.fromhex(ack_random_factor.replace(" ", "")) in payload
    decoded = cbor2.loads(payload)
    assert decoded[30][44][39][42].as_tuple().exponent == -2  # idle-config 44, ack-timeout 39, min-value-decimal 42


def test_hand_checked_extension_keys() -> None:
    # RFC 9133: acl-list 53, acl-name 23, activation-type 52 (deactivate = 3).
    scope = json_to_cbor(_load("rfc9133/fig12-deactivate-rate-limit-filter.json"))[1][2][0]
    assert scope[53] == [{23: "my-ratelimit-list", 52: 3}]
    # RFC 9066: source-prefix 32768 (leaf-list), alt-ch-client 32773, ttl 32775.
    call_home = json_to_cbor(_load("rfc9066/fig10-call-home-mitigation-request.json"))[1][2][0]
    assert isinstance(call_home[32768], list)
    redirect = json_to_cbor(_load("rfc9066/fig09-redirected-signal-call-home-fixed.json"))[46]
    assert redirect[32773] == "alt-call-home-client.example"
    assert redirect[32775] == 600
    # RFC 9244: telemetry-setup 203, telemetry 129, current-config 175, low-percentile 130 (tag 4).
    setup = json_to_cbor(_load("rfc9244/fig04-telemetry-configuration.json"))
    assert set(setup) == {203}
    assert 175 in setup[203][129][0]
    # RFC 9362: max-payloads 32776 (current-value 36), non-receive-timeout 32779 (current-value-decimal 43).
    robust = json_to_cbor(_load("rfc9362/fig02-config-put-robust-transmission.json"))[30][32]
    assert robust[32776] == {36: 15}
    assert str(robust[32779][43]) == "4.00"


def test_hand_checked_telemetry_units_are_enumeration_values() -> None:
    # unit 134: megabit-ps = 8 (ietf-dots-telemetry typedef unit).
    body = _load("rfc9244/fig43-telemetry-notification-fixed.json")
    traffic = json_to_cbor(body)[208][138][0][144]
    assert traffic == [{134: 8, 141: 900}]


def test_rfc9244_figure43_as_printed_is_rejected_by_the_schema() -> None:
    with pytest.raises(ModelError) as caught:
        validate_telemetry(_load("rfc9244/fig43-telemetry-notification-verbatim-invalid.json"))
    assert caught.value.code == "4.00"
    assert "target-protocol" in caught.value.diagnostic
