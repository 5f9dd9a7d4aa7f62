"""Test and benchmark harness: BIRD 2 as the receiving BGP peer, in its own network namespace.

Two namespaces joined by a veth pair: the speaker's ("<name>-s", 198.51.100.1 / 2001:db8:1::1) and BIRD's
("<name>-b", 198.51.100.2 / 2001:db8:1::2), documentation addresses only. BIRD null-routes the RTBH discard next
hops (192.0.2.1, 2001:db8::1), as a border router would, and resolves our next hops recursively through them, so an
RTBH route shows up in BIRD as `blackhole`. Needs root, `ip` (iproute2) and `bird`/`birdc` (Debian bird2).
Not used in production; lives here so the e2e tests and bench/bgp.py share one setup.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opendots.mitigate.bgp.speaker import PeerConfig, SpeakerConfig

SPEAKER_V4 = ipaddress.IPv4Address("198.51.100.1")
BIRD_V4 = ipaddress.IPv4Address("198.51.100.2")
SPEAKER_V6 = ipaddress.IPv6Address("2001:db8:1::1")
BIRD_V6 = ipaddress.IPv6Address("2001:db8:1::2")
SPEAKER_AS = 64496
BIRD_AS = 64497
DISCARD_V4 = ipaddress.IPv4Address("192.0.2.1")
DISCARD_V6 = ipaddress.IPv6Address("2001:db8::1")


def missing_prerequisites() -> str | None:
    """Why this lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for binary in ("ip", "bird", "birdc"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (apt-get install {'iproute2' if binary == 'ip' else 'bird2'})"
    probe = f"odp{secrets.token_hex(4)}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"cannot create a network namespace: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _bird_config() -> str:
    session = "multihop; connect delay time 1; connect retry time 1; error wait time 1, 5; hold time 9;"
    return f"""
router id {BIRD_V4};
protocol device {{}}
flow4 table flowtab4;
flow6 table flowtab6;
protocol static discard4 {{ ipv4; route {DISCARD_V4}/32 blackhole; }}
protocol static discard6 {{ ipv6; route {DISCARD_V6}/128 blackhole; }}
protocol bgp speaker4 {{
  local {BIRD_V4} as {BIRD_AS}; neighbor {SPEAKER_V4} as {SPEAKER_AS}; {session}
  ipv4 {{ import all; export none; gateway recursive; }};
  flow4 {{ table flowtab4; import all; export none; }};
}}
protocol bgp speaker6 {{
  local {BIRD_V6} as {BIRD_AS}; neighbor {SPEAKER_V6} as {SPEAKER_AS}; {session}
  ipv6 {{ import all; export none; gateway recursive; }};
  flow6 {{ table flowtab6; import all; export none; }};
}}
"""


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


class BirdLab:
    """Two namespaces, a veth pair, and BIRD. Use as a context manager; everything is removed on exit."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.speaker_ns = f"odbgp-{tag}-s"
        self.bird_ns = f"odbgp-{tag}-b"
        self._veth = (f"odb{tag}s", f"odb{tag}b")  # interface names are limited to 15 characters
        self.dir = Path(tempfile.mkdtemp(prefix=f"opendots-birdlab-{tag}-"))
        self.control_socket = self.dir / "bird.ctl"
        self._bird: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BirdLab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _build(self) -> None:
        speaker_if, bird_if = self._veth
        _run("ip", "netns", "add", self.speaker_ns)
        _run("ip", "netns", "add", self.bird_ns)
        _run("ip", "link", "add", speaker_if, "netns", self.speaker_ns, "type", "veth", "peer", "name", bird_if,
             "netns", self.bird_ns)  # fmt: skip
        for ns, interface, v4, v6 in (
            (self.speaker_ns, speaker_if, SPEAKER_V4, SPEAKER_V6),
            (self.bird_ns, bird_if, BIRD_V4, BIRD_V6),
        ):
            _run("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", interface)
            _run("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", interface, "nodad")
            _run("ip", "-n", ns, "link", "set", interface, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        config = self.dir / "bird.conf"
        config.write_text(_bird_config())
        log = (self.dir / "bird.log").open("wb")
        self._bird = subprocess.Popen(
            ["ip", "netns", "exec", self.bird_ns, "bird", "-f", "-c", str(config), "-s", str(self.control_socket)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_for(self.control_socket.exists, 5, "BIRD control socket")

    def close(self) -> None:
        if self._bird is not None:
            self._bird.terminate()
            try:
                self._bird.wait(5)
            except subprocess.TimeoutExpired:
                self._bird.kill()
                self._bird.wait()
            self._bird = None
        for ns in (self.speaker_ns, self.bird_ns):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def speaker_config(self, **overrides: object) -> SpeakerConfig:
        """A speaker configuration that peers with this BIRD over IPv4 and IPv6 from the speaker namespace."""
        values: dict[str, object] = {
            "local_as": SPEAKER_AS,
            "router_id": SPEAKER_V4,
            "peers": (
                PeerConfig(BIRD_V4, BIRD_AS, local_address=SPEAKER_V4),
                PeerConfig(BIRD_V6, BIRD_AS, local_address=SPEAKER_V6),
            ),
            "listen_port": 179,
            "command_prefix": ("ip", "netns", "exec", self.speaker_ns),
        }
        values.update(overrides)
        return SpeakerConfig(**values)  # type: ignore[arg-type]

    def birdc(self, *command: str) -> str:
        return _run("birdc", "-s", str(self.control_socket), *command)

    def protocol_states(self) -> dict[str, str]:
        states = {}
        for line in self.birdc("show", "protocols").splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "BGP":
                states[fields[0]] = fields[5]
        return states

    def established(self) -> bool:
        states = self.protocol_states()
        return bool(states) and all(state == "Established" for state in states.values())

    def routes(self, table: str) -> dict[str, str]:
        """BIRD's routes in TABLE (master4, master6, flowtab4, flowtab6): network -> the full `all` text."""
        text = self.birdc("show", "route", "table", table, "all")
        routes: dict[str, str] = {}
        current = None
        for line in text.splitlines()[1:]:  # the first line is BIRD's banner
            if not line.strip() or line.startswith("Table "):
                continue
            if not line[0].isspace():
                match = re.match(r"(flow[46] \{.*?\}|\S+)", line)
                current = match.group(1) if match else line
                routes[current] = line
            elif current is not None:
                routes[current] += "\n" + line
        return routes

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout} s; BIRD log:\n{self.bird_log()}")
            time.sleep(0.02)

    def bird_log(self) -> str:
        try:
            return (self.dir / "bird.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class BirdControl:
    """BIRD's control socket spoken directly: a few hundred microseconds per query instead of a birdc process.

    Protocol: every reply line starts with a 4-digit code; "-" after the code means more lines follow, a space
    means the reply ends; continuation lines start with a space. Codes 8xxx/9xxx are errors (8001: no such route).
    """

    def __init__(self, path: Path) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.connect(str(path))
        self._reader = self._socket.makefile("rb")
        self._read_reply()  # the "0001 BIRD ... ready." banner

    def close(self) -> None:
        self._reader.close()
        self._socket.close()

    def __enter__(self) -> BirdControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query(self, command: str) -> str:
        self._socket.sendall(command.encode() + b"\n")
        return self._read_reply()

    def _read_reply(self) -> str:
        lines = []
        while True:
            raw = self._reader.readline()
            if not raw:
                raise ConnectionError("BIRD closed its control socket")
            line = raw.decode(errors="replace").rstrip("\n")
            code, separator = line[:4], line[4:5]
            if code == "8001":  # "Network not found": an empty answer, not a failure
                return ""
            if code.isdigit() and code[0] in "89":
                raise RuntimeError(f"BIRD: {line}")
            lines.append(line[5:] if code.isdigit() else line[1:])
            if code.isdigit() and separator == " ":
                return "\n".join(lines)
