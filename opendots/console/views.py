"""What the console shows, read through the admin socket's handler (the same state `opendots admin` reads), plus
what only a page needs: each client's session transport and address and heartbeat health, and which actuator
enforces each mitigation."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from opendots.mitigate.router import MitigatorRouter, enforces

if TYPE_CHECKING:
    from opendots.signal.server.shell.admin import AdminHandler

TARGET_KEYS = ("target-prefix", "target-port-range", "target-protocol", "target-fqdn", "target-uri", "alias-name")
TRANSPORTS = {"coaps": "DTLS", "coaps+tcp": "TLS"}
ROWS = 300
"""Mitigations listed on the page (the first by client and mid; the page says how many there are in all): a
snapshot is built on the event loop, so its cost must not grow with tens of thousands of mitigations."""


async def snapshot(admin: AdminHandler, now: float, details: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the page shows, as JSON: rendered by the server for the first load, then sent as events.
    DETAILS: the admin socket's `client-details` (read less often than the rest: see Console.details)."""
    status = await admin("status", {})
    listed = await admin("mitigations", {"limit": ROWS})
    server = admin.server
    enforced = status["enforced"]
    configs = {d["name"]: config_text(d["session-config"]) for d in details}
    return {
        "now": now,
        "enforced": enforced,
        "sessions": status["sessions"],
        "redirection": status["redirection"],
        "clients": [_client(server, entry, now, configs.get(entry["name"], "-")) for entry in status["clients"]],
        "mitigations": [_mitigation(server.service.mitigator, entry, enforced) for entry in listed["mitigations"]],
        "mitigations-total": listed["total"],
        "data-channel": data_channel_rows(details),
        "telemetry-setups": setup_rows(details),
        "telemetry-reports": report_rows(details),
    }


def config_text(config: dict[str, Any]) -> str:
    """RFC 9132 §4.5 values in force: heartbeat interval and missed heartbeats allowed, idle and mitigating."""
    idle, mitigating = config["idle"], config["mitigating"]
    words = [
        f"idle: heartbeat {idle['heartbeat-interval']} s, lost after {idle['missing-hb-allowed']} missed",
        f"mitigating: heartbeat {mitigating['heartbeat-interval']} s, lost after "
        f"{mitigating['missing-hb-allowed']} missed",
        f"retransmit {mitigating['max-retransmit']}, ack-timeout {mitigating['ack-timeout']} s",
    ]
    words.append(f"sid {config['sid']}" if config["sid"] is not None else "server defaults")
    return "; ".join(words)


def data_channel_rows(details: list[dict[str, Any]]) -> list[list[str]]:
    """[client, kind, name, activation, content] of each alias and ACL (RFC 8783, RFC 9133 activation types)."""
    rows = []
    for client in details:
        for alias in client["aliases"]:
            rows.append([client["name"], "alias", alias["name"], "-", alias["targets"]])
        for acl in client["acls"]:
            rows.append([client["name"], "ACL", acl["name"], acl["activation-type"], "; ".join(acl["aces"]) or "-"])
    return rows


def setup_rows(details: list[dict[str, Any]]) -> list[list[str]]:
    """[client, tsid, kind, values] of each RFC 9244 §7 setup: configuration, pipe capacity, baselines."""
    from opendots.cli.client_telemetry import setup_rows as words

    return [[c["name"], *row] for c in details for row in words({"telemetry": c["telemetry-setups"]})]


def report_rows(details: list[dict[str, Any]]) -> list[list[str]]:
    """[client, tmid, target, total traffic, attack traffic, attack, severity, top talkers, by protocol; by port]
    (RFC 9244 §8.2, §8.3)."""
    from opendots.cli.client_telemetry import report_rows as words

    return [[c["name"], *row] for c in details for row in words(c["telemetry-reports"])]


def _client(server: Any, entry: dict[str, Any], now: float, config: str) -> dict[str, Any]:
    name = entry["name"]
    remote = server.resource.remotes.get(name)
    return {
        "name": name,
        "cuid": entry["cuid"],
        "transport": TRANSPORTS.get(getattr(remote, "scheme", ""), "-") if remote is not None else "-",
        "address": getattr(remote, "hostinfo", "-") if remote is not None else "-",
        "health": _health(server, name, now),
        "last-seen": entry["last-traffic"],
        "mitigations": entry["mitigations"],
        "enforcing": entry["enforcing"],
        "config": config,
    }


def _health(server: Any, name: str, now: float) -> str:
    """§4.7 as an operator reads it: alive within one heartbeat interval, late until the loss deadline, lost."""
    core = server.service.core
    liveness = core.liveness(name)
    if liveness is None:
        return "no traffic"
    if liveness.lost:
        return "lost"
    parameters = core.session_config(name).for_activity(core.is_enforcing(name))
    if not parameters.heartbeat_interval or now - liveness.last_traffic <= parameters.heartbeat_interval:
        return "alive"
    return "late"


def _mitigation(mitigator: Any, entry: dict[str, Any], enforced: bool) -> dict[str, Any]:
    key = f"{entry['cuid']}/{entry['mid']}"
    placed = mitigator.placed_on(key) if isinstance(mitigator, MitigatorRouter) else [mitigator]
    enforcers = [m.name for m in placed if enforces(m)]
    return {
        "client": entry["client"],
        "cuid": entry["cuid"],
        "mid": entry["mid"],
        "status": entry["status"],
        "lifetime": entry["lifetime"],
        "targets": targets_text(entry),
        "pkts-dropped": entry["pkts-dropped"],
        "bytes-dropped": entry["bytes-dropped"],
        "enforced-by": ", ".join(enforcers) if enforcers and enforced else "not enforced",
        "pkt-rate": None,  # CounterHistory.observe fills these in from the measurements it has seen
        "bit-rate": None,
        "chart": [],
    }


def targets_text(entry: dict[str, Any]) -> str:
    """The targets as an operator writes them: 203.0.113.0/24 udp 53, example.com."""
    parts: list[str] = []
    for key in TARGET_KEYS:
        for value in entry.get(key) or []:
            if isinstance(value, dict):  # a port range
                lower, upper = value.get("lower-port"), value.get("upper-port", value.get("lower-port"))
                parts.append(f"port {lower}" if lower == upper else f"ports {lower}-{upper}")
            elif key == "target-protocol":
                parts.append({6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}.get(value, f"protocol {value}"))
            elif key == "alias-name":
                parts.append(f"alias {value}")
            else:
                parts.append(str(value))
    return " ".join(parts) or "-"


HISTORY = 60
"""Measurements kept per mitigation for its chart."""


class CounterHistory:
    """Dropped-packet and -byte counters of the listed mitigations over time, for their rates and charts. Kept by
    the console (the server keeps only the latest counters); bounded by ROWS mitigations x HISTORY samples."""

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        """How often the service reads the mitigators' counters: a value unchanged for that long was measured
        again (a rate of zero), not merely not yet re-read."""
        self.samples: dict[str, collections.deque[tuple[float, int, int]]] = {}

    def observe(self, mitigations: list[dict[str, Any]], now: float) -> None:
        """Add each mitigation's counters, then give it its rates ("pkt-rate", "bit-rate", None until two
        measurements) and "chart" (packets dropped per second, oldest first)."""
        listed = set()
        for m in mitigations:
            key = f"{m['cuid']}/{m['mid']}"
            listed.add(key)
            m["pkt-rate"] = m["bit-rate"] = None
            m["chart"] = []
            if m["pkts-dropped"] is None:
                continue
            kept = self.samples.setdefault(key, collections.deque(maxlen=HISTORY))
            sample = (now, m["pkts-dropped"], m["bytes-dropped"] or 0)
            # A snapshot between two polls sees the same counters: only a new measurement makes a new point.
            if not kept or kept[-1][1:] != sample[1:] or now - kept[-1][0] >= self.poll_interval:
                kept.append(sample)
            rates = [
                ((p1 - p0) / (t1 - t0), 8 * (b1 - b0) / (t1 - t0))
                for (t0, p0, b0), (t1, p1, b1) in zip(kept, list(kept)[1:], strict=False)
                if t1 > t0
            ]
            if rates:
                m["pkt-rate"], m["bit-rate"] = (max(0.0, r) for r in rates[-1])
                m["chart"] = [round(max(0.0, r[0]), 1) for r in rates]
        for key in self.samples.keys() - listed:  # ended, or no longer among the rows shown
            del self.samples[key]


def rate_text(pkt_rate: float | None, bit_rate: float | None) -> str:
    if pkt_rate is None or bit_rate is None:
        return "-"
    return f"{_si(pkt_rate)}pkt/s, {_si(bit_rate)}bit/s"


def _si(value: float) -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.1f} {prefix}"
    return f"{value:.0f} "
