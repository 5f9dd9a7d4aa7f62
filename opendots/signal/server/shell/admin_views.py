"""What the admin socket's `client-details` answers: per client, the session configuration in force (RFC 9132
§4.5), the data channel's aliases and ACLs (RFC 8783, RFC 9133) and the telemetry it set up and reported (RFC
9244 §7, §8.2). Read only; bounded by the clients configured and by what each may hold (the data channel's and the
telemetry policy's limits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opendots.signal.server.core.sessionconfig import ParameterSet

if TYPE_CHECKING:
    from opendots.signal.server.shell.run import RunningSignalServer

NETWORK_KEYS = ("destination-ipv4-network", "destination-ipv6-network", "source-ipv4-network", "source-ipv6-network")


def client_details(server: RunningSignalServer, now: float, wanted: str | None = None, limit: int = 100) -> list[Any]:
    core = server.service.core
    clients = [c for c in core.settings.clients if wanted is None or wanted in (c.name, c.cuid)][:limit]
    store = server.acls.source.store if server.acls is not None else None  # type: ignore[attr-defined]
    details = []
    for client in clients:
        config = core.session_config(client.name)
        owner = server.certificate_cuid.get(client.name, client.cuid)  # the data channel's entries live there
        aliases = store.list_aliases(owner, now) if store is not None else []
        acls = store.list_acls(owner, now) if store is not None else []
        setups = core.telemetry_setups
        reports = core.telemetry_reports
        details.append(
            {
                "name": client.name,
                "cuid": client.cuid,
                "session-config": {
                    "sid": config.sid,
                    "idle": parameters_json(config.idle),
                    "mitigating": parameters_json(config.mitigating),
                },
                "aliases": [{"name": a.name, "targets": alias_targets(a.body)} for a in aliases],
                "acls": [
                    {
                        "name": a.name,
                        "activation-type": a.activation_type or a.body.get("activation-type", "-"),
                        "aces": [ace_text(ace) for ace in a.body.get("aces", {}).get("ace", [])],
                    }
                    for a in acls
                ],
                "telemetry-setups": [
                    {**r.setup, "tsid": r.tsid, "cuid": r.cuid}
                    for c in setups.cuids(client.name)
                    for r in setups.of(client.name, c)
                ],
                "telemetry-reports": [
                    {**e, "tmid": r.tmid, "cuid": r.cuid}
                    for c in reports.cuids(client.name)
                    for r in reports.of(client.name, c)
                    for e in r.entries
                ],
            }
        )
    return details


def parameters_json(parameters: ParameterSet) -> dict[str, Any]:
    return {
        "heartbeat-interval": parameters.heartbeat_interval,
        "missing-hb-allowed": parameters.missing_hb_allowed,
        "max-retransmit": parameters.max_retransmit,
        "ack-timeout": str(parameters.ack_timeout),
        "ack-random-factor": str(parameters.ack_random_factor),
        "probing-rate": parameters.probing_rate,
    }


def alias_targets(body: dict[str, Any]) -> str:
    parts = [*body.get("target-prefix", []), *body.get("target-fqdn", []), *body.get("target-uri", [])]
    for ports in body.get("target-port-range", []):
        lower, upper = ports.get("lower-port"), ports.get("upper-port", ports.get("lower-port"))
        parts.append(f"port {lower}" if lower == upper else f"ports {lower}-{upper}")
    parts += [f"protocol {p}" for p in body.get("target-protocol", [])]
    return " ".join(str(p) for p in parts) or "-"


def ace_text(ace: dict[str, Any]) -> str:
    """An ACE as an operator reads it: its name, what it matches, what it does."""
    matches = ace.get("matches", {})
    words = [str(ace.get("name", "?")) + ":"]
    for family in ("ipv4", "ipv6"):
        fields = matches.get(family, {})
        for key in NETWORK_KEYS:
            if key in fields:
                words.append(f"{key.split('-')[0][:3]} {fields[key]}")
        if "protocol" in fields:
            words.append(f"protocol {fields['protocol']}")
    for transport in ("tcp", "udp"):
        if transport in matches:
            words.append(transport)
    actions = ace.get("actions", {})
    words.append(str(actions.get("forwarding", "?")).split(":")[-1])
    if "rate-limit" in actions:
        words.append(f"rate-limit {actions['rate-limit']}")
    return " ".join(words)
