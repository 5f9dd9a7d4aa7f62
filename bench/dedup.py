"""Memory and CPU of CoAP duplicate detection per received message: aiocoap's MessageManager (one 247 s timer per
message) against ours (TimerlessDedupMessageManager: one FIFO, one timer), in the same run.

    .venv/bin/python bench/dedup.py [--messages 400000] [--rounds 3]

Each variant runs in a child process of its own on the event loop `opendots server` uses (uvloop), so its resident
memory grows only by what it keeps: MESSAGES distinct incoming NON requests (100 remotes, every message ID) go
through `_deduplicate_message`, as `dispatch_message` does for every request a server receives. A server under
sustained load keeps what arrived over the last EXCHANGE_LIFETIME (247 s): at 1,750 requests/s that is ~430,000
entries. Prints µs per message (best of --rounds) and bytes kept per message (median). Not a test: nothing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import subprocess
import time

import aiocoap
from aiocoap.messagemanager import MessageManager
from aiocoap.tokenmanager import TokenManager

from bench._common import print_table, rss_kib
from opendots import eventloop
from opendots.transport.aiocoap_hooks import TimerlessDedupMessageManager

VARIANTS = {"aiocoap": MessageManager, "OpenDOTS": TimerlessDedupMessageManager}


class _Remote:
    """Stands for a DTLS session: identity-hashed, as our DtlsRemote is."""


async def measure(variant: str, count: int) -> dict[str, float]:
    """One fresh manager, COUNT distinct messages: CPU per message and resident memory kept per message."""
    remotes = [_Remote() for _ in range(100)]
    messages = []
    for index in range(count):
        message = aiocoap.Message(code=aiocoap.PUT, mtype=aiocoap.NON, mid=index & 0xFFFF)
        message.remote = remotes[index // 0x10000 % len(remotes)]
        messages.append(message)
    manager = VARIANTS[variant](TokenManager(aiocoap.Context()))
    before = rss_kib(os.getpid())
    started = time.process_time()
    for message in messages:
        manager._deduplicate_message(message)
    elapsed = time.process_time() - started
    return {"us": elapsed / count * 1e6, "bytes": (rss_kib(os.getpid()) - before) * 1024 / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(eventloop.run(measure(args.variant, args.messages))))
        return
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for round_index in range(args.rounds):  # a child process per measurement, the variants taking turns
        for variant in list(VARIANTS)[:: 1 if round_index % 2 == 0 else -1]:
            argv = [sys.executable, __file__, "--variant", variant, "--messages", str(args.messages)]
            output = subprocess.run(argv, capture_output=True, text=True, check=True)
            results[variant].append(json.loads(output.stdout))
    ours, reference = (
        {"us": min(r["us"] for r in results[v]), "bytes": statistics.median(r["bytes"] for r in results[v])}
        for v in ("OpenDOTS", "aiocoap")
    )
    print_table(
        [
            (
                "duplicate detection, CPU per received message",
                f"{ours['us']:.2f} us",
                f"aiocoap's own {reference['us']:.2f} us: ratio {ours['us'] / reference['us']:.2f}",
            ),
            (
                "duplicate detection, memory kept per received message",
                f"{ours['bytes']:.0f} B",
                f"aiocoap's own {reference['bytes']:.0f} B: ratio {ours['bytes'] / reference['bytes']:.2f}; "
                f"{args.messages} messages pending",
            ),
        ]
    )


if __name__ == "__main__":
    main()
