"""The DOTS data model: CBOR key table ⇄ YANG names, YANG validation, typed records. Pure: no I/O.

Public API (the signal layer codes against these names):

- ``decode_signal(payload, max_size=65536) -> dict`` / ``encode_signal(body) -> bytes``
- ``decode_signal_with_ignored`` / ``decode_telemetry_with_ignored``: also return the dropped optional keys
- ``decode_telemetry`` / ``encode_telemetry`` for the RFC 9244 ``dots-telemetry`` structure
- ``cbor_to_json(obj) -> (json, ignored_optional_keys)`` / ``json_to_cbor(obj) -> dict`` (no validation)
- ``validate_signal(body)`` / ``validate_telemetry(body)``
- ``ModelError(code, diagnostic)``: the CoAP code (``"4.00"``, ``"4.13"``) and plain-text diagnostic to answer with
- ``key_table()``: every CBOR key with name, types, comprehension and owning module
"""

from .codec import (
    DEFAULT_MAX_SIZE,
    EncodedSignal,
    decode_signal,
    decode_signal_with_ignored,
    decode_telemetry,
    decode_telemetry_with_ignored,
    encode_signal,
    encode_telemetry,
    load_cbor,
)
from .convert import SIGNAL_TOP_LEVEL, TELEMETRY_TOP_LEVEL, cbor_to_json, json_to_cbor
from .errors import ModelError
from .keys import Comprehension, KeyEntry, KeyTable, key_table
from .validate import validate_signal, validate_telemetry

__all__ = [
    "DEFAULT_MAX_SIZE",
    "SIGNAL_TOP_LEVEL",
    "TELEMETRY_TOP_LEVEL",
    "Comprehension",
    "EncodedSignal",
    "KeyEntry",
    "KeyTable",
    "ModelError",
    "cbor_to_json",
    "decode_signal",
    "decode_signal_with_ignored",
    "decode_telemetry",
    "decode_telemetry_with_ignored",
    "encode_signal",
    "encode_telemetry",
    "json_to_cbor",
    "key_table",
    "load_cbor",
    "validate_signal",
    "validate_telemetry",
]
