"""Decode + validate cost of signal channel bodies, next to the bare CBOR decode of the same bytes (reference).

Run: /opt/odvenv/bin/python bench/model_codec.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opendots.model import cbor_to_json, decode_signal, encode_signal, validate_signal
from opendots.model.schema import build_signal_schema

DATA = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data"
BODIES = {
    "RFC 9132 Fig. 7 (request)": DATA / "rfc9132" / "fig07-mitigation-request.json",
    "RFC 9132 Fig. 14 (2 scopes, status)": DATA / "rfc9132" / "fig14-get-response.json",
    "RFC 9244 Fig. 47 (status + telemetry)": DATA / "rfc9244" / "fig47-mitigation-status-with-telemetry.json",
    "RFC 9132 Fig. 20 (config)": DATA / "rfc9132" / "fig20-config-response.json",
}


def per_call_us(function: Callable[[], object], rounds: int = 5, calls: int = 400) -> float:
    """Median over ``rounds`` of the mean time per call, in microseconds."""
    function()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main() -> None:
    start = time.perf_counter()
    build_signal_schema()
    print(f"schema load (derive + yangson parse): {(time.perf_counter() - start) * 1e3:.0f} ms")
    header = f"{'body':40} {'bytes':>6} {'cbor2.loads':>12} {'+to JSON':>10} {'+validate':>10} {'encode':>10}"
    print(header)
    print("-" * len(header))
    for label, path in BODIES.items():
        body = json.loads(path.read_text())
        payload = encode_signal(body)
        reference = per_call_us(lambda payload=payload: cbor2.loads(payload))
        to_json = per_call_us(lambda payload=payload: cbor_to_json(cbor2.loads(payload)))
        decode = per_call_us(lambda payload=payload: decode_signal(payload))
        encode = per_call_us(lambda body=body: encode_signal(body))
        print(f"{label:40} {len(payload):6} {reference:10.1f}us {to_json:8.1f}us {decode:8.1f}us {encode:8.1f}us")
    validate_only = per_call_us(lambda: validate_signal(json.loads(BODIES["RFC 9132 Fig. 7 (request)"].read_text())))
    print(f"validate_signal alone, Fig. 7 (incl. json.loads of the file): {validate_only:.1f}us")


if __name__ == "__main__":
    main()
