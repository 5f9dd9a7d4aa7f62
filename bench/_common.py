"""Small helpers shared by the bench/ scripts: ports, process figures from /proc, percentiles, the result table."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from opendots.config import TlsFiles
from opendots.lab.processes import free_udp_tcp_port as free_port
from opendots.transport.dtls import ApplicationData, DtlsConnection, HandshakeCompleted


def files(directory: Path, stem: str) -> TlsFiles:
    """Credentials STEM.crt/STEM.key of a PKI written by `opendots certs init` (init_pki)."""
    return TlsFiles(directory / "ca.crt", directory / f"{stem}.crt", directory / f"{stem}.key")


def libcoap_base_port() -> int:
    """P such that P and P+1 are free for UDP and TCP: `coap-server-openssl -p P` serves (D)TLS on P+1."""
    while True:
        base = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
                udp.bind(("127.0.0.1", base + 1))
                tcp.bind(("127.0.0.1", base + 1))
        except OSError:
            continue
        return base


def wait_for_udp_port(port: int, process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Return once something has bound UDP PORT (a server that prints no readiness line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing bound UDP port {port} within {timeout} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of SAMPLES given in seconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"{'measurement':<{widths[0]}}  {'result':<{widths[1]}}  notes")
    print("-" * (sum(widths) + 4 + 5))
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (shared machine)")
    print(f"machine: {os.cpu_count()} CPUs; servers in separate processes; command: {' '.join(sys.argv)}")


class SansIoDtlsClient(asyncio.DatagramProtocol):
    """A DTLS client on its own UDP socket, driven by the sans-I/O DTLS core: the load generators' session (no
    aiocoap, so the generator's own cost stays small). Subclasses take the decrypted datagrams in application_data."""

    def __init__(self, connection: DtlsConnection) -> None:
        self.connection = connection
        self.established = asyncio.get_running_loop().create_future()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flush()

    def flush(self) -> None:
        for datagram in self.connection.datagrams_to_send():
            self.transport.sendto(datagram)  # type: ignore[attr-defined]
        if self.timer is not None:
            self.timer.cancel()
        due = self.connection.timer_due_in()
        if due is not None:
            self.timer = asyncio.get_running_loop().call_later(due, self.on_timer)

    def on_timer(self) -> None:
        self.connection.handle_timer(time.monotonic())
        self.flush()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        for event in self.connection.receive_datagram(data, time.monotonic()):
            if isinstance(event, HandshakeCompleted) and not self.established.done():
                self.established.set_result(None)
            elif isinstance(event, ApplicationData):
                self.application_data(event.data)
        self.flush()

    def application_data(self, data: bytes) -> None:
        raise NotImplementedError
