"""The RFC 9066 Call Home lab: iot → cpe (NAT) → isp → victim, in network namespaces.

    with CallHomeLab() as lab:
        lab.start(directory, transport="dtls")          # provider in `isp`, CPE in `cpe`, session up
        attack = lab.flood(lab.compromised, port=ATTACK_PORT, ...)
        address, port, packets = lab.top_talker()        # the ISP's detector: public address + NAT'd port
        lab.mitigate(address, port)                      # opendots callhome client mitigate ...

* `iot`: a compromised host (10.77.0.10) and a legitimate one (10.77.0.11) behind the CPE;
* `cpe`: masquerades the LAN to its public address 192.0.2.2 (inside the prefixes `certs init --call-home` lets the
  provider ask about), runs `opendots callhome server` with the nftables mitigator on its LAN side and
  `nat_external`, so a request about 192.0.2.2 + a port range is mapped through conntrack to the internal host;
* `isp`: routes to the victim, runs `opendots callhome client run` on 192.0.2.1:4647, and counts the packets toward
  the victim per (source address, source port) in a dynamic nft set: the detector;
* `victim`: 203.0.113.2, counting per destination port (the attack goes to ATTACK_PORT, the legitimate traffic to
  LEGIT_PORT).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from opendots.lab.flood import Flood, VictimTally
from opendots.lab.netns import Lab, LabUnavailable, Namespace, _ip, _missing_prerequisite
from opendots.lab.processes import LAB_SIGNAL_SETTINGS, StackError, wait_for

LAN = "10.77.0"
COMPROMISED = f"{LAN}.10"
LEGITIMATE = f"{LAN}.11"
CPE_LAN = f"{LAN}.1"
PUBLIC = "192.0.2.2"  # the CPE's public address, in CALL_HOME_PREFIXES
ISP_CPE_SIDE = "192.0.2.1"
ISP_VICTIM_SIDE = "203.0.113.1"
VICTIM = "203.0.113.2"
ATTACK_PORT = 5005
LEGIT_PORT = 5006
CALL_HOME_PORT = 4647
DETECTOR = f"""table ip detector {{
  set flows {{ type ipv4_addr . inet_service; flags dynamic; counter; size 65535; }}
  chain watch {{ type filter hook forward priority 0; ip daddr {VICTIM} udp dport {ATTACK_PORT} update @flows {{ ip saddr . udp sport }}; }}
}}
"""  # noqa: E501
MASQUERADE = """table ip labnat {
  chain post { type nat hook postrouting priority 100; oifname "c-wan" masquerade; }
}
"""


@dataclass
class CallHomeLab:
    """The four namespaces, their links and the NAT, the detector and the victim's tally; `start` adds the two
    DOTS processes. A context manager: namespaces and processes are gone on exit."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    iot: Namespace = field(init=False)
    cpe: Namespace = field(init=False)
    isp: Namespace = field(init=False)
    victim: Namespace = field(init=False)
    tally: VictimTally | None = None
    directory: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _created: list[Namespace] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.iot = Namespace(f"od-iot-{self.tag}")
        self.cpe = Namespace(f"od-cpe-{self.tag}")
        self.isp = Namespace(f"od-isp-{self.tag}")
        self.victim = Namespace(f"od-vic-{self.tag}")

    def __enter__(self) -> CallHomeLab:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        self.close()

    # ---- the network ----

    def build(self) -> None:
        missing = _missing_prerequisite()
        if missing:
            raise LabUnavailable(missing)
        for namespace in (self.iot, self.cpe, self.isp, self.victim):
            _ip(["netns", "add", namespace.name])
            self._created.append(namespace)
            _ip(["-n", namespace.name, "link", "set", "lo", "up"])
        Lab._veth(self.iot, "lan0", self.cpe, "c-lan")
        Lab._veth(self.cpe, "c-wan", self.isp, "i-cpe")
        Lab._veth(self.isp, "i-vic", self.victim, "vic0")
        for namespace, interface, address in (
            (self.iot, "lan0", f"{COMPROMISED}/24"),
            (self.iot, "lan0", f"{LEGITIMATE}/24"),
            (self.cpe, "c-lan", f"{CPE_LAN}/24"),
            (self.cpe, "c-wan", f"{PUBLIC}/24"),
            (self.isp, "i-cpe", f"{ISP_CPE_SIDE}/24"),
            (self.isp, "i-vic", f"{ISP_VICTIM_SIDE}/24"),
            (self.victim, "vic0", f"{VICTIM}/24"),
        ):
            _ip(["-n", namespace.name, "addr", "add", address, "dev", interface])
        _ip(["-n", self.iot.name, "route", "add", "default", "via", CPE_LAN])
        _ip(["-n", self.cpe.name, "route", "add", "default", "via", ISP_CPE_SIDE])
        _ip(["-n", self.victim.name, "route", "add", "default", "via", ISP_VICTIM_SIDE])
        for router in (self.cpe, self.isp):
            router.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        self.cpe.run(["nft", "-f", "-"], input=MASQUERADE)
        self.isp.run(["nft", "-f", "-"], input=DETECTOR)
        self.tally = VictimTally(self.victim, [ATTACK_PORT, LEGIT_PORT])

    def close(self) -> None:
        self.stop()
        while self._created:
            _ip(["netns", "del", self._created.pop().name], check=False)

    # ---- traffic ----

    def flood(self, source: str, port: int, *, count: int, duration: float, pps: float, sport: int = 0) -> Flood:
        """A bounded UDP flood from SOURCE (COMPROMISED or LEGITIMATE) to the victim's PORT."""
        return Flood(
            self.iot, VICTIM, port, count=count, duration=duration, pps=pps, source_address=source, source_port=sport
        )

    def received(self) -> dict[str, int]:
        """Packets the victim received so far: {"attack": n, "legitimate": n}."""
        assert self.tally is not None
        counts = self.tally.counts()
        return {"attack": counts[(17, ATTACK_PORT)], "legitimate": counts[(17, LEGIT_PORT)]}

    def top_talker(self) -> tuple[str, int, int] | None:
        """The ISP detector's biggest (public source address, source port) toward the victim's attacked port, with
        its packet count; None before any packet."""
        listing = json.loads(self.isp.run(["nft", "-j", "list", "set", "ip", "detector", "flows"]).stdout)
        best = None
        for item in listing["nftables"]:
            for element in item.get("set", {}).get("elem", []):
                address, port = element["elem"]["val"]["concat"]
                packets = element["elem"]["counter"]["packets"]
                if best is None or packets > best[2]:
                    best = (address, port, packets)
        return best

    def dropped_on_cpe(self) -> int:
        """Packets the CPE's mitigation table dropped (every named counter of it)."""
        listing = self.cpe.run(["nft", "-j", "list", "counters", "table", "netdev", "callhome"], check=False)
        if listing.returncode != 0:
            return 0
        items = json.loads(listing.stdout)["nftables"]
        return sum(item["counter"]["packets"] for item in items if "counter" in item)

    # ---- the DOTS processes ----

    def start(self, directory: Path, transport: str = "dtls", timeout: float = 30.0) -> None:
        """Write the Call Home pair into DIRECTORY, start the provider in `isp` and the CPE in `cpe`, and wait for
        the CPE's session."""
        from opendots.callhome.provider_config import ProviderConfig
        from opendots.config import ServerConfig
        from opendots.pki.setup import init_call_home, init_pki

        self.directory = directory
        init_pki(directory)
        cpe_toml, provider_toml = init_call_home(directory, provider_address=ISP_CPE_SIDE, port=CALL_HOME_PORT)
        cpe = ServerConfig.load(cpe_toml)
        cpe.providers = [{**cpe.providers[0], "transport": transport}]
        cpe.full_collection_interval = 0
        cpe.signal = dict(LAB_SIGNAL_SETTINGS)
        cpe.admin_socket = directory / "opendots-cpe-admin.sock"
        cpe.mitigators = [
            {
                "type": "nftables",
                "interface": "c-lan",
                "table": "callhome",
                "nat_external": [f"{PUBLIC}/32"],
                "nat_state": str(directory / "nat.json"),
            }
        ]
        cpe.save(cpe_toml)
        provider = ProviderConfig.load(provider_toml)
        provider.transports = [transport]
        provider.save(provider_toml)
        self.provider_toml, self.cpe_toml = provider_toml, cpe_toml
        self._spawn(self.isp, "provider.log", "callhome", "client", "run", "-c", str(provider_toml))
        wait_for(lambda: "listening" in self.log("provider.log"), timeout, "the provider listening")
        self.start_cpe()
        self.wait_connected(timeout)

    def start_cpe(self) -> None:
        self._spawn(self.cpe, "cpe.log", "callhome", "server", "-c", str(self.cpe_toml))

    def wait_connected(self, timeout: float = 30.0) -> None:
        def connected() -> bool:
            peers = json.loads(self.cli("peers", "--json").stdout or "[]")
            return any(peer.get("connected") for peer in peers)

        wait_for(connected, timeout, f"the CPE's session:\n{self.log('cpe.log')[-2000:]}", interval=0.2)

    def stop_cpe(self) -> None:
        """SIGKILL the CPE (what a power cut does): its nft table stays, its store and nat_state file too."""
        for process in self.processes:
            if process.args[-1] == str(self.cpe_toml) and process.poll() is None:
                process.kill()
                process.wait()

    def _spawn(self, namespace: Namespace, log: str, *args: str) -> None:
        assert self.directory is not None
        root = str(Path(__file__).resolve().parents[2])
        environment = {**os.environ, "PYTHONPATH": root}
        with (self.directory / log).open("ab") as stream:
            argv = namespace.command([sys.executable, "-m", "opendots", *args])
            self.processes.append(
                subprocess.Popen(argv, env=environment, stdout=subprocess.DEVNULL, stderr=stream, cwd=root)
            )

    def log(self, name: str) -> str:
        assert self.directory is not None
        path = self.directory / name
        return path.read_text(errors="replace") if path.exists() else ""

    def cli(self, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`opendots callhome client VERB -c provider.toml ARGS` (the control socket is a file: any namespace)."""
        root = str(Path(__file__).resolve().parents[2])
        argv = [sys.executable, "-m", "opendots", "callhome", "client", verb, "-c", str(self.provider_toml), *args]
        environment = {**os.environ, "PYTHONPATH": root}
        return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60, check=False)

    def cpe_admin(self, verb: str, *args: str) -> str:
        """`opendots admin VERB -c cpe.toml ARGS`: the CPE operator's view (its admin socket)."""
        root = str(Path(__file__).resolve().parents[2])
        argv = [sys.executable, "-m", "opendots", "admin", verb, "-c", str(self.cpe_toml), *args]
        environment = {**os.environ, "PYTHONPATH": root}
        result = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise StackError(f"admin {verb} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def cpe_mitigations(self) -> list[dict[str, Any]]:
        """The mitigations the CPE holds, with what its NAT lookup matched (nat-external, nat-internal-hosts)."""
        return json.loads(self.cpe_admin("mitigations", "--json"))["mitigations"]

    def mitigate(self, address: str, port: int, lifetime: int = 600) -> dict[str, Any]:
        """Ask the CPE, as the ISP, to stop ADDRESS:PORT (what the detector saw) toward the victim."""
        result = self.cli(
            "mitigate",
            "--peer",
            "home",
            "--source-prefix",
            f"{address}/32",
            "--source-port",
            str(port),
            "--target-prefix",
            f"{VICTIM}/32",
            "--lifetime",
            str(lifetime),
            "--json",
        )
        if result.returncode != 0:
            raise StackError(f"callhome client mitigate failed: {result.stdout}{result.stderr}")
        return json.loads(result.stdout)

    def status(self) -> list[dict[str, Any]]:
        result = self.cli("status", "--peer", "home", "--json")
        if result.returncode != 0:
            raise StackError(f"callhome client status failed: {result.stdout}{result.stderr}")
        return json.loads(result.stdout)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
