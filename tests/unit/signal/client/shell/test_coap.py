"""DotsRequest ⇄ CoAP message conversion (no sockets): options, types, CBOR bodies, error payloads."""

from __future__ import annotations

from decimal import Decimal

import aiocoap

from opendots.model import encode_signal
from opendots.signal.client.core.requests import (
    config_put_request,
    efficacy_request,
    heartbeat_request,
    mitigation_request,
    status_request,
)
from opendots.signal.client.core.scope import MitigationScope, PortRange
from opendots.signal.client.core.timing import SessionParameters, config_put_body
from opendots.signal.client.shell import coap

CUID = "dz6pHjaADkaFTbjr0JGBpw"
SCOPE = MitigationScope(
    target_prefixes=("2001:db8:6401::1/128", "2001:db8:6401::2/128"),
    target_port_ranges=(PortRange(80), PortRange(443), PortRange(8080)),
    target_protocols=(6,),
)
# RFC 9132 Figure 8, byte for byte.
FIGURE_8 = bytes.fromhex(
    "a101a10281a40682"
    "74323030313a6462383a363430313a3a312f313238"
    "74323030313a6462383a363430313a3a322f313238"
    "0783a1081850a1081901bba108191f90"
    "0a8106"
    "0e190e10"
)


def test_mitigation_request_message() -> None:
    message = coap.build_message("coaps://[2001:db8::1]:4646", mitigation_request(CUID, 123, SCOPE), reliable=False)
    assert message.code == aiocoap.PUT
    assert message.opt.uri_path == (".well-known", "dots", "mitigate", f"cuid={CUID}", "mid=123")
    assert message.opt.content_format == 271 and message.transport_tuning.reliability is False
    assert message.payload == FIGURE_8


def test_efficacy_status_config_and_heartbeat_options() -> None:
    base = "coaps://127.0.0.1:4646"
    efficacy = coap.build_message(base, efficacy_request(CUID, 5, SCOPE, "under-attack"), reliable=False)
    assert efficacy.opt.if_match == (b"",)
    observe = coap.build_message(base, status_request(CUID, 5, content="n", observe=0), reliable=False)
    assert observe.code == aiocoap.GET and observe.opt.observe == 0 and observe.opt.uri_query == ("c=n",)
    assert observe.payload == b""
    parameters = SessionParameters(max_retransmit=7, ack_timeout=Decimal("3.00"), ack_random_factor=Decimal("1.20"))
    config = coap.build_message(
        base, config_put_request(3, config_put_body(idle={"heartbeat_interval": 60})), reliable=False,
        parameters=parameters,
    )  # fmt: skip
    tuning = config.transport_tuning
    assert tuning.reliability is True  # session configuration is CON (RFC 9132 §4.5)
    assert (tuning.ACK_TIMEOUT, tuning.ACK_RANDOM_FACTOR, tuning.MAX_RETRANSMIT) == (3.0, 1.2, 7)
    heartbeat = coap.build_message("coaps+tcp://127.0.0.1:4646", heartbeat_request(True), reliable=True)
    assert heartbeat.opt.uri_path == (".well-known", "dots", "hb") and heartbeat.transport_tuning.reliability


def test_responses_are_decoded_or_kept_as_diagnostics() -> None:
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": 123, "lifetime": 3600}]}}
    created = aiocoap.Message(code=aiocoap.CREATED, payload=encode_signal(body), content_format=271)
    created.opt.max_age = 60
    response = coap.to_dots_response(created)
    assert (response.code, response.body, response.max_age, response.success) == ("2.01", body, 60, True)
    assert response.scopes == [{"mid": 123, "lifetime": 3600}]
    refused = coap.to_dots_response(aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=b"lifetime 0 is invalid"))
    assert (refused.code, refused.body, refused.diagnostic) == ("4.00", None, "lifetime 0 is invalid")
    garbage = coap.to_dots_response(aiocoap.Message(code=aiocoap.CONTENT, payload=b"\xff\x00", content_format=271))
    assert garbage.body is None and garbage.diagnostic.startswith("undecodable DOTS body")
    assert coap.to_dots_response(aiocoap.Message(code=aiocoap.DELETED)).body is None
