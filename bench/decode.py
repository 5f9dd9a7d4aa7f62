"""CPU cost of decoding a PUT /mitigate body and parsing its scope entry, per body, on corpora of distinct bodies.

Each corpus holds N bodies that differ in their target prefix (so memos of accepted strings mostly miss, as with
many clients). Two figures per corpus, in microseconds of process CPU per body (time.process_time over the whole
corpus, best of --rounds rounds): ``decode_signal(payload)`` and ``parse_scope_body(decode_signal(payload))``.
The reference is the bare CBOR decode of the same bytes (cbor2.loads), measured in the same run.

With --reference DIR (a copy of another commit's tree, e.g. ``mkdir /tmp/ref && git archive main opendots | tar -x
-C /tmp/ref``), the same corpora are also timed with that copy's code, in a child process, and printed side by side.

Run: /opt/odvenv/bin/python bench/decode.py [--bodies 3000] [--rounds 7] [--reference DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCOPE = "ietf-dots-signal-channel:mitigation-scope"


def _ipv6_entry(i: int) -> dict[str, Any]:
    return {
        "target-prefix": [f"2001:db8:{i % 100 + 1:x}:{i:x}::/64"],
        "target-port-range": [{"lower-port": 80}, {"lower-port": 443}],
        "target-protocol": [6],
        "lifetime": 3600,
    }


def _ipv4_entry(i: int) -> dict[str, Any]:
    network = ("192.0.2", "198.51.100", "203.0.113")[i % 3]
    return {
        "target-prefix": [f"{network}.{i % 256}/32"],
        "target-port-range": [{"lower-port": 53}, {"lower-port": 8000, "upper-port": 8080}],
        "target-protocol": [17, 6],
        "lifetime": 3600,
    }


def _mixed_entry(i: int) -> dict[str, Any]:
    entry = _ipv6_entry(i) if i % 2 else _ipv4_entry(i)
    entry["target-prefix"] = [*entry["target-prefix"], f"2001:db8:ff:{i:x}::/64", f"198.51.100.{i % 64 * 4}/30"]
    return entry


def _names_entry(i: int) -> dict[str, Any]:
    return {
        "target-fqdn": [f"www{i}.example.com"],
        "alias-name": [f"alias-{i}"],
        "target-protocol": [6],
        "lifetime": -1,
        "trigger-mitigation": False,
    }


def _refresh_entry(i: int) -> dict[str, Any]:
    entry = _ipv6_entry(i)
    entry["attack-status"] = "under-attack"
    return entry


def _efficacy_entry(i: int) -> dict[str, Any]:
    entry = _ipv6_entry(i)
    del entry["lifetime"]
    entry["attack-status"] = "attack-successfully-mitigated"
    return entry


CORPORA: dict[str, Callable[[int], dict[str, Any]]] = {
    "IPv6 /64 (the load test's body)": _ipv6_entry,
    "IPv4 /32, 2 protocols, range": _ipv4_entry,
    "3 prefixes, v4+v6 mix": _mixed_entry,
    "fqdn + alias, no prefix": _names_entry,
    "refresh with attack-status": _refresh_entry,
    "efficacy update (no lifetime)": _efficacy_entry,
}


def corpus_payloads(make: Callable[[int], dict[str, Any]], count: int) -> list[bytes]:
    from opendots.model import encode_signal

    return [encode_signal({SCOPE: {"scope": [make(i)]}}) for i in range(count)]


def cpu_us_per_body(function: Callable[[bytes], object], payloads: list[bytes], rounds: int) -> float:
    """Best of ``rounds`` passes over the corpus: process CPU time per body, in microseconds. Each pass starts with
    the lru cache of parse_prefix cleared (so every prefix is a miss, as with distinct clients)."""
    from opendots.domain.addresses import parse_prefix

    best = float("inf")
    for _ in range(rounds):
        parse_prefix.cache_clear()
        start = time.process_time()
        for payload in payloads:
            function(payload)
        best = min(best, time.process_time() - start)
    return best / len(payloads) * 1e6


def measure(bodies: int, rounds: int) -> dict[str, list[float]]:
    """{corpus: [cbor2 only, decode_signal, decode + parse_scope_body]} in µs per body."""
    import cbor2

    from opendots.model import decode_signal
    from opendots.signal.server.core.scope import parse_scope_body

    def decode_and_parse(payload: bytes) -> object:
        return parse_scope_body(decode_signal(payload))

    figures = {}
    for label, make in CORPORA.items():
        payloads = corpus_payloads(make, bodies)
        decode_and_parse(payloads[0])  # schema load and compilation outside the timing
        figures[label] = [
            cpu_us_per_body(function, payloads, rounds) for function in (cbor2.loads, decode_signal, decode_and_parse)
        ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reference", type=Path, help="another checkout, timed with the same corpora")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only (used for --reference)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="import opendots here")
    arguments = parser.parse_args()
    sys.path.insert(0, str(arguments.root))
    reference: dict[str, list[float]] | None = None
    if arguments.reference is not None:
        command = [sys.executable, str(Path(__file__).resolve()), "--json"]
        command += ["--bodies", str(arguments.bodies), "--rounds", str(arguments.rounds)]
        command += ["--root", str(arguments.reference.resolve())]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        reference = json.loads(output)
    figures = measure(arguments.bodies, arguments.rounds)
    if arguments.json:
        print(json.dumps(figures))
        return
    print(f"{arguments.bodies} distinct bodies per corpus, CPU µs per body (best of {arguments.rounds} passes)")
    header = f"{'corpus':34} {'cbor2':>6} {'decode':>7} {'+parse':>7}"
    if reference is not None:
        header += f" | {'ref decode':>10} {'ref +parse':>10} {'change':>7}"
    print(header)
    print("-" * len(header))
    for label, (bare, decode, total) in figures.items():
        line = f"{label:34} {bare:6.1f} {decode:7.1f} {total:7.1f}"
        if reference is not None:
            _, ref_decode, ref_total = reference[label]
            line += f" | {ref_decode:10.1f} {ref_total:10.1f} {(total / ref_total - 1) * 100:+6.0f}%"
        print(line)


if __name__ == "__main__":
    main()
