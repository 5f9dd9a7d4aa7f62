"""`opendots gateway` as a child process, for the tests, the demo and bench/gateway.py: its certificates from a
test PKI (a downstream server certificate named localhost, an upstream client certificate), its gw.toml,
downstream.toml and upstream.toml written next to them, its log and admin socket readable.

    gateway = GatewayProcess(directory, "gw1", "client-domain")
    gateway.upstream_to(server_port); gateway.serve(authorization_of_a_client); gateway.start()
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from opendots.config import ClientAuthorization, ClientConfig, ServerConfig, TlsFiles
from opendots.lab.processes import (
    LAB_AGENT_SETTINGS,
    LAB_SIGNAL_SETTINGS,
    StackError,
    _environment,
    free_udp_tcp_port,
    opendots_argv,
    wait_for,
)
from opendots.pki.certs import TestPki
from opendots.pki.cuid import cuid_from_certificate

READY = "DOTS gateway"
DOCUMENTATION = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")


def authorization(name: str, cuid: str, *, gateway: bool = False) -> ClientAuthorization:
    return ClientAuthorization(
        name=name,
        cuid=cuid,
        prefixes=tuple(ipaddress.ip_network(p) for p in DOCUMENTATION),
        gateway=gateway,
    )


class GatewayProcess:
    """One gateway NAME of KIND, with a downstream server certificate (named localhost) and an upstream client
    certificate (whose SPKI hash is `cuid`) from the PKI in DIRECTORY."""

    def __init__(
        self,
        directory: Path,
        name: str,
        kind: str,
        *,
        hop_limit: int | None = None,
        transport: str = "dtls",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.name = name
        self.kind = kind
        pki = TestPki(self.directory)
        self.server_credential = pki.issue_server(stem=f"{name}-server")
        self.client_credential = pki.issue_client(name)
        self.cuid = cuid_from_certificate(self.client_credential.cert_path.read_bytes())
        self.port = free_udp_tcp_port()
        self.data_port = free_udp_tcp_port()
        self.clients: list[ClientAuthorization] = []
        self.upstream_port: int | None = None
        self.upstream_data_port: int | None = None
        self.transport = transport
        self.hop_limit = hop_limit
        self.extra = extra or {}
        self.upstream_keys: dict[str, Any] = {}
        """ClientConfig attributes set in the upstream file (e.g. RFC 8973 discovery instead of a server)."""
        self.admin_socket = Path("/tmp") / f"odgw-{uuid.uuid4().hex[:10]}.sock"
        self.config_path = self.directory / f"{name}.toml"
        self.listen = "127.0.0.1"
        """The downstream server's address; `upstream_address`: the upstream server's (both loopback by default)."""
        self.upstream_address = "127.0.0.1"
        self.namespace: Any = None
        """An opendots.lab.netns.Namespace to run in (its network namespace only), or None: the current one."""
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def serve(self, *clients: ClientAuthorization) -> None:
        self.clients.extend(clients)

    def upstream_to(self, port: int, data_port: int | None = None) -> None:
        self.upstream_port = port
        self.upstream_data_port = data_port

    def authorization(self, *, gateway: bool = False) -> ClientAuthorization:
        """This gateway as a client of its upstream server ([[clients]] entry)."""
        return authorization(self.name, self.cuid, gateway=gateway)

    def write(self) -> None:
        assert self.upstream_port is not None, "upstream_to() first"
        ca = self.directory / "ca.crt"
        downstream = ServerConfig(
            tls=TlsFiles(ca, self.server_credential.cert_path, self.server_credential.key_path),
            clients=list(self.clients),
            listen=[self.listen],
            signal_port=self.port,
            data_port=self.data_port,
            db=self.directory / f"{self.name}-downstream.db",
            signal=dict(LAB_SIGNAL_SETTINGS),
        )
        downstream.save(self.directory / f"{self.name}-downstream.toml")
        upstream = ClientConfig(
            tls=TlsFiles(ca, self.client_credential.cert_path, self.client_credential.key_path),
            server_name="localhost",
            server_addresses=[self.upstream_address],
            signal_port=self.upstream_port,
            data_port=self.upstream_data_port or self.upstream_port,
            transport=self.transport,  # type: ignore[arg-type]
            control_socket=self.admin_socket,
            # The upstream request timeout below the downstream agents' (8 s): a request the upstream leaves
            # unanswered gets the gateway's 5.03 before the client gives up on its own.
            agent={
                **LAB_AGENT_SETTINGS,
                "request_timeout": 3.0,
                "state_file": str(self.directory / f"{self.name}-agent.db"),
            },
        )
        for key, value in self.upstream_keys.items():
            setattr(upstream, key, value)
        upstream.save(self.directory / f"{self.name}-upstream.toml")
        table: dict[str, Any] = {
            "kind": self.kind,
            "identity": self.name,
            "downstream": f"{self.name}-downstream.toml",
            "upstream": f"{self.name}-upstream.toml",
            "state": f"{self.name}-relay.db",
            **self.extra,
        }
        if self.hop_limit is not None:
            table["hop_limit"] = self.hop_limit
        lines = ["[gateway]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, *, wait_upstream: bool = True, timeout: float = 20.0) -> None:
        self.write()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = opendots_argv("gateway", "--config", str(self.config_path))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.namespace.command(argv) if self.namespace is not None else argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(),
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise StackError(f"the gateway exited ({self.process.returncode}):\n{self.log()}")
            return READY in self.log(since_start=True)

        wait_for(ready, timeout, f"gateway {self.name} to listen", interval=0.05)
        if wait_upstream:
            self.wait_upstream(True, timeout)

    def wait_upstream(self, up: bool, timeout: float = 20.0) -> dict[str, Any]:
        return wait_for(
            lambda: (status := self.status()) and status["upstream"]["connected"] == up and status,
            timeout,
            f"gateway {self.name}'s upstream session {'up' if up else 'down'}",
            interval=0.1,
        )

    def fast_heartbeats(self) -> None:
        """The upstream session's heartbeats every second (RFC 9132 §4.5: the gateway's agent asks
        its server, as any client does; 3 missed = lost), so that a stopped upstream server is noticed in seconds."""
        from opendots.signal.client.shell.control import ControlClient

        fast = {"heartbeat_interval": 1, "missing_hb_allowed": 3}
        with ControlClient(self.admin_socket, timeout=10.0) as control:
            answer = control.config_set(idle=fast, mitigating=fast)
            assert answer.get("code") == "2.01", answer

            # The agent puts the values in force when its GET of the configuration is answered, after the PUT's
            # 2.01 (RFC 9132 §4.5.2): a server stopped before that would leave the 30 s heartbeats running.
            def in_force() -> bool:
                config = control.session().get("config") or {}
                sets = config.get("ietf-dots-signal-channel:signal-config", {})
                return all(
                    sets.get(name, {}).get("heartbeat-interval", {}).get("current-value") == 1
                    for name in ("idle-config", "mitigating-config")
                )

            wait_for(in_force, 10, "the gateway's upstream heartbeats every second", interval=0.05)

    def status(self) -> dict[str, Any] | None:
        from opendots.signal.client.shell.control import ControlClient, ControlError

        try:
            with ControlClient(self.admin_socket, timeout=5.0) as control:
                return control.call("gateway")
        except (ConnectionError, OSError, ControlError, ValueError):
            return None

    def log(self, since_start: bool = False) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            if since_start:
                log.seek(self._log_offset)
            return log.read().decode(errors="replace")
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.admin_socket.unlink()
