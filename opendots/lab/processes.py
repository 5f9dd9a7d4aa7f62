"""A DOTS server and a client agent as separate real processes (`opendots server`, `opendots client run`), with a
test PKI and configs written into one directory; the CLI verbs run as processes too.

    with ProcessStack(directory, mitigators=[{"type": "nftables", ...}]) as stack:
        stack.start_server(); stack.start_agent()
        stack.cli("client", "mitigate", "--target-prefix", "203.0.113.2/32")

Used by `opendots demo --lab`, the attack-lab tests and bench/mitigate_signal.py. Everything is bounded: every
wait has a deadline and every process is killed on close.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from opendots.config import ClientConfig
from opendots.errors import OpenDotsError

T = TypeVar("T")
READY_LINE = "DOTS signal channel listening on"
# Fast reconnection so a restarted server is found again in well under a second (labs and tests only).
LAB_AGENT_SETTINGS = {
    "reconnect_min": 0.2,
    "reconnect_max": 1.0,
    "attempt_delay": 0.1,
    "connect_timeout": 3.0,
    "request_timeout": 8.0,
}

LAB_SIGNAL_SETTINGS = {
    "active_but_terminating": 1,
    "max_active_but_terminating": 2,
    "counters_interval": 1.0,
    "heartbeat_interval_limits": [1, 240],  # a lab may ask for 1 s heartbeats: session loss found in seconds
}


class StackError(OpenDotsError, RuntimeError):
    """A process of the stack did not start, or a wait ran out; the message carries its log tail."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP (DTLS) and TCP (TLS) on HOST right now, below the kernel's ephemeral range: a port
    the kernel handed out (bind to port 0) can be handed out again as some client's source port before the server
    meant to listen on it has started, and that server then cannot bind."""
    low = min(_ephemeral_low(), 32768)
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket(socket.AF_INET) as tcp:
            try:
                udp.bind((host, port))
                tcp.bind((host, port))
            except OSError:
                continue
            return port
    raise StackError(f"no free port on {host}")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll PREDICATE until it returns something truthy (returned), or raise StackError after TIMEOUT s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def opendots_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "opendots", *args]


def _environment() -> dict[str, str]:
    # The children import the same opendots as we do (a worktree is not installed in the venv).
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


class ProcessStack:
    """PKI + server.toml + client.toml in DIRECTORY; server and agent processes with logs in the same place."""

    def __init__(
        self,
        directory: Path,
        mitigators: Sequence[dict[str, Any]],
        *,
        transport: str = "dtls",
        signal_settings: dict[str, Any] | None = None,
        server_names: list[str] | None = None,
        mitigation: dict[str, Any] | None = None,
        admin: bool = False,
    ) -> None:
        """SIGNAL_SETTINGS: the server's [signal] table; by default a withdrawn mitigation stays enforced for
        1 s only (RFC 9132 active-but-terminating; 120 s in production), so a lab sees the traffic come back.
        SERVER_NAMES: extra names in the server certificate (e.g. a discovery domain, RFC 8973 §8.2).
        MITIGATION: the server's [mitigation] table (the top-talker policy). ADMIN: give the server an admin socket."""
        from opendots.pki.setup import init_pki

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_tcp_port()
        # A free data-channel port too: 443 may be taken (another stack, another test run on the machine).
        server_config, client_config = init_pki(
            self.directory, server_names, signal_port=self.port, data_port=free_udp_tcp_port()
        )
        server_config.listen = ["127.0.0.1"]
        server_config.mitigators = [dict(entry) for entry in mitigators]
        server_config.signal = dict(signal_settings if signal_settings is not None else LAB_SIGNAL_SETTINGS)
        server_config.mitigation = dict(mitigation or {})
        if admin:  # the operator's socket (`opendots admin -c server.toml`), short enough for sun_path
            server_config.admin_socket = Path("/tmp") / f"odadm-{uuid.uuid4().hex[:10]}.sock"
        self.server_config_path = self.directory / "server.toml"
        server_config.save(self.server_config_path)
        self.server_config = server_config
        self.cuid = server_config.clients[0].cuid
        client_config.server_addresses = ["127.0.0.1"]
        client_config.transport = transport  # type: ignore[assignment]
        # Unix socket paths are limited to 108 bytes: keep the socket short, in /tmp.
        client_config.control_socket = Path("/tmp") / f"odlab-{uuid.uuid4().hex[:10]}.sock"
        self.client_config = client_config
        self.client_config_path = self.directory / "client.toml"
        self._write_client_config(self.client_config_path, client_config)
        # The same client identity and state, but no agent behind the socket: CLI verbs go one-shot.
        self.oneshot_config_path = self.directory / "client-oneshot.toml"
        oneshot = ClientConfig.load(self.client_config_path)
        oneshot.control_socket = self.directory / "no-agent.sock"
        self._write_client_config(self.oneshot_config_path, oneshot)
        self.server: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self._server_log_offset = 0
        self.namespaces: dict[str, Any] = {}
        """Role ("server", "agent") -> opendots.lab.netns.Namespace the process of that role runs in (its network
        namespace only: files and the Unix control sockets stay shared); absent: the current one."""

    def _argv(self, role: str, argv: list[str]) -> list[str]:
        namespace = self.namespaces.get(role)
        return namespace.command(argv) if namespace is not None else argv

    def _write_client_config(self, path: Path, config: ClientConfig) -> None:
        config.agent = {**LAB_AGENT_SETTINGS, "state_file": str(self.directory / "client-state.db")}
        config.save(path)

    def __enter__(self) -> ProcessStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def server_log(self) -> Path:
        return self.directory / "server.log"

    @property
    def agent_log(self) -> Path:
        return self.directory / "agent.log"

    def _tail(self, path: Path, characters: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return path.read_text(errors="replace")[-characters:]
        return ""

    def start_server(self, timeout: float = 20.0) -> None:
        """Start `opendots server` and wait until it says it listens (appending to server.log across restarts)."""
        if self.server is not None and self.server.poll() is None:
            raise StackError("the server is already running")
        self._server_log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        with self.server_log.open("ab") as log:
            self.server = subprocess.Popen(
                self._argv("server", opendots_argv("server", "-c", str(self.server_config_path))),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(),
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.server is not None
            if self.server.poll() is not None:
                raise StackError(f"the server exited ({self.server.returncode}):\n{self._tail(self.server_log)}")
            with self.server_log.open("rb") as log:
                log.seek(self._server_log_offset)
                return READY_LINE in log.read().decode(errors="replace")

        try:
            wait_for(ready, timeout, "the server to listen", interval=0.05)
        except StackError as error:
            raise StackError(f"{error}\n{self._tail(self.server_log)}") from None

    def kill_server(self) -> None:
        """SIGKILL: no orderly shutdown, whatever the server enforced stays in the kernel."""
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGKILL)
            self.server.wait(timeout=10)

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)

    def start_agent(self, timeout: float = 20.0) -> None:
        """Start `opendots client run` and wait until its session with the server is up."""
        from opendots.signal.client.shell.control import ControlClient, ControlError

        with self.agent_log.open("ab") as log:
            self.agent = subprocess.Popen(
                self._argv("agent", opendots_argv("client", "run", "--config", str(self.client_config_path))),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(),
                start_new_session=True,
            )

        def connected() -> bool:
            assert self.agent is not None
            if self.agent.poll() is not None:
                raise StackError(f"the agent exited ({self.agent.returncode}):\n{self._tail(self.agent_log)}")
            try:
                with ControlClient(self.client_config.control_socket, timeout=2.0) as control:
                    return bool(control.session().get("connected"))
            except (ConnectionError, OSError, ControlError, ValueError):
                return False

        try:
            wait_for(connected, timeout, "the agent's session", interval=0.05)
        except StackError as error:
            raise StackError(f"{error}\n{self._tail(self.agent_log)}") from None

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(timeout=10)

    def control(self, timeout: float = 20.0) -> Any:
        """A ControlClient on the agent's socket (use as a context manager)."""
        from opendots.signal.client.shell.control import ControlClient

        return ControlClient(self.client_config.control_socket, timeout=timeout)

    def cli(
        self, *args: str, oneshot: bool = False, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `opendots ARGS --config <client.toml>` (the one-shot variant when ONESHOT)."""
        config = self.oneshot_config_path if oneshot else self.client_config_path
        return subprocess.run(
            opendots_argv(*args, "--config", str(config)),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_environment(),
            check=False,
        )

    def admin(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run `opendots admin ARGS --config <server.toml>` (the stack needs `admin=True`)."""
        return subprocess.run(
            opendots_argv("admin", *args, "--config", str(self.server_config_path)),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_environment(),
            check=False,
        )

    def status_entries(self, *, oneshot: bool = False, refresh: bool = True) -> list[dict[str, Any]]:
        """`opendots client status --json` (GET /mitigate with refresh): the scope entries the server reports."""
        args = ["client", "status", "--json", *(["--refresh"] if refresh else [])]
        result = self.cli(*args, oneshot=oneshot)
        if result.returncode != 0:
            raise StackError(f"client status failed ({result.returncode}): {result.stderr.strip()}")
        return json.loads(result.stdout)["ietf-dots-signal-channel:mitigation-scope"]["scope"]

    def close(self) -> None:
        self.stop_agent()
        self.stop_server()
        with contextlib.suppress(FileNotFoundError):
            self.client_config.control_socket.unlink()
        if self.server_config.admin_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self.server_config.admin_socket.unlink()
