"""A lossy signal channel for the loss tests: one network namespace whose loopback drops a share of the packets
(nftables `numgen random`, the kernel has no netem), a real `opendots server` in it, and helpers to run the client
CLI and the agent in it as subprocesses."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from opendots.lab.netns import Namespace, _ip
from opendots.signal.client.shell.control import ControlClient, agent_answers

# Small, known timings so a lost exchange is retried within seconds, not the production minutes.
AGENT_TABLE = {
    "reconnect_min": 0.3,
    "reconnect_max": 1.0,
    "attempt_delay": 0.1,
    "connect_timeout": 6.0,
    "request_timeout": 12.0,
}


def _loss_ruleset(percent: int, application_data_only: bool = False, periodic: bool = False) -> str:
    # On loopback every packet passes the input hook exactly once: dropping there loses PERCENT % of the
    # datagrams (DTLS) or segments (TLS over TCP, which retransmits them) in each direction, silently, as a path
    # loses them (dropped at the output hook, a datagram fails the sender's sendto() with EPERM instead, which
    # libcoap logs as critical). APPLICATION_DATA_ONLY: only DTLS records of content type 23 (the CoAP messages;
    # @th,64,8 is the first byte of the UDP payload), so a session's handshake is not what a test of block transfers
    # measures.
    match = "meta l4proto udp @th,64,8 23" if application_data_only else "meta l4proto { udp, tcp }"
    hook = "input"
    # PERIODIC: the same share, spread evenly and the same in every run (`numgen inc`: datagrams 0, 3 and 7 of each
    # ten for 30 %), for a peer whose own give-ups under random loss would make a test a lottery.
    k = percent // 10
    drop = (
        f"numgen inc mod 10 {{ {', '.join(str(round(i * 10 / k)) for i in range(k))} }}"
        if periodic
        else f"numgen random mod 100 < {percent}"
    )
    return (
        "table inet odloss {\n"
        "  chain out {\n"
        f"    type filter hook {hook} priority 0; policy accept;\n"
        f"    {match} {drop} counter drop\n"
        "  }\n"
        "}\n"
    )


@dataclass
class LossyServer:
    """`opendots server` in a namespace of its own whose loopback loses packets; the client runs beside it."""

    directory: Path
    pki: Path
    namespace: Namespace = field(default_factory=lambda: Namespace(f"od-loss-{secrets.token_hex(3)}"))
    port: int = 4646
    process: subprocess.Popen[str] | None = None

    def __enter__(self) -> LossyServer:
        _ip(["netns", "add", self.namespace.name])
        try:
            _ip(["-n", self.namespace.name, "link", "set", "lo", "up"])
            self._write_configs()
            self.process = self.namespace.popen(
                [
                    sys.executable,
                    "-m",
                    "opendots",
                    "server",
                    "--config",
                    str(self.directory / "server.toml"),
                    "--no-data",
                    "--listen",
                    "127.0.0.1",
                    "--signal-port",
                    str(self.port),
                ]
            )
            self._wait_for(lambda: agent_answers(self.admin_socket), 20, "the server's admin socket")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
        _ip(["netns", "del", self.namespace.name], check=False)

    def _write_configs(self) -> None:
        server = tomllib.loads((self.pki / "server.toml").read_text())
        server["server"].update(db=str(self.directory / "server.db"), admin_socket=str(self.admin_socket))
        for name in ("ca", "cert", "key"):
            server["tls"][name] = str(self.pki / server["tls"][name])
        (self.directory / "server.toml").write_text(tomli_w.dumps(server))

    @property
    def admin_socket(self) -> Path:
        return self.directory / "admin.sock"

    def client_config(self, transport: str, name: str) -> Path:
        """A client.toml for TRANSPORT with its own control socket and state file (NAME keeps them apart)."""
        client = tomllib.loads((self.pki / "client.toml").read_text())
        client["client"].update(
            server_addresses=["127.0.0.1"],
            signal_port=self.port,
            transport=transport,
            control_socket=str(self.directory / f"{name}.sock"),
        )
        for key in ("ca", "cert", "key"):
            client["tls"][key] = str(self.pki / client["tls"][key])
        # One state file for every config: they all share the client certificate, hence the cuid and its mids.
        client["agent"] = {**AGENT_TABLE, "state_file": str(self.directory / "client-state.db")}
        path = self.directory / f"{name}.toml"
        path.write_text(tomli_w.dumps(client))
        return path

    def set_loss(self, percent: int, *, application_data_only: bool = False, periodic: bool = False) -> None:
        self.namespace.run(["nft", "delete", "table", "inet", "odloss"], check=False)
        if percent:
            self.namespace.run(["nft", "-f", "-"], input=_loss_ruleset(percent, application_data_only, periodic))

    def dropped_packets(self) -> int:
        listing = self.namespace.run(["nft", "list", "table", "inet", "odloss"]).stdout
        return int(listing.split("counter packets ")[1].split()[0])

    def cli(self, config: Path, *argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`opendots client ARGV --config CONFIG` inside the namespace."""
        command = [sys.executable, "-m", "opendots", "client", *argv, "--config", str(config)]
        return self.namespace.run(command, check=False, timeout=timeout)

    def held(self) -> dict[int, dict[str, Any]]:
        """The mitigations the server holds for the client, by mid (from its operator socket)."""
        with ControlClient(self.admin_socket, timeout=30) as admin:
            answer = admin.call("mitigations")
        return {entry["mid"]: entry for entry in answer["mitigations"]}

    @staticmethod
    def _wait_for(predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


class AgentProcess:
    """`opendots client run` in the lossy namespace."""

    def __init__(self, lab: LossyServer, config: Path) -> None:
        self.lab = lab
        self.config = config
        self.socket = Path(tomllib.loads(config.read_text())["client"]["control_socket"])
        self.process = lab.namespace.popen([sys.executable, "-m", "opendots", "client", "run", "--config", str(config)])

    def wait_connected(self, timeout: float) -> None:
        def connected() -> bool:
            if not agent_answers(self.socket):
                return False
            with ControlClient(self.socket, timeout=10) as control:
                return bool(control.session()["connected"])

        self.lab._wait_for(connected, timeout, "the agent's session")

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


@contextlib.contextmanager
def lossy_environment() -> Iterator[None]:
    """Subprocesses import opendots from this checkout."""
    previous = os.environ.get("PYTHONPATH")
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = root + (os.pathsep + previous if previous else "")
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
