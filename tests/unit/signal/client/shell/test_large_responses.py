"""A response body larger than a request body may be (RFC 9132 §4.4.2: a GET of all of a client's mitigations): the
client decodes what the transport put together, up to the Q-Block engine's bound on a body, not the 64 KiB a
request stops at. bench/blocks.py found the agent's GET of 10,000 mitigations (~450 KiB) answered and thrown away."""

from __future__ import annotations

import aiocoap

from opendots.model import encode_signal
from opendots.signal.client.shell import coap


def mitigations(count: int) -> dict:
    scopes = [
        {"mid": mid, "target-prefix": [f"2001:db8:{mid >> 8:x}:{mid & 0xFF:x}::/64"], "lifetime": 3600}
        for mid in range(1, count + 1)
    ]
    return {"ietf-dots-signal-channel:mitigation-scope": {"scope": scopes}}


def test_a_get_of_10000_mitigations_is_decoded_whole() -> None:
    payload = encode_signal(mitigations(10_000))
    assert len(payload) > 64 * 1024
    response = coap.to_dots_response(aiocoap.Message(code=aiocoap.CONTENT, payload=payload, content_format=271))
    assert response.diagnostic is None and len(response.scopes) == 10_000


def test_a_body_past_the_engines_bound_is_still_refused_with_a_diagnostic() -> None:
    payload = encode_signal(mitigations(40_000))
    assert len(payload) > coap.RESPONSE_MAX_SIZE
    response = coap.to_dots_response(aiocoap.Message(code=aiocoap.CONTENT, payload=payload, content_format=271))
    assert response.body is None and response.diagnostic.startswith("undecodable DOTS body")
