"""Bounded floods from the attacker namespace, and packet tallies at the victim.

The sender is a separate Python process (opendots/lab/udp_sender.py) so a flood runs while the test or benchmark
goes on applying mitigations; every flood is bounded by a packet count AND a duration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opendots.lab.netns import Namespace

SENDER = Path(__file__).with_name("udp_sender.py")
RECEIVER = Path(__file__).with_name("udp_receiver.py")


def udp_sender_argv(
    destination: str,
    port: int,
    *,
    count: int,
    duration: float,
    pps: float = 0.0,
    size: int = 64,
    source_port: int = 0,
    protocol: int = 17,
    tcp_flags: int = 0,
    source_address: str = "",
) -> list[str]:
    return [
        sys.executable,
        str(SENDER),
        destination,
        str(port),
        f"--count={count}",
        f"--duration={duration}",
        f"--pps={pps}",
        f"--size={size}",
        f"--source-port={source_port}",
        f"--protocol={protocol}",
        f"--tcp-flags={tcp_flags}",
        *([f"--source-address={source_address}"] if source_address else []),
    ]


@dataclass(frozen=True)
class FloodResult:
    sent: int
    seconds: float
    cpu: float = 0.0  # CPU seconds of the sender process

    @property
    def pps(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class Flood:
    """A running bounded flood; `wait()` returns how many packets were sent in how long."""

    def __init__(self, namespace: Namespace, destination: str, port: int, *, count: int, duration: float, **options):
        self.duration = duration
        self._process = namespace.popen(udp_sender_argv(destination, port, count=count, duration=duration, **options))

    def wait(self) -> FloodResult:
        try:
            stdout, stderr = self._process.communicate(timeout=self.duration + 30.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise
        if self._process.returncode != 0:
            raise RuntimeError(f"flood sender failed ({self._process.returncode}): {stderr.strip()}")
        report = json.loads(stdout.strip().splitlines()[-1])
        return FloodResult(sent=report["sent"], seconds=report["seconds"], cpu=report.get("cpu", 0.0))

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def flood(namespace: Namespace, destination: str, port: int, *, count: int, duration: float, **options) -> FloodResult:
    """Send a bounded flood and wait for it to finish."""
    return Flood(namespace, destination, port, count=count, duration=duration, **options).wait()


class VictimTally:
    """Exact per-(protocol, port) packet counts at the victim, from an nft table in the victim's namespace.

    Counted packets are then dropped there, so the victim spends no time answering them with ICMP errors.
    """

    def __init__(
        self, namespace: Namespace, ports: list[int], protocols: tuple[int, ...] = (17,), table: str = "tally"
    ):
        self.namespace = namespace
        self.table = table
        rules = []
        for protocol in protocols:
            for port in ports:
                rules.append(f'meta l4proto {protocol} th dport {port} counter drop comment "{protocol}/{port}"')
        body = "\n".join(rules)
        script = f"table inet {table} {{\n chain pre {{ type filter hook prerouting priority -300;\n{body}\n }}\n}}\n"
        namespace.run(["nft", "-f", "-"], input=script)

    def counts(self) -> dict[tuple[int, int], int]:
        listing = json.loads(self.namespace.run(["nft", "-j", "list", "chain", "inet", self.table, "pre"]).stdout)
        result: dict[tuple[int, int], int] = {}
        for item in listing["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            protocol, port = (int(part) for part in rule["comment"].split("/"))
            packets = next(expr["counter"]["packets"] for expr in rule["expr"] if "counter" in expr)
            result[(protocol, port)] = packets
        return result

    def count(self, port: int, protocol: int = 17) -> int:
        return self.counts()[(protocol, port)]


@dataclass(frozen=True)
class Reception:
    received: int
    first: float | None
    last: float | None
    gaps: list[tuple[float, float]]  # (last datagram before a silence, first one after it), CLOCK_MONOTONIC


class Receiver:
    """A bounded UDP receiver in a namespace that reports when traffic stopped and resumed."""

    def __init__(
        self, namespace: Namespace, address: str, port: int, *, duration: float, gap: float = 0.005, idle: float = 1.0
    ):
        self.duration = duration
        argv = [sys.executable, str(RECEIVER), address, str(port), f"--duration={duration}", f"--gap={gap}"]
        argv.append(f"--idle={idle}")
        self._process = namespace.popen(argv)

    def wait(self) -> Reception:
        stdout, stderr = self._process.communicate(timeout=self.duration + 30.0)
        if self._process.returncode != 0:
            raise RuntimeError(f"receiver failed ({self._process.returncode}): {stderr.strip()}")
        report = json.loads(stdout.strip().splitlines()[-1])
        gaps = [(start, end) for start, end in report["gaps"]]
        return Reception(received=report["received"], first=report["first"], last=report["last"], gaps=gaps)
