"""Network namespaces and veth pairs for the lab: attacker → router → victim.

Everything is driven through iproute2 (`ip`) and util-linux `nsenter`, both present wherever nftables is, so the
lab adds no Python dependency. Names are random per lab so parallel test runs never collide, and the namespaces
(with their veths, addresses and nft tables) vanish together when the lab is closed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

from opendots.errors import OpenDotsError
from opendots.lab.flood import udp_sender_argv

NETNS_DIR = "/run/netns"

# Documentation ranges only (RFC 5737, RFC 3849): nothing here can ever reach a real network.
ATTACKER_SIDE_V4 = ipaddress.ip_network("198.51.100.0/24")
VICTIM_SIDE_V4 = ipaddress.ip_network("203.0.113.0/24")
ATTACKER_SIDE_V6 = ipaddress.ip_network("2001:db8:a::/64")
VICTIM_SIDE_V6 = ipaddress.ip_network("2001:db8:b::/64")


class LabError(OpenDotsError, RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


class LabUnavailable(LabError):
    """This machine cannot build a lab (not root, no netns support, missing binaries)."""


@dataclass(frozen=True)
class Namespace:
    """One network namespace; commands run inside it through `nsenter --net` (no mount namespace games)."""

    name: str

    @property
    def path(self) -> str:
        return f"{NETNS_DIR}/{self.name}"

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(
        self, argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise LabError(f"in {self.name}: {' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def interface_stats(self, interface: str) -> dict[str, int]:
        """Kernel counters of INTERFACE (rx/tx packets and bytes) as seen inside this namespace."""
        out = _ip(["-n", self.name, "-s", "-j", "link", "show", "dev", interface]).stdout
        stats = json.loads(out)[0]["stats64"]
        return {
            "rx_packets": stats["rx"]["packets"],
            "rx_bytes": stats["rx"]["bytes"],
            "tx_packets": stats["tx"]["packets"],
            "tx_bytes": stats["tx"]["bytes"],
        }


def _ip(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30.0, check=False)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, veth pairs, nftables)"
    for binary in ("ip", "nsenter", "nft"):
        if shutil.which(binary) is None:
            return f"`{binary}` is not installed (Debian packages iproute2, util-linux, nftables)"
    return None


def lab_unavailable_reason() -> str | None:
    """Why no lab can be built here (None if one can): checked, not guessed, by creating a namespace."""
    missing = _missing_prerequisite()
    if missing:
        return missing
    probe = f"odprobe{secrets.token_hex(4)}"
    created = _ip(["netns", "add", probe], check=False)
    if created.returncode != 0:
        return f"cannot create a network namespace: {created.stderr.strip()}"
    try:
        veth = _ip(["-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"], check=False)
        if veth.returncode != 0:
            return f"cannot create a veth pair: {veth.stderr.strip()}"
        nft = Namespace(probe).run(["nft", "list", "tables"], check=False)
        if nft.returncode != 0:
            return f"nft does not work in a network namespace: {nft.stderr.strip()}"
    finally:
        _ip(["netns", "del", probe], check=False)
    return None


@dataclass
class Lab:
    """attacker (198.51.100.0/24, 2001:db8:a::/64) → router → victim (203.0.113.0/24, 2001:db8:b::/64).

    `router_ingress` is the router's interface facing the attacker: that is where a mitigator hooks.
    The victim owns `victim_hosts` addresses per family (…::2, …::3, …) so floods to each of them are delivered.
    Use as a context manager: the namespaces are deleted on exit, whatever happened inside.
    """

    victim_hosts: int = 2
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    attacker: Namespace = field(init=False)
    router: Namespace = field(init=False)
    victim: Namespace = field(init=False)
    router_ingress: str = "r-att"
    router_egress: str = "r-vic"
    attacker_interface: str = "att0"
    victim_interface: str = "vic0"
    attacker_v4: ipaddress.IPv4Address = ATTACKER_SIDE_V4[2]
    attacker_v6: ipaddress.IPv6Address = ATTACKER_SIDE_V6[2]
    _created: list[Namespace] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.attacker = Namespace(f"od-att-{self.tag}")
        self.router = Namespace(f"od-rtr-{self.tag}")
        self.victim = Namespace(f"od-vic-{self.tag}")

    @property
    def victim_v4(self) -> list[ipaddress.IPv4Address]:
        return [VICTIM_SIDE_V4[2 + i] for i in range(self.victim_hosts)]

    @property
    def victim_v6(self) -> list[ipaddress.IPv6Address]:
        return [VICTIM_SIDE_V6[2 + i] for i in range(self.victim_hosts)]

    def attacker_sources(self, count: int, first: int = 10) -> list[ipaddress.IPv4Address]:
        """COUNT more IPv4 addresses of the attacker (198.51.100.FIRST, ...), for floods from several sources
        (`source_address` of a flood); asking again for one the attacker already has is not an error."""
        addresses = [ATTACKER_SIDE_V4[first + i] for i in range(count)]
        for address in addresses:
            self.attacker.run(["ip", "addr", "replace", f"{address}/24", "dev", self.attacker_interface])
        return addresses

    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def build(self) -> None:
        missing = _missing_prerequisite()
        if missing:
            raise LabUnavailable(missing)
        for namespace in (self.attacker, self.router, self.victim):
            _ip(["netns", "add", namespace.name])
            self._created.append(namespace)
            _ip(["-n", namespace.name, "link", "set", "lo", "up"])
            # No duplicate address detection: link-local addresses are usable at once, so neighbour discovery
            # (and with it IPv6 forwarding) works from the first packet instead of after a ~2 s DAD delay.
            namespace.run(
                ["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]
            )
        # Each veth end is created directly inside its namespace: names only need to be unique per namespace.
        self._veth(self.attacker, self.attacker_interface, self.router, self.router_ingress)
        self._veth(self.router, self.router_egress, self.victim, self.victim_interface)
        self._address(self.attacker, self.attacker_interface, f"{self.attacker_v4}/24", f"{self.attacker_v6}/64")
        self._address(self.router, self.router_ingress, f"{ATTACKER_SIDE_V4[1]}/24", f"{ATTACKER_SIDE_V6[1]}/64")
        self._address(self.router, self.router_egress, f"{VICTIM_SIDE_V4[1]}/24", f"{VICTIM_SIDE_V6[1]}/64")
        for v4, v6 in zip(self.victim_v4, self.victim_v6, strict=True):
            self._address(self.victim, self.victim_interface, f"{v4}/24", f"{v6}/64")
        self.router.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        for namespace, gateway_v4, gateway_v6 in (
            (self.attacker, ATTACKER_SIDE_V4[1], ATTACKER_SIDE_V6[1]),
            (self.victim, VICTIM_SIDE_V4[1], VICTIM_SIDE_V6[1]),
        ):
            _ip(["-n", namespace.name, "route", "add", "default", "via", str(gateway_v4)])
            _ip(["-n", namespace.name, "-6", "route", "add", "default", "via", str(gateway_v6)])
        # Resolve neighbours before any flood, so no flood packet is lost while ARP/ND queues are tiny.
        for address in [*self.victim_v4, *self.victim_v6]:
            self.attacker.run(udp_sender_argv(str(address), 9, count=1, duration=0.5))
        self._wait_for_neighbours(self.router, [str(a) for a in [*self.victim_v4, *self.victim_v6]])
        self._wait_for_neighbours(self.attacker, [str(ATTACKER_SIDE_V4[1]), str(ATTACKER_SIDE_V6[1])])

    @staticmethod
    def _wait_for_neighbours(namespace: Namespace, addresses: list[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            entries = json.loads(_ip(["-n", namespace.name, "-j", "neigh", "show"]).stdout or "[]")
            resolved = {entry["dst"] for entry in entries if "lladdr" in entry}
            missing = [address for address in addresses if address not in resolved]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LabError(f"in {namespace.name}: neighbours {missing} not resolved within {timeout} s")
            time.sleep(0.02)

    def add_namespace(self, role: str) -> Namespace:
        """One more namespace (od-ROLE-<tag>, loopback up) deleted with the lab: e.g. a DOTS client and a gateway
        beside the router (tests/helpers/gateway_netns.py)."""
        namespace = Namespace(f"od-{role}-{self.tag}")
        _ip(["netns", "add", namespace.name])
        self._created.append(namespace)
        _ip(["-n", namespace.name, "link", "set", "lo", "up"])
        return namespace

    def connect(self, left: Namespace, left_end: tuple[str, str], right: Namespace, right_end: tuple[str, str]) -> None:
        """A veth pair between LEFT and RIGHT, each end given as (interface name, address/prefix length)."""
        self._veth(left, left_end[0], right, right_end[0])
        self._address(left, left_end[0], left_end[1])
        self._address(right, right_end[0], right_end[1])

    def close(self) -> None:
        while self._created:
            namespace = self._created.pop()
            _ip(["netns", "del", namespace.name], check=False)

    @staticmethod
    def _veth(left: Namespace, left_name: str, right: Namespace, right_name: str) -> None:
        _ip(
            ["-n", left.name, "link", "add", left_name, "type", "veth", "peer", "name", right_name, "netns", right.name]
        )
        _ip(["-n", left.name, "link", "set", left_name, "up"])
        _ip(["-n", right.name, "link", "set", right_name, "up"])

    @staticmethod
    def _address(namespace: Namespace, interface: str, *addresses: str) -> None:
        for address in addresses:
            extra = ["nodad"] if ":" in address else []
            _ip(["-n", namespace.name, "addr", "add", address, "dev", interface, *extra])

    def victim_rx_packets(self) -> int:
        return self.victim.interface_stats(self.victim_interface)["rx_packets"]

    def namespaces_exist(self) -> bool:
        return any(os.path.exists(ns.path) for ns in (self.attacker, self.router, self.victim))
