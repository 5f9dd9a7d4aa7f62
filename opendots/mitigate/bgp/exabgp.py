"""ExaBGP (Debian `exabgp` 4.2, or PyPI `exabgp`) as the BGP speaker, driven through its API process.

ExaBGP takes commands only from processes it starts itself; ours is exabgp_relay.py, which bridges ExaBGP's pipes to
a Unix socket in the work directory. With `exabgp.api.ack` on, every command is answered "done" or "error".
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from opendots.mitigate.base import PortRange
from opendots.mitigate.bgp.routes import FlowspecRoute, Route, RtbhRoute
from opendots.mitigate.bgp.speaker import DaemonProcess, DaemonSpeaker, SpeakerConfig, SpeakerError, WorkDir

RELAY = Path(__file__).with_name("exabgp_relay.py")
_FAMILY = {
    "ipv4-unicast": "ipv4 unicast",
    "ipv6-unicast": "ipv6 unicast",
    "ipv4-flowspec": "ipv4 flow",
    "ipv6-flowspec": "ipv6 flow",
}


def render_config(config: SpeakerConfig, socket_path: Path, python: str = sys.executable) -> str:
    lines = ["process opendots {", f"  run {python} {RELAY} {socket_path};", "  encoder text;", "}"]
    for peer in config.peers:
        if peer.local_address is None:
            raise SpeakerError(f"ExaBGP needs a local address for peer {peer.address}")
        lines += [
            f"neighbor {peer.address} {{",
            f"  router-id {config.router_id};",
            f"  local-address {peer.local_address};",
            f"  local-as {config.local_as};",
            f"  peer-as {peer.remote_as};",
            "  group-updates false;",  # one UPDATE per command: the route leaves as soon as it is asked for
        ]
        if peer.multihop_ttl is not None:
            lines.append(f"  outgoing-ttl {peer.multihop_ttl};")
        lines += ["  family {", *(f"    {_FAMILY[f]};" for f in peer.address_families), "  }"]
        lines += ["  api { processes [ opendots ]; }", "}"]
    return "\n".join(lines) + "\n"


def environment(config: SpeakerConfig) -> dict[str, str]:
    """ExaBGP settings (its env-variable form) for a daemon we supervise ourselves."""
    listen = config.listen_port is not None
    addresses = sorted({str(peer.local_address) for peer in config.peers if peer.local_address is not None})
    return {
        "exabgp_daemon_daemonize": "false",
        "exabgp_daemon_drop": "false",  # keep root: the relay socket lives in our work directory
        "exabgp_api_ack": "true",
        "exabgp_api_cli": "false",
        "exabgp_api_encoder": "text",
        "exabgp_log_destination": "stdout",
        "exabgp_log_level": "WARNING",
        "exabgp_tcp_bind": " ".join(addresses) if listen else "",
        "exabgp_tcp_port": str(config.listen_port if listen else 179),
        "exabgp_tcp_delay": "0",
    }


def _port_items(ranges: Sequence[PortRange]) -> str:
    items = [f"={r.lower}" if r.lower == r.upper else f">={r.lower}&<={r.upper}" for r in ranges]
    return f"[ {' '.join(items)} ]"


def _flow_match(route: FlowspecRoute) -> str:
    v6 = route.destination.version == 6
    # ExaBGP writes IPv6 FlowSpec prefixes with an offset (RFC 8956): prefix/length/offset.
    parts = [f"destination {route.destination}{'/0' if v6 else ''};"]
    if route.source is not None:
        parts.append(f"source {route.source}{'/0' if v6 else ''};")
    if route.protocols:
        keyword = "next-header" if v6 else "protocol"
        parts.append(f"{keyword} [ {' '.join(f'={p}' for p in route.protocols)} ];")
    if route.destination_ports:
        parts.append(f"destination-port {_port_items(route.destination_ports)};")
    if route.source_ports:
        parts.append(f"source-port {_port_items(route.source_ports)};")
    return f"match {{ {' '.join(parts)} }}"


def announce_command(route: Route) -> str:
    if isinstance(route, RtbhRoute):
        communities = f" community [ {' '.join(route.communities)} ]" if route.communities else ""
        return f"announce route {route.prefix} next-hop {route.next_hop}{communities}"
    rate = route.rate_limit_bytes_per_second
    action = "discard;" if rate == 0 else f"rate-limit {rate:g};"
    return f"announce flow route {{ {_flow_match(route)} then {{ {action} }} }}"


def withdraw_command(route: Route) -> str:
    if isinstance(route, RtbhRoute):
        return f"withdraw route {route.prefix} next-hop {route.next_hop}"
    return f"withdraw flow route {{ {_flow_match(route)} }}"


class ExaBgpSpeaker(DaemonSpeaker):
    name = "exabgp"

    def __init__(self, config: SpeakerConfig, daemon: str = "exabgp") -> None:
        super().__init__()
        self.config = config
        self._daemon_binary = daemon
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    @property
    def _socket_path(self) -> Path:
        assert self._work is not None, "speaker not started"
        return self._work.path / "api.sock"

    async def start(self) -> None:
        if self.running:
            return
        if shutil.which(self._daemon_binary) is None:
            raise SpeakerError(f"{self._daemon_binary} is not installed (Debian package exabgp)")
        if self._work is None:
            self._work = WorkDir(self.config.work_dir, "opendots-exabgp-")
        self._socket_path.unlink(missing_ok=True)
        config_path = self._work.path / "exabgp.conf"
        config_path.write_text(render_config(self.config, self._socket_path))
        argv = [*self.config.command_prefix, self._daemon_binary, str(config_path)]
        self._daemon = DaemonProcess("exabgp", argv, self._work.path / "exabgp.log", env=environment(self.config))
        await self._daemon.start()
        await self._connect()

    async def _connect(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None
        deadline = time.monotonic() + self.config.start_timeout_seconds
        while True:
            if not self.running:
                tail = self._daemon.tail() if self._daemon is not None else ""
                raise SpeakerError(f"exabgp is not running; its log ends:\n{tail}")
            try:
                self._stream = await asyncio.open_unix_connection(str(self._socket_path))
                return
            except OSError:
                if time.monotonic() > deadline:
                    await self.stop()
                    raise SpeakerError(
                        f"exabgp API did not come up within {self.config.start_timeout_seconds} s"
                    ) from None
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None
        await super().stop()

    async def command(self, line: str, timeout: float = 10.0) -> list[str]:
        """Send one API command; its output lines. SpeakerError if ExaBGP answers "error" or is gone."""
        async with self._lock:
            try:
                return await self._exchange(line, timeout)
            except ConnectionError:
                pass
            # ExaBGP respawns a dead API process; reconnect once. Every command we send is idempotent.
            try:
                await self._connect()
                return await self._exchange(line, timeout)
            except ConnectionError as error:
                raise SpeakerError(f"exabgp API connection lost: {error}") from error

    async def _exchange(self, line: str, timeout: float) -> list[str]:
        if not self.running or self._stream is None:
            raise SpeakerError("exabgp is not running")
        reader, writer = self._stream
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            output: list[str] = []
            while True:
                raw = await asyncio.wait_for(reader.readline(), timeout)
                if not raw:
                    raise ConnectionError(f"exabgp closed its API while answering {line!r}")
                answer = raw.decode(errors="replace").rstrip("\n")
                if answer == "done":
                    return output
                if answer == "error":
                    tail = self._daemon.tail(3) if self._daemon else ""
                    raise SpeakerError(f"exabgp refused {line!r}; its log ends:\n{tail}")
                output.append(answer)
        except TimeoutError as error:
            raise SpeakerError(f"exabgp did not answer {line!r} within {timeout} s") from error
        except ConnectionError:
            raise
        except OSError as error:
            raise ConnectionError(str(error)) from error

    async def announce(self, routes: Sequence[Route]) -> None:
        for route in routes:
            await self.command(announce_command(route))

    async def withdraw(self, routes: Sequence[Route]) -> None:
        for route in routes:
            await self.command(withdraw_command(route))

    async def session_states(self) -> dict[str, str]:
        # "show neighbor summary": a header line, then "<peer> <AS> <up/down> <state> <sent> <received>".
        states = {str(peer.address): "idle" for peer in self.config.peers}
        for line in await self.command("show neighbor summary"):
            fields = line.split()
            if len(fields) >= 4 and fields[0] in states:
                states[fields[0]] = fields[3].lower()
        return states
