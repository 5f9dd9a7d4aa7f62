"""A request's body: the CBOR payload the shell handed over, decoded and validated against the YANG module."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from opendots.model import ModelError, decode_signal, decode_telemetry, validate_telemetry
from opendots.signal.server.core.messages import Request, reject


def body_of(request: Request) -> Any:
    """REQUEST's body as validated YANG-JSON: its CBOR payload decoded and validated against the YANG module (a
    malformed one is refused with the code the data model gives: 4.00, 4.13, ...), or the body it came with."""
    if request.payload is None:
        return request.body
    try:
        return decode_signal(request.payload)
    except ModelError as problem:
        raise reject(problem.code, problem.diagnostic) from None


def decoded(request: Request) -> Request:
    """REQUEST with `body` decoded from its payload (for the handlers that read `request.body`)."""
    return request if request.payload is None else replace(request, body=body_of(request), payload=None)


def telemetry_body(request: Request, what: str) -> Any:
    """An RFC 9244 request's body, validated against ietf-dots-telemetry (a body handed over decoded is validated
    too: it did not come through the CoAP shell); none at all is refused (4.00) naming WHAT needed one."""
    if request.payload is None and request.body is None:
        raise reject("4.00", f"a {what} request needs a body")
    try:
        if request.payload is not None:
            return decode_telemetry(request.payload)
        validate_telemetry(request.body)
        return request.body
    except ModelError as problem:
        raise reject(problem.code, problem.diagnostic) from None
