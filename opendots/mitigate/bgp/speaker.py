"""The BGP speaker interface, its configuration, and the daemon process handling both speakers share."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opendots.mitigate.base import MitigatorError
from opendots.mitigate.bgp.routes import IPAddress, Route

log = logging.getLogger(__name__)

ESTABLISHED = "established"
FAMILIES = ("ipv4-unicast", "ipv4-flowspec", "ipv6-unicast", "ipv6-flowspec")


class SpeakerError(MitigatorError):
    """The speaker process failed, or refused a route."""


@dataclass(frozen=True)
class PeerConfig:
    """One BGP neighbour that receives our routes (a border router, a route server, a scrubbing controller)."""

    address: IPAddress
    remote_as: int
    local_address: IPAddress | None = None
    # Default: unicast (RTBH) and FlowSpec of the peer's own address family.
    families: tuple[str, ...] = ()
    multihop_ttl: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.remote_as <= 0xFFFFFFFF:
            raise ValueError(f"peer AS {self.remote_as} out of range")
        if self.local_address is not None and self.local_address.version != self.address.version:
            raise ValueError(f"peer {self.address}: local address {self.local_address} is another address family")
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"peer {self.address}: unknown families {sorted(unknown)}; known: {FAMILIES}")

    @property
    def address_families(self) -> tuple[str, ...]:
        if self.families:
            return self.families
        version = self.address.version
        return (f"ipv{version}-unicast", f"ipv{version}-flowspec")


@dataclass(frozen=True)
class SpeakerConfig:
    local_as: int
    router_id: ipaddress.IPv4Address
    peers: tuple[PeerConfig, ...]
    # TCP port to accept sessions on; None = only connect out (lets several speakers share a host in tests).
    listen_port: int | None = 179
    # Where config files, API sockets and logs go; a fresh temporary directory when None.
    work_dir: Path | None = None
    # Prepended to the daemon command line, e.g. ("ip", "netns", "exec", "edge") to run it in a namespace.
    # API sockets are Unix sockets in work_dir, so the control side never needs the prefix.
    command_prefix: tuple[str, ...] = ()
    connect_retry_seconds: int = 1
    start_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.local_as <= 0xFFFFFFFF:
            raise ValueError(f"local AS {self.local_as} out of range")
        if not self.peers:
            raise ValueError("a BGP speaker needs at least one peer")


class BgpSpeaker(Protocol):
    """A BGP daemon we drive: owns its process, announces and withdraws routes, reports its sessions."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...

    async def announce(self, routes: Sequence[Route]) -> None: ...

    async def withdraw(self, routes: Sequence[Route]) -> None: ...

    async def session_states(self) -> dict[str, str]:
        """Peer address -> lower-case BGP FSM state ("established", "active", ...)."""
        ...

    def cleanup(self) -> None:
        """Remove the private work directory, once stopped for good."""
        ...


@dataclass
class DaemonProcess:
    """One daemon child process: started, watched, stopped (TERM, then KILL), with its output in a log file."""

    label: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self) -> None:
        if self.running:
            return
        executable = shutil.which(self.argv[0])
        if executable is None:
            raise SpeakerError(f"{self.label}: {self.argv[0]} is not installed")
        with self.log_path.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                executable,
                *self.argv[1:],
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,  # a Ctrl-C to the server must not kill the speaker before we withdraw
            )
        log.info("%s started, pid %d", self.label, self.process.pid)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def stop(self, timeout: float = 5.0) -> None:
        """TERM the daemon's process group (its helpers too), KILL what is left after TIMEOUT."""
        process, self.process = self.process, None
        if process is None:
            return
        # start_new_session made the daemon the leader of its own group: signal the group we created, by id.
        group = process.pid
        if process.returncode is None:
            _signal_group(group, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                _signal_group(group, signal.SIGKILL)
                await process.wait()
        _signal_group(group, signal.SIGKILL)  # helpers that outlived a daemon that crashed or was killed
        log.info("%s stopped", self.label)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class DaemonSpeaker:
    """What the speakers that own one daemon process share: its state, and how it is stopped and cleaned up."""

    def __init__(self) -> None:
        self._work: WorkDir | None = None
        self._daemon: DaemonProcess | None = None

    @property
    def running(self) -> bool:
        return self._daemon is not None and self._daemon.running

    @property
    def pid(self) -> int | None:
        return self._daemon.pid if self._daemon is not None else None

    async def stop(self) -> None:
        if self._daemon is not None:
            await self._daemon.stop()
            self._daemon = None

    def cleanup(self) -> None:
        """Remove the private work directory (after stop())."""
        if self._work is not None:
            self._work.cleanup()
            self._work = None


class WorkDir:
    """The speaker's directory: the configured one, or a private temporary one removed on cleanup."""

    def __init__(self, configured: Path | None, prefix: str) -> None:
        self._owned = configured is None
        self.path = Path(tempfile.mkdtemp(prefix=prefix)) if configured is None else configured
        self.path.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


async def run_command(argv: Sequence[str], timeout: float = 10.0) -> tuple[int, str, str]:
    """Run a short control command; (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SpeakerError(f"{argv[0]} did not answer within {timeout} s") from None
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
