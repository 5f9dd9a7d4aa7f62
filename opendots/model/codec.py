"""Wire bytes ⇄ validated YANG-JSON bodies: the entry points the signal layer calls."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import cbor2

from .convert import cbor_to_json, json_to_cbor
from .errors import ModelError
from .validate import validate_signal, validate_telemetry

DEFAULT_MAX_SIZE = 64 * 1024
DOTS_CBOR_TAG = 271  # RFC 9132 §10.5: optional tag announcing a DOTS signal channel object
_DOTS_TAG_HEADER = b"\xd9\x01\x0f"  # its preferred encoding: major type 6, two-byte argument 271


def load_cbor(payload: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Exactly one well-formed CBOR item, at most ``max_size`` bytes, with an optional DOTS tag stripped."""
    if len(payload) > max_size:
        raise ModelError("4.13", f"payload of {len(payload)} bytes exceeds the {max_size}-byte limit")
    if not payload:
        raise ModelError("4.00", "empty payload")
    # cbor2 freezes the contents of a tag (frozendict, tuple); stripping the DOTS tag first keeps plain dicts/lists.
    stream = io.BytesIO(payload)
    if payload.startswith(_DOTS_TAG_HEADER):
        stream.seek(len(_DOTS_TAG_HEADER))
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, RecursionError, ValueError, OverflowError) as error:
        raise ModelError("4.00", f"malformed CBOR: {error}") from None
    if stream.tell() != len(payload):
        raise ModelError("4.00", f"{len(payload) - stream.tell()} bytes after the CBOR item")
    if not isinstance(item, dict):
        raise ModelError("4.00", "the payload must be a CBOR map")
    return item


def _decode(
    payload: bytes, max_size: int, validate: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], list[str]]:
    body, ignored = cbor_to_json(load_cbor(payload, max_size))
    validate(body)
    return body, ignored


def decode_signal(payload: bytes, max_size: int = DEFAULT_MAX_SIZE) -> dict[str, Any]:
    """CBOR bytes → validated YANG-JSON (top-level ``ietf-dots-signal-channel:<case>``).

    Unknown comprehension-optional keys are dropped; use ``decode_signal_with_ignored`` to see them."""
    return _decode(payload, max_size, validate_signal)[0]


def decode_signal_with_ignored(payload: bytes, max_size: int = DEFAULT_MAX_SIZE) -> tuple[dict[str, Any], list[str]]:
    """Like decode_signal, also returning the dropped comprehension-optional keys (``/path/key``) for logging."""
    return _decode(payload, max_size, validate_signal)


def decode_telemetry(payload: bytes, max_size: int = DEFAULT_MAX_SIZE) -> dict[str, Any]:
    """CBOR bytes → validated YANG-JSON telemetry body (``ietf-dots-telemetry:telemetry-setup`` / ``:telemetry``)."""
    return _decode(payload, max_size, validate_telemetry)[0]


def decode_telemetry_with_ignored(payload: bytes, max_size: int = DEFAULT_MAX_SIZE) -> tuple[dict[str, Any], list[str]]:
    """Like decode_telemetry, also returning the dropped comprehension-optional keys (``/path/key``)."""
    return _decode(payload, max_size, validate_telemetry)


# Server-built bodies may skip validation in production (``validate=False``); a test session turns this on so
# that a body builder bug still fails loudly there.
_validate_every_encoding = False


def validate_every_encoding(enabled: bool = True) -> None:
    """Test mode: encode_signal/encode_telemetry validate every body, even where the caller passed validate=False."""
    global _validate_every_encoding
    _validate_every_encoding = enabled


def _encode(body: dict[str, Any], validate: Callable[[dict[str, Any]], None], wanted: bool) -> bytes:
    if wanted or _validate_every_encoding:
        validate(body)
    return cbor2.dumps(json_to_cbor(body))


class EncodedSignal(dict[str, Any]):
    """A signal body the server built and encoded once, to answer with again and again while it holds (a GET of a
    mitigation that has not changed): `encode_signal` returns `cbor` without converting. Never change one: build
    another. The test suites (validate_every_encoding) check `cbor` against a fresh encoding each time."""

    __slots__ = ("cbor",)

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.cbor = cbor2.dumps(json_to_cbor(body))


def encode_signal(body: dict[str, Any], validate: bool = True) -> bytes:
    """YANG-JSON signal body → CBOR bytes (integer keys). Validates first unless ``validate=False`` (for bodies the
    server built itself; see validate_every_encoding for tests). An EncodedSignal gives its bytes."""
    if type(body) is EncodedSignal:
        if validate or _validate_every_encoding:
            fresh = _encode(body, validate_signal, True)
            if fresh != body.cbor:
                raise ModelError("5.00", "an encoded signal body was changed after it was encoded")
        return body.cbor
    return _encode(body, validate_signal, validate)


def encode_telemetry(body: dict[str, Any], validate: bool = True) -> bytes:
    """YANG-JSON telemetry body → CBOR bytes (integer keys). Validates first unless ``validate=False``."""
    return _encode(body, validate_telemetry, validate)
