"""What the console shows, read through the admin socket's handler (the same state `opendots admin` reads), plus
what only a page needs: each client's session transport and address and heartbeat health, and which actuator
enforces each mitigation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opendots.mitigate.router import MitigatorRouter, enforces

if TYPE_CHECKING:
    from opendots.signal.server.shell.admin import AdminHandler

TARGET_KEYS = ("target-prefix", "target-port-range", "target-protocol", "target-fqdn", "target-uri", "alias-name")
TRANSPORTS = {"coaps": "DTLS", "coaps+tcp": "TLS"}
ROWS = 300
"""Mitigations listed on the page (the first by client and mid; the page says how many there are in all): a
snapshot is built on the event loop, so its cost must not grow with tens of thousands of mitigations."""


async def snapshot(admin: AdminHandler, now: float) -> dict[str, Any]:
    """Everything the page shows, as JSON: rendered by the server for the first load, then sent as events."""
    status = await admin("status", {})
    listed = await admin("mitigations", {"limit": ROWS})
    server = admin.server
    enforced = status["enforced"]
    return {
        "now": now,
        "enforced": enforced,
        "sessions": status["sessions"],
        "redirection": status["redirection"],
        "clients": [_client(server, entry, now) for entry in status["clients"]],
        "mitigations": [_mitigation(server.service.mitigator, entry, enforced) for entry in listed["mitigations"]],
        "mitigations-total": listed["total"],
    }


def _client(server: Any, entry: dict[str, Any], now: float) -> dict[str, Any]:
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
