"""FastNetMon's attack details as DOTS pre-or-ongoing-mitigation telemetry (RFC 9244 §8.2, attack detail §8.1.6).

For `ban`, FastNetMon writes on stdin a block of `Name: value` lines, then (ban_details_records_count > 0) one line
per sampled packet:

    IP: 203.0.113.7
    Attack type: udp_flood
    Initial attack power: 25000 packets per second
    Total incoming traffic: 20 mbps
    Total incoming pps: 25000 packets per second
    ...
    2026-12-06 23:00:00.123456 198.51.100.5:4000 > 203.0.113.7:5000 protocol: udp frag: 0  packets: 1 size: 60
    bytes ttl: 64 sample ratio: 1                                            (one line per packet, cut here)

The hook reports: the traffic toward the target (total incoming pps and Mbps), the attack traffic (the pps that
triggered the ban), and an attack detail naming FastNetMon's attack type and the top talkers, the sources of the
sampled packets toward the target, largest first, each with its port when it used a single one and an estimate of
its rate (its share of the sampled packets times the attack pps). Lines it does not know are skipped: the format
differs between FastNetMon releases, and a detail it cannot read must never stop the mitigation request.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from opendots.signal.client.core.telemetry_bodies import AttackDetail, report_entry

MAX_TALKERS = 10  # what a server accepts is bounded too (4.22 past its max-top-talkers); ten name a flood well
# FastNetMon's attack types → attack-id under vendor_id ([telemetry] of client.toml; 0: no IANA enterprise number)
ATTACK_IDS = {"syn_flood": 1, "udp_flood": 2, "icmp_flood": 3, "ip_fragmentation_flood": 4}
_PACKET = re.compile(
    r"(?P<source>\S+) > (?P<destination>\S+) protocol: (?P<protocol>\S+).*?packets: (?P<packets>\d+)"
    r"(?:.*?sample ratio: (?P<ratio>\d+))?"
)
_NUMBER = re.compile(r"^(\d+)")


@dataclass
class AttackDetails:
    """What the hook could read of FastNetMon's stdin."""

    attack_type: str | None = None
    incoming_pps: int | None = None
    incoming_mbps: int | None = None
    talkers: Counter[str] = field(default_factory=Counter)
    """Source address → sampled packets toward the target (weighted by the sample ratio)."""
    ports: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))


def _endpoint(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int | None] | None:
    """'198.51.100.5:4000', '[2001:db8::5]:4000', '2001:db8::5:4000' (FastNetMon's IPv6 lines: the port is the
    last group), or an address without a port."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif ":" in text:
        host, _, port = text.rpartition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            return ipaddress.ip_address(text), None
        except ValueError:
            return None
    return address, int(port) if port and port.isdigit() and int(port) <= 65535 else None


def _number(value: str) -> int | None:
    match = _NUMBER.match(value.strip())
    return int(match.group(1)) if match else None


def parse_details(text: str, target: ipaddress.IPv4Address | ipaddress.IPv6Address) -> AttackDetails:
    """Read FastNetMon's details; only packets toward TARGET count as talkers. Linear in the input (bounded by the
    hook's 1 MiB read)."""
    details = AttackDetails()
    for line in text.splitlines():
        if " > " in line:
            match = _PACKET.search(line)
            if match is None:
                continue
            source, destination = _endpoint(match["source"]), _endpoint(match["destination"])
            if source is None or destination is None or destination[0] != target:
                continue
            weight = int(match["packets"]) * max(1, int(match["ratio"] or 1))
            details.talkers[str(source[0])] += weight
            if source[1] is not None:
                details.ports[str(source[0])].add(source[1])
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip().lower()
        if name == "attack type":
            details.attack_type = value.strip() or None
        elif name == "total incoming pps":
            details.incoming_pps = _number(value)
        elif name == "total incoming traffic":
            details.incoming_mbps = _number(value)
    return details


def telemetry_entry(
    details: AttackDetails,
    target_prefix: str,
    attack_pps: int,
    *,
    vendor_id: int = 0,
    start_time: int | None = None,
) -> dict[str, Any]:
    """One pre-or-ongoing-mitigation entry for TARGET_PREFIX."""
    total_traffic = []
    if details.incoming_pps is not None:
        total_traffic.append(f"{details.incoming_pps}:pps")
    if details.incoming_mbps is not None:
        total_traffic.append(f"{details.incoming_mbps}:Mbps")
    sampled = sum(details.talkers.values())
    talkers = []
    for source, packets in details.talkers.most_common(MAX_TALKERS):
        address = ipaddress.ip_address(source)
        talker: dict[str, Any] = {"source-prefix": f"{address}/{address.max_prefixlen}"}
        ports = details.ports.get(source, set())
        if len(ports) == 1:
            talker["source-port-range"] = [{"lower-port": next(iter(ports))}]
        if attack_pps and sampled:
            talker["total-attack-traffic"] = [{"unit": "packet-ps", "current-g": str(attack_pps * packets // sampled)}]
        talkers.append(talker)
    attack_type = details.attack_type or "unknown"
    attack = AttackDetail(
        vendor_id,
        ATTACK_IDS.get(attack_type, 0),
        f"FastNetMon: {attack_type}",
        start_time=start_time,
        talkers=tuple(talkers),
    )
    return report_entry(
        [target_prefix],
        total_traffic=total_traffic,
        total_attack_traffic=[f"{attack_pps}:pps"],
        attack=attack,
    )
