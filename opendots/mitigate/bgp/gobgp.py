"""GoBGP (Debian `gobgpd`) as the BGP speaker, driven through its `gobgp` CLI over a Unix-socket gRPC API.

Why the CLI and not gRPC from Python: the Python stubs would have to be generated with protoc/grpcio-tools; the CLI
ships in the same Debian package, speaks the same API, and costs ~25 ms per call on this machine (measured), which is
small next to a DOTS mitigation's lifetime. Calls for different routes run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Sequence

from opendots.mitigate.base import PortRange
from opendots.mitigate.bgp.routes import FlowspecRoute, Route, RtbhRoute
from opendots.mitigate.bgp.speaker import (
    DaemonProcess,
    DaemonSpeaker,
    SpeakerConfig,
    SpeakerError,
    WorkDir,
    run_command,
)

log = logging.getLogger(__name__)

# apipb.PeerState.SessionState
_SESSION_STATES = {
    0: "unknown",
    1: "idle",
    2: "connect",
    3: "active",
    4: "opensent",
    5: "openconfirm",
    6: "established",
}
# Enough to overlap the CLI's start-up cost, few enough not to fork hundreds of processes for a large restore.
CONCURRENT_CLI_CALLS = 8
_CLI_FAMILY = {
    "ipv4-unicast": "ipv4",
    "ipv6-unicast": "ipv6",
    "ipv4-flowspec": "ipv4-flowspec",
    "ipv6-flowspec": "ipv6-flowspec",
}


def render_config(config: SpeakerConfig) -> str:
    """gobgpd's TOML configuration for CONFIG (routes are injected through the API, never configured)."""
    lines = [
        "[global.config]",
        f"  as = {config.local_as}",
        f'  router-id = "{config.router_id}"',
        f"  port = {config.listen_port if config.listen_port is not None else -1}",
    ]
    for peer in config.peers:
        lines += [
            "",
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{peer.address}"',
            f"    peer-as = {peer.remote_as}",
            "  [neighbors.timers.config]",
            f"    connect-retry = {config.connect_retry_seconds}",
        ]
        if peer.local_address is not None:
            lines += ["  [neighbors.transport.config]", f'    local-address = "{peer.local_address}"']
        if peer.multihop_ttl is not None:
            lines += [
                "  [neighbors.ebgp-multihop.config]",
                "    enabled = true",
                f"    multihop-ttl = {peer.multihop_ttl}",
            ]
        for family in peer.address_families:
            lines += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
            ]
    return "\n".join(lines) + "\n"


def _port_items(ranges: Sequence[PortRange]) -> list[str]:
    # GoBGP numeric operators: "==80" for one port, ">=80&<=90" for a range (RFC 8955 numeric operators, AND bit).
    return [f"=={r.lower}" if r.lower == r.upper else f">={r.lower}&<={r.upper}" for r in ranges]


def _flowspec_match(route: FlowspecRoute) -> list[str]:
    match = ["match", "destination", str(route.destination)]
    if route.source is not None:
        match += ["source", str(route.source)]
    if route.protocols:
        match += ["protocol", *(f"=={protocol}" for protocol in route.protocols)]
    if route.destination_ports:
        match += ["destination-port", *_port_items(route.destination_ports)]
    if route.source_ports:
        match += ["source-port", *_port_items(route.source_ports)]
    return match


def add_arguments(route: Route) -> list[str]:
    """`gobgp` arguments that announce ROUTE."""
    family = _CLI_FAMILY[route.family]
    if isinstance(route, RtbhRoute):
        return ["global", "rib", "-a", family, "add", str(route.prefix), "nexthop", str(route.next_hop)] + (
            ["community", ",".join(route.communities)] if route.communities else []
        )
    rate = route.rate_limit_bytes_per_second
    action = ["discard"] if rate == 0 else ["rate-limit", f"{rate:g}"]
    return ["global", "rib", "-a", family, "add", *_flowspec_match(route), "then", *action]


def delete_arguments(route: Route) -> list[str]:
    """`gobgp` arguments that withdraw ROUTE (deleting an absent route succeeds, so withdraw is idempotent)."""
    family = _CLI_FAMILY[route.family]
    if isinstance(route, RtbhRoute):
        return ["global", "rib", "-a", family, "del", str(route.prefix)]
    return ["global", "rib", "-a", family, "del", *_flowspec_match(route)]


class GoBgpSpeaker(DaemonSpeaker):
    """Owns one gobgpd process; start() returns once its API answers (sessions come up in the background)."""

    name = "gobgp"

    def __init__(self, config: SpeakerConfig, cli: str = "gobgp", daemon: str = "gobgpd") -> None:
        super().__init__()
        self.config = config
        self._cli = cli
        self._daemon_binary = daemon
        self._cli_slots = asyncio.Semaphore(CONCURRENT_CLI_CALLS)

    @property
    def api_socket(self) -> str:
        assert self._work is not None, "speaker not started"
        return str(self._work.path / "gobgp.sock")

    async def start(self) -> None:
        if self.running:
            return
        for binary in (self._cli, self._daemon_binary):
            if shutil.which(binary) is None:
                raise SpeakerError(f"{binary} is not installed (Debian package gobgpd)")
        if self._work is None:
            self._work = WorkDir(self.config.work_dir, "opendots-gobgp-")
        config_path = self._work.path / "gobgpd.toml"
        config_path.write_text(render_config(self.config))
        socket_path = self._work.path / "gobgp.sock"
        socket_path.unlink(missing_ok=True)
        argv = [
            *self.config.command_prefix,
            self._daemon_binary,
            "--config-file",
            str(config_path),
            "--api-hosts",
            f"unix://{socket_path}",
            "--pprof-disable",
            "--log-plain",
            "--log-level",
            "info",
        ]
        self._daemon = DaemonProcess("gobgpd", argv, self._work.path / "gobgpd.log")
        await self._daemon.start()
        await self._wait_for_api()

    async def _wait_for_api(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_seconds
        while True:
            if not self.running:
                tail = self._daemon.tail() if self._daemon is not None else ""
                raise SpeakerError(f"gobgpd exited during start; its log ends:\n{tail}")
            status, _, _ = await run_command(self._command("global", "-j"))
            if status == 0:
                return
            if time.monotonic() > deadline:
                await self.stop()
                raise SpeakerError(f"gobgpd API did not come up within {self.config.start_timeout_seconds} s")
            await asyncio.sleep(0.05)

    def _command(self, *arguments: str) -> list[str]:
        return [self._cli, "--target", f"unix://{self.api_socket}", *arguments]

    async def _run(self, arguments: list[str]) -> str:
        if not self.running:
            raise SpeakerError("gobgpd is not running")
        async with self._cli_slots:
            status, stdout, stderr = await run_command(self._command(*arguments))
        if status != 0:
            # The CLI prints its whole usage text after the error; the first line is the reason.
            reason = (stderr or stdout).strip().splitlines()[:1]
            raise SpeakerError(f"gobgp {' '.join(arguments)}: {reason[0] if reason else f'exit status {status}'}")
        return stdout

    async def announce(self, routes: Sequence[Route]) -> None:
        await asyncio.gather(*(self._run(add_arguments(route)) for route in routes))

    async def withdraw(self, routes: Sequence[Route]) -> None:
        await asyncio.gather(*(self._run(delete_arguments(route)) for route in routes))

    async def session_states(self) -> dict[str, str]:
        neighbors = json.loads(await self._run(["neighbor", "-j"]) or "[]")
        states = {}
        for neighbor in neighbors:
            state = neighbor.get("state", {})
            address = state.get("neighbor_address") or neighbor.get("conf", {}).get("neighbor_address")
            raw = state.get("session_state", 0)
            states[str(address)] = _SESSION_STATES.get(raw, str(raw).lower()) if isinstance(raw, int) else raw.lower()
        return states
