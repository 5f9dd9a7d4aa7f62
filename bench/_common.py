"""Small helpers shared by the bench/ scripts: ports, process figures from /proc, percentiles, the result table."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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
    """utime + stime of PID from /proc/PID/stat: clock ticks (10 ms here), fine for seconds-long windows."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_seconds(pid: int) -> float:
    """CPU time of process PID in nanosecond resolution: the kernel's per-process CPU clock (CPUCLOCK_SCHED,
    clock_gettime of clock id ((~PID) << 3) | 2, as clock_getcpuclockid(3) gives), the scheduler's run time summed
    over all its threads, those that exited included (the sum of /proc/PID/task/*/schedstat's first fields misses
    those). It is what utime + stime are scaled to, so it matches cpu_seconds over a long run without its 10 ms
    steps: thousands of messages of tens of µs each are measured to well under 1 µs each."""
    return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9


def tree_cpu_seconds(pid: int) -> float:
    """CPU of PID and of its descendants, living ones and reaped ones (cutime + cstime): a PostgreSQL postmaster
    with its backends, a `--workers` parent with its workers. (This kernel has no /proc/PID/task/*/children: the
    parent links come from a scan of /proc.)"""
    parents: dict[int, list[tuple[int, float]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):  # exited meanwhile: its parent reaps it into cutime
            continue
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
        parents.setdefault(int(fields[1]), []).append((int(entry.name), cpu))
    own = sum(int(field) for field in _stat(pid)[11:15]) / os.sysconf("SC_CLK_TCK")  # with cutime + cstime

    def below(parent: int) -> float:
        return sum(cpu + below(child) for child, cpu in parents.get(parent, []))

    return own + below(pid)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all CPUs (/proc/stat): two readings give how busy
    the shared cores were, whoever used them."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK"), sum(values[:8]) / os.sysconf("SC_CLK_TCK")


def generator_note(
    cpu: float, requests: int, elapsed: float, busiest: float | None = None, unit: str = "request"
) -> str:
    """The load generator's own cost beside a rate (the project's rule: a rate counts only when its generator is
    shown not to be the bottleneck). CPU: its processes' CPU seconds over the window of ELAPSED seconds; BUSIEST:
    the share of a core its busiest process used (near 100 %, that process capped the rate)."""
    share = cpu / elapsed * 100
    note = (
        f"generator CPU {cpu / max(1, requests) * 1e6:.0f} us/{unit} ({share:.{0 if share >= 10 else 1}f} % of a core"
    )
    if busiest is not None:
        note += f", busiest process {busiest * 100:.0f} %"
    return note + ")"


class GeneratorProcesses:
    """COUNT load-generating processes, each running ARGV(index) (a bench script in its generator role, which
    serves commands with serve_commands): one JSON command per line on its stdin, one JSON answer per line back."""

    def __init__(self, argv: Callable[[int], list[str]], count: int, place: Callable[[int], None] | None = None):
        root = Path(__file__).resolve().parent.parent
        environment = {**os.environ, "PYTHONPATH": str(root)}
        self.processes: list[subprocess.Popen] = []
        for index in range(count):
            process = subprocess.Popen(
                [sys.executable, *argv(index)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=environment,
            )
            if place is not None:
                place(process.pid)
            self.processes.append(process)

    def send(self, index: int, command: dict[str, Any]) -> None:
        stdin = self.processes[index].stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()

    async def answer(self, index: int) -> dict[str, Any]:
        stdout = self.processes[index].stdout
        assert stdout is not None
        line = await asyncio.to_thread(stdout.readline)
        if not line:
            raise RuntimeError(f"load generator process {index} exited")
        return json.loads(line)

    async def ask(self, commands: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Send each process of COMMANDS its command at once; their answers, once all came."""
        for index, command in commands.items():
            self.send(index, command)
        return {index: await self.answer(index) for index in commands}

    def close(self) -> None:
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def serve_commands(handle: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
    """A generator process's side of GeneratorProcesses: HANDLE each command read from stdin, print its answer."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        print(json.dumps(await handle(json.loads(line))), flush=True)


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
