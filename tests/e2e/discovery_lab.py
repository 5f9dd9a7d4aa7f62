"""A lab for RFC 8973 discovery: dnsmasq as the DNS server (NAPTR/SRV/A records) and as a DHCPv4 server (DOTS
options 147/148) in a namespace of its own, and busybox udhcpc as the real DHCP client in a third namespace.

root (the test, `opendots server`, the agent) ── veth ── svc (dnsmasq DNS) ── veth ── dhc (udhcpc)
                                                         (dnsmasq DHCP)
Addresses come from a random /29 pair of 100.64.0.0/10 (RFC 6598) so parallel runs do not collide.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from opendots.lab.netns import LabError, Namespace, _ip

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc hook: leave the DOTS options (hex, as udhcpc names them) and the lease where the agent reads them.
case "$1" in
bound|renew) env | grep -E '^(opt141|opt142|opt147|opt148|lease)=' > "{out}.tmp" && mv "{out}.tmp" "{out}" ;;
esac
exit 0
"""
DHCLIENT_SCRIPT = """#!/bin/sh
# dhclient -6 hook: the same file format (dhclient names the options as dhclient.conf defines them).
case "$reason" in
BOUND6|RENEW6|REBIND6)
  printf 'opt141=%s\\nopt142=%s\\nlease=%s\\n' "$new_dhcp6_dots_ri" "$new_dhcp6_dots_address" "$new_max_life" \\
    > "{out}.tmp" && mv "{out}.tmp" "{out}" ;;
esac
exit 0
"""
DHCLIENT_CONF = """option dhcp6.dots-ri code 141 = string;
option dhcp6.dots-address code 142 = string;
also request dhcp6.dots-ri, dhcp6.dots-address;
"""


def missing_tools() -> str | None:
    for tool in ("dnsmasq", "udhcpc", "dhclient", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: dnsmasq-base, udhcpc, isc-dhcp-client, util-linux, iproute2)"
    return None


def discovery_lab(directory: Path) -> Iterator[DiscoveryLab]:
    """A DiscoveryLab in DIRECTORY for a pytest fixture (`yield from`), or the test skipped with the reason."""
    import pytest

    from opendots.lab.netns import lab_unavailable_reason

    reason = lab_unavailable_reason() or missing_tools()
    if reason:
        pytest.skip(reason)
    with DiscoveryLab(directory) as built:
        yield built


class DiscoveryLab:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tag = secrets.token_hex(3)
        base = ipaddress.ip_address(f"100.{64 + secrets.randbelow(64)}.{secrets.randbelow(256)}.0")
        offset = secrets.randbelow(16) * 16
        self.root_address = str(base + offset + 1)  # root side of the DNS link (also where a server listens)
        self.dns_address = str(base + offset + 2)
        self.dhcp_server_address = str(base + offset + 9)
        self.dhcp_pool = (str(base + offset + 10), str(base + offset + 14))
        prefix = f"2001:db8:{secrets.randbelow(0xFFFF):x}"  # RFC 3849 documentation space
        self.root_v6 = f"{prefix}:1::1"  # root side of the DNS link: a server can listen there
        self.dhcp6_prefix = f"{prefix}:2::"
        self.svc = Namespace(f"od-dsv-{self.tag}")
        self.dhc = Namespace(f"od-dhc-{self.tag}")
        self.root_interface = f"odd{self.tag}"
        self._created: list[Namespace] = []
        self._processes: list[subprocess.Popen[str]] = []

    def __enter__(self) -> DiscoveryLab:
        try:
            for namespace in (self.svc, self.dhc):
                _ip(["netns", "add", namespace.name])
                self._created.append(namespace)
                _ip(["-n", namespace.name, "link", "set", "lo", "up"])
                # No duplicate address detection: DHCPv6 needs a usable link-local address at once.
                namespace.run(["sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0"])
            _ip(["link", "add", self.root_interface, "type", "veth", "peer", "name", "dns0", "netns", self.svc.name])
            _ip(["addr", "add", f"{self.root_address}/29", "dev", self.root_interface])
            _ip(["addr", "add", f"{self.root_v6}/64", "dev", self.root_interface, "nodad"])
            _ip(["link", "set", self.root_interface, "up"])
            _ip(["-n", self.svc.name, "addr", "add", f"{self.dns_address}/29", "dev", "dns0"])
            _ip(["-n", self.svc.name, "link", "set", "dns0", "up"])
            _ip(
                [
                    "-n",
                    self.svc.name,
                    "link",
                    "add",
                    "dhcp0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "cli0",
                    "netns",
                    self.dhc.name,
                ]
            )
            _ip(["-n", self.svc.name, "addr", "add", f"{self.dhcp_server_address}/29", "dev", "dhcp0"])
            _ip(["-n", self.svc.name, "addr", "add", f"{self.dhcp6_prefix}1/64", "dev", "dhcp0", "nodad"])
            _ip(["-n", self.svc.name, "link", "set", "dhcp0", "up"])
            _ip(["-n", self.dhc.name, "link", "set", "cli0", "up"])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=5)
        _ip(["link", "del", self.root_interface], check=False)
        while self._created:
            _ip(["netns", "del", self._created.pop().name], check=False)

    def _dnsmasq(self, name: str, arguments: list[str]) -> subprocess.Popen[str]:
        log = (self.directory / f"dnsmasq-{name}.log").open("w")
        argv = [
            "dnsmasq",
            "--keep-in-foreground",
            "--log-facility=-",
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            "--bind-interfaces",
            "--user=root",
            f"--pid-file={self.directory / f'dnsmasq-{name}.pid'}",
            *arguments,
        ]
        process = subprocess.Popen(self.svc.command(argv), stdout=log, stderr=subprocess.STDOUT, text=True)
        self._processes.append(process)
        time.sleep(0.3)
        if process.poll() is not None:
            raise LabError(f"dnsmasq {name} exited: {(self.directory / f'dnsmasq-{name}.log').read_text()}")
        return process

    def serve_dns(self, records: list[str], ttl: int = 60) -> str:
        """dnsmasq answering for the "test." zone only (NXDOMAIN/NODATA for the rest of it); returns the resolver."""
        self._dns = self._dnsmasq(
            "dns",
            [
                f"--listen-address={self.dns_address}",
                "--port=53",
                "--local=/test/",
                f"--local-ttl={ttl}",
                "--log-queries",
                *records,
            ],
        )
        return self.dns_address

    def restart_dns(self, records: list[str], ttl: int = 60) -> str:
        """New records: dnsmasq reads --srv-host and --naptr-record at start only."""
        process = self._dns
        process.terminate()
        process.wait(timeout=5)
        return self.serve_dns(records, ttl)

    def serve_dhcp(self, options: list[str]) -> None:
        """dnsmasq as DHCPv4 server only (--port=0: no DNS) on the link to the dhc namespace."""
        self._dnsmasq(
            "dhcp",
            [
                "--port=0",
                "--interface=dhcp0",
                f"--listen-address={self.dhcp_server_address}",
                f"--dhcp-range={self.dhcp_pool[0]},{self.dhcp_pool[1]},255.255.255.248,1h",
                f"--dhcp-leasefile={self.directory / 'dnsmasq.leases'}",
                "--dhcp-authoritative",
                *(f"--dhcp-option={option}" for option in options),
            ],
        )

    def run_dhcp_client(self, out: Path, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """busybox udhcpc in the dhc namespace, asking for options 147 and 148 (RFC 8973 §5.2.3)."""
        script = self.directory / "udhcpc-hook.sh"
        script.write_text(UDHCPC_SCRIPT.format(out=out))
        script.chmod(0o755)
        argv = [
            "udhcpc",
            "-i",
            "cli0",
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            str(script),
            "-O",
            "147",
            "-O",
            "148",
        ]
        return self.dhc.run(argv, timeout=timeout)

    def serve_dhcp6(self, options: list[str]) -> None:
        """dnsmasq as DHCPv6 server only (stateful, IA_NA) with OPTIONS ("option6:141,…")."""
        pool = (f"{self.dhcp6_prefix}10", f"{self.dhcp6_prefix}20")
        self._dnsmasq(
            "dhcp6",
            [
                "--port=0",
                "--interface=dhcp0",
                f"--dhcp-range={pool[0]},{pool[1]},64,1h",
                f"--dhcp-leasefile={self.directory / 'dnsmasq6.leases'}",
                *(f"--dhcp-option={option}" for option in options),
            ],
        )

    def run_dhcp6_client(self, out: Path, timeout: float = 20.0) -> str:
        """ISC dhclient -6 in the dhc namespace, requesting options 141 and 142 (RFC 8973 §5.1.3); stopped once its
        hook has written OUT. Returns its output."""
        script = self.directory / "dhclient-hook.sh"
        script.write_text(DHCLIENT_SCRIPT.format(out=out))
        script.chmod(0o755)
        conf = self.directory / "dhclient6.conf"
        conf.write_text(DHCLIENT_CONF)
        argv = ["dhclient", "-6", "-1", "-d", "-v", "-cf", str(conf), "-sf", str(script)]
        argv += ["-lf", str(self.directory / "dhclient6.leases"), "-pf", str(self.directory / "dhclient6.pid"), "cli0"]
        process = subprocess.Popen(self.dhc.command(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while not out.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.terminate()
        try:
            output, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=5)
        return output
