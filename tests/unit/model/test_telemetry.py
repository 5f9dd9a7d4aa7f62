"""RFC 9244 telemetry bodies beyond the RFC's figures: the setup response a server sends (RFC 9244 §7.1.2, no
example body in the RFC) and a pre-or-ongoing-mitigation report using the talker and connection members."""

from __future__ import annotations

import copy
from typing import Any

import cbor2
import pytest

from opendots.model import (
    ModelError,
    decode_telemetry,
    decode_telemetry_with_ignored,
    encode_telemetry,
    json_to_cbor,
    validate_telemetry,
)

PARAMETERS = {"measurement-interval": "hour", "measurement-sample": "minute"}

SETUP_RESPONSE: dict[str, Any] = {
    "ietf-dots-telemetry:telemetry-setup": {
        "max-config-values": {
            **PARAMETERS,
            "low-percentile": "20.00",
            "mid-percentile": "60.00",
            "high-percentile": "99.99",
            "server-originated-telemetry": True,
            "telemetry-notify-interval": 3600,
        },
        "min-config-values": {**PARAMETERS, "low-percentile": "1.00", "telemetry-notify-interval": 1},
        "supported-unit-classes": {
            "unit-config": [{"unit": "packet-ps", "unit-status": True}, {"unit": "bit-ps", "unit-status": False}]
        },
        "supported-query-type": ["target-prefix", "target-port", "mid", "content"],
        "telemetry": [
            {
                "tsid": 7,
                "current-config": {
                    "measurement-interval": "5-minutes",
                    "low-percentile": "10.00",
                    "unit-config": [{"unit": "byte-ps", "unit-status": True}],
                    "telemetry-notify-interval": 60,
                },
            },
            {"tsid": 8, "total-pipe-capacity": [{"link-id": "uplink-1", "capacity": "400", "unit": "gigabit-ps"}]},
        ],
    }
}

REPORT: dict[str, Any] = {
    "ietf-dots-telemetry:telemetry": {
        "pre-or-ongoing-mitigation": [
            {
                "tmid": 9,
                "target": {"target-prefix": ["203.0.113.0/24"], "target-protocol": [6], "mid-list": [1, 2]},
                "total-traffic": [{"unit": "megabit-ps", "current-g": "1200", "peak-g": "18446744073709551615"}],
                "total-attack-connection-protocol": [
                    {"protocol": 6, "connection-c": {"current-g": "3"}, "embryonic-c": {"peak-g": "9"}}
                ],
                "attack-detail": [
                    {
                        "vendor-id": 32473,
                        "attack-id": 1,
                        "description-lang": "en-US",
                        "attack-severity": "medium",
                        "start-time": "1618339785",
                        "source-count": {"current-g": "42"},
                        "top-talker": {
                            "talker": [
                                {
                                    "source-prefix": "198.51.100.7/32",
                                    "spoofed-status": False,
                                    "source-port-range": [{"lower-port": 1024, "upper-port": 65535}],
                                    "source-icmp-type-range": [{"lower-type": 0, "upper-type": 8}],
                                    "total-attack-traffic": [{"unit": "packet-ps", "current-g": "1000"}],
                                    "total-attack-connection-protocol": [
                                        {"protocol": 17, "request-ps-c": {"current-g": "5"}}
                                    ],
                                }
                            ]
                        },
                    }
                ],
            }
        ]
    }
}


@pytest.mark.parametrize("body", [SETUP_RESPONSE, REPORT], ids=["setup-response", "report"])
def test_constructed_telemetry_bodies_round_trip(body: dict[str, Any]) -> None:
    validate_telemetry(body)
    assert decode_telemetry(encode_telemetry(body)) == body


def test_telemetry_keys_and_enumerations() -> None:
    setup = json_to_cbor(SETUP_RESPONSE)[203]
    # supported-query-type 201: target-prefix 1, target-port 2, mid 7, content 11 (ietf-dots-telemetry query-type).
    assert setup[201] == [1, 2, 7, 11]
    assert setup[176][182] == 4  # max-config-values / measurement-interval: hour = 4
    assert setup[176][183] == 4  # measurement-sample: minute = 4
    assert setup[178][133] == [{134: 1, 135: True}, {134: 2, 135: False}]  # unit-class packet-ps 1, bit-ps 2
    assert setup[129][1][136] == [{137: "uplink-1", 190: 400, 134: 11}]  # capacity uint64, unit gigabit-ps 11
    report = json_to_cbor(REPORT)[208][138][0]
    assert report[145][0][143] == 2**64 - 1  # peak-g: gauge64 at its maximum
    talker = report[162][0][170][184][0]
    assert talker[185] == "198.51.100.7/32"
    assert talker[171] is False
    assert report[162][0][166] == 3  # attack-severity medium


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda body: body["pre-or-ongoing-mitigation"][0]["target"].update({"target-prefix": ["203.0.113.0/33"]}),
            "target-prefix",
        ),
        (lambda body: body["pre-or-ongoing-mitigation"][0]["total-traffic"][0].update({"unit": "furlong-ps"}), "unit"),
        (
            lambda body: body["pre-or-ongoing-mitigation"][0]["attack-detail"][0].update(
                {"description-lang": "english!"}
            ),
            "description-lang",
        ),
        (
            lambda body: body["pre-or-ongoing-mitigation"][0]["total-traffic"][0].update(
                {"peak-g": "18446744073709551616"}
            ),
            "peak-g",
        ),
    ],
)
def test_telemetry_violations(change: Any, expected: str) -> None:
    body = copy.deepcopy(REPORT)
    change(body["ietf-dots-telemetry:telemetry"])
    with pytest.raises(ModelError) as caught:
        validate_telemetry(body)
    assert expected in caught.value.diagnostic


def test_percentiles_must_be_ordered() -> None:
    body = {
        "ietf-dots-telemetry:telemetry-setup": {
            "telemetry": [{"current-config": {"low-percentile": "50.00", "mid-percentile": "40.00"}}]
        }
    }
    with pytest.raises(ModelError, match="must-violation"):
        validate_telemetry(body)


def test_telemetry_cbor_type_errors() -> None:
    with pytest.raises(ModelError, match="decimal fraction"):
        decode_telemetry(cbor2.dumps({203: {129: [{175: {130: "10.00"}}]}}))


def test_unknown_optional_keys_in_telemetry_are_reported() -> None:
    message = json_to_cbor(SETUP_RESPONSE)
    message[203][129][0][211] = "unregistered"
    body, ignored = decode_telemetry_with_ignored(cbor2.dumps(message))
    assert body == SETUP_RESPONSE
    assert ignored == ["/ietf-dots-telemetry:telemetry-setup/telemetry[0]/211"]
