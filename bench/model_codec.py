"""Decode + validate and encode cost of signal channel bodies, next to two references measured in the same run:
the bare CBOR decode of the same bytes, and yangson validating the same body on its own (the validator the model
used alone before compiled.py; it still words every rejection and checks every must/when).

Every figure is the p50 (and p99 where shown) of single calls, in microseconds; the machine is shared, so run it a
few times. Run: .venv/bin/python bench/model_codec.py [--calls N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opendots.model import ModelError, cbor_to_json, decode_signal, encode_signal, validate_signal
from opendots.model.schema import build_signal_schema
from opendots.model.validate import yangson_verdict

DATA = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
BODIES = {
    "RFC 9132 Fig. 7 (request)": DATA / "rfc9132" / "fig07-mitigation-request.json",
    "RFC 9132 Fig. 14 (2 scopes, status)": DATA / "rfc9132" / "fig14-get-response.json",
    "RFC 9244 Fig. 47 (status + telemetry)": DATA / "rfc9244" / "fig47-mitigation-status-with-telemetry.json",
    "RFC 9132 Fig. 20 (config)": DATA / "rfc9132" / "fig20-config-response.json",
    "RFC 9132 Fig. 6 (port ranges: must)": DATA / "rfc9132" / "fig06-mitigation-request-schema-filled.json",
}


def timings_us(function: Callable[[], object], calls: int) -> list[float]:
    """Single-call durations in microseconds, after a warm-up."""
    for _ in range(min(calls, 50)):
        function()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        function()
        samples.append((clock() - start) / 1e3)
    return samples


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    calls = parser.parse_args().calls
    start = time.perf_counter()
    build_signal_schema()
    print(f"schema load (derive + yangson parse): {(time.perf_counter() - start) * 1e3:.0f} ms")
    header = (
        f"{'body (p50 us; decode also p99)':38} {'bytes':>5} {'cbor2':>6} {'+JSON':>6} {'decode':>7} {'p99':>7}"
        f" {'encode':>7} {'enc,novalid':>11} {'yangson':>8}"
    )
    print(header)
    print("-" * len(header))
    for label, path in BODIES.items():
        body: dict[str, Any] = json.loads(path.read_text())
        ((_, contents),) = body.items()
        payload = encode_signal(body)
        reference = timings_us(lambda payload=payload: cbor2.loads(payload), calls)
        to_json = timings_us(lambda payload=payload: cbor_to_json(cbor2.loads(payload)), calls)
        decode = timings_us(lambda payload=payload: decode_signal(payload), calls)
        encode = timings_us(lambda body=body: encode_signal(body), calls)
        encode_unchecked = timings_us(lambda body=body: encode_signal(body, validate=False), calls)
        yangson = timings_us(lambda contents=contents: yangson_verdict(contents), max(calls // 10, 50))
        print(
            f"{label:38} {len(payload):5} {p50(reference):6.1f} {p50(to_json):6.1f} {p50(decode):7.1f}"
            f" {p99(decode):7.1f} {p50(encode):7.1f} {p50(encode_unchecked):11.1f} {p50(yangson):8.1f}"
        )
    figure7 = json.loads(BODIES["RFC 9132 Fig. 7 (request)"].read_text())
    print(f"validate_signal alone, Fig. 7: {p50(timings_us(lambda: validate_signal(figure7), calls)):.1f}us")
    # A rejected body still costs a yangson run: yangson words the diagnostic the peer gets.
    rejected = cbor2.dumps({1: {2: [{6: ["2001:db8::/32"], 7: [{8: 70000}]}]}})
    print(f"decode of a rejected request (lower-port 70000): {p50(timings_us(lambda: _rejected(rejected), 200)):.1f}us")


def _rejected(payload: bytes) -> None:
    try:
        decode_signal(payload)
    except ModelError:
        return
    raise AssertionError("accepted")


if __name__ == "__main__":
    main()
