"""The operator's control socket of a running server: what it holds, redirection (RFC 9132 §4.6), manual status.

The framing is the client agent's (opendots/signal/client/shell/control.py): newline-delimited JSON over a Unix socket
created with mode 0600, one response line per request line. `opendots admin` is its command-line face.

Operations:

  ping                                        -> {"pong": true}
  status                                      -> {"sessions": {"dtls": n, "tls": n}, "redirection": {...} | null,
                                                  "clients": [{"name", "cuid", "mitigations", "enforcing",
                                                               "connected", "last-traffic"}],
                                                  "event-loop": "uvloop" | "asyncio", "enforced": bool,
                                                  "actuator-held": n | null (mitigations the actuators hold),
                                                  "drives-mitigators": bool, "cluster": {"node", "lease",
                                                  "leases-taken", "seen"} | null}
                                                  enforced false: only the logging mitigator runs, nothing is
                                                  dropped ("enforcing" then counts what would be); on PostgreSQL,
                                                  only the node holding the lease drives the mitigators
  mitigations  {"client"?: name or cuid, "limit"?: n}
                                              -> {"total": n, "mitigations": [{"client", "cuid", "mid", "status",
                                                  "lifetime", "cdid"? (relayed by a trusted gateway),
                                                  "target-prefix", "target-port-range", "target-protocol",
                                                  "target-fqdn", "target-uri", "alias-name",
                                                  "pkts-dropped", "bytes-dropped",
                                                  "top-talkers"?: {"phase": "narrow" | "wide", "sources",
                                                                   "since", "reason", "summary"}}]}
                                                  top-talkers: only for a mitigation under the
                                                  [mitigation] top-talker policy
                                                  "nat-external"?, "nat-internal-hosts"?: a NAT CPE's lookup
                                                  (RFC 9066 §5.3.2)
  client-details {"client"?: name or cuid}   -> {"clients": [{"name", "cuid", "session-config": {"sid", "idle",
                                                  "mitigating"}, "aliases": [{"name", "targets"}], "acls": [{"name",
                                                  "activation-type", "aces": [text]}], "telemetry-setups": [...],
                                                  "telemetry-reports": [...]}]}   (the first 100 clients)
  redirect     {"alt-server": fqdn, "records"?: [ip, ...], "ttl"?: seconds}
                                              -> {"redirection": {...}}   every request and observer gets 5.03
  redirect-clear                              -> {"redirection": null}
  report-status {"cuid" or "client" (name or cuid): str, "mid": int, "status": "attack-mitigation-in-progress" |
                 "attack-successfully-mitigated" | "attack-stopped" | "attack-exceeded-capability"}
                                              -> {"status": label}        the owner's observers are notified
  terminate    {"cuid" or "client": str, "mid": int}
                                              -> {"status": "attack-mitigation-terminated", "before": label}
                                                 RFC 9132 §4.4.2 status 6: deleted, withdrawn from the actuator,
                                                 the owner's observers notified
  reload                                      -> {"clients": {"added", "removed", "changed": [names]}}
                                                 server.toml's [[clients]] read again (as SIGHUP does)

Failures: {"ok": false, "error", "code"} with "4.00" (bad arguments) or "4.04" (no such mitigation).
"""

from __future__ import annotations

import heapq
import ipaddress
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opendots.config import ConfigError, ServerConfig
from opendots.domain.defaults import UINT32_MAX
from opendots.eventloop import running_loop_name
from opendots.mitigate.router import enforces, explain, held_keys
from opendots.mitigate.top_talkers import top_talker_status
from opendots.signal.client.shell.control import ControlError, ControlServer
from opendots.signal.server.core import Redirection, Status
from opendots.signal.server.shell.admin_views import client_details

if TYPE_CHECKING:
    from opendots.signal.server.shell.run import RunningSignalServer

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL

CHANGES = frozenset({"redirect", "redirect-clear", "report-status", "terminate", "reload"})
"""The operations that change the server's state: each is written to the audit log."""

OPERATOR_STATUSES = (
    Status.ATTACK_MITIGATION_IN_PROGRESS,
    Status.ATTACK_SUCCESSFULLY_MITIGATED,
    Status.ATTACK_STOPPED,
    Status.ATTACK_EXCEEDED_CAPABILITY,
)


class AdminHandler:
    def __init__(self, server: RunningSignalServer, config_path: Path | None = None, clock: Any = time.time) -> None:
        self.server = server
        self.config_path = config_path
        """The server.toml `reload` reads again (None: reload is refused)."""
        self.clock = clock

    async def __call__(self, op: str, args: dict[str, Any], who: str = "operator (admin socket)") -> dict[str, Any]:
        operation = {
            "ping": self._ping,
            "status": self._status,
            "mitigations": self._mitigations,
            "client-details": self._client_details,
            "redirect": self._redirect,
            "redirect-clear": self._redirect_clear,
            "report-status": self._report_status,
            "terminate": self._terminate,
            "reload": self._reload,
        }.get(op)
        if operation is None:
            raise ControlError(f"unknown operation {op!r}")
        if op in CHANGES:  # audited: who is the one the caller vouches for (the console names its operator)
            return operation(args, who)
        return operation(args)

    def _ping(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    def _status(self, _args: dict[str, Any]) -> dict[str, Any]:
        core = self.server.service.core
        held: dict[str, list[int]] = {}
        for mitigation in core.mitigations():
            counts = held.setdefault(mitigation.record.client, [0, 0])
            counts[0] += 1
            counts[1] += mitigation.enforcing
        clients = []
        for client in core.settings.clients:
            liveness = core.liveness(client.name)
            count, enforcing = held.get(client.name, [0, 0])
            clients.append(
                {
                    "name": client.name,
                    "cuid": client.cuid,
                    "mitigations": count,
                    "enforcing": enforcing,
                    "connected": client.name in self.server.resource.remotes,
                    "last-traffic": liveness.last_traffic if liveness is not None else None,
                    "lost": liveness.lost if liveness is not None else None,
                }
            )
        endpoint = self.server.endpoint
        stats = endpoint.stats()
        return {
            "sessions": {"dtls": stats.established if stats else 0, "tls": endpoint.tls_connection_count()},
            "redirection": _redirection_json(core.redirection),
            "clients": clients,
            "event-loop": running_loop_name(),
            "enforced": enforces(self.server.service.mitigator),
            "actuator-held": _count(held_keys(self.server.service.mitigator)),
            "drives-mitigators": self.server.service.drives_mitigator,
            "cluster": self.server.cluster.describe() if self.server.cluster is not None else None,
        }

    def _mitigations(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("client")
        limit = args.get("limit")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ControlError("'limit' must be a positive integer")
        now = self.clock()
        held = [
            m
            for m in self.server.service.core.mitigations()
            if wanted is None or wanted in (m.record.client, m.record.cuid)
        ]
        order = lambda m: (m.record.client, m.key)  # noqa: E731
        # A page that shows a few hundred rows must not pay for rendering every one of tens of thousands.
        shown = sorted(held, key=order) if limit is None else heapq.nsmallest(limit, held, key=order)
        entries = []
        mitigator = self.server.service.mitigator
        for mitigation in shown:
            record = mitigation.record
            policy = top_talker_status(mitigator, mitigation.mitigator_key)
            entries.append(
                {
                    "client": record.client,
                    "cuid": record.cuid,
                    "mid": record.mid,
                    **({"cdid": record.cdid} if record.cdid else {}),  # relayed by a trusted gateway (§4.4.1.2)
                    "status": mitigation.status.label,
                    "lifetime": mitigation.remaining_lifetime(now),
                    **mitigation.targets.to_yang(),
                    "pkts-dropped": mitigation.counters.pkts_dropped,
                    "bytes-dropped": mitigation.counters.bytes_dropped,
                    **({"top-talkers": policy.to_json()} if policy is not None else {}),
                    **(explain(mitigator, mitigation.mitigator_key) or {}),
                }
            )
        return {"mitigations": entries, "total": len(held)}

    def _client_details(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("client")
        if wanted is not None and not isinstance(wanted, str):
            raise ControlError("'client' must be a client's name or cuid")
        return {"clients": client_details(self.server, self.clock(), wanted)}

    def _redirect(self, args: dict[str, Any], who: str) -> dict[str, Any]:
        alt_server = args.get("alt-server")
        if not isinstance(alt_server, str) or not alt_server:
            raise ControlError("'alt-server' (the alternate server's name) is required")
        records = args.get("records", [])
        if not isinstance(records, list):
            raise ControlError("'records' must be a list of IP addresses")
        try:
            addresses = tuple(str(ipaddress.ip_address(record)) for record in records)
        except (TypeError, ValueError) as problem:
            raise ControlError(f"'records': {problem}") from None
        ttl = args.get("ttl", UINT32_MAX)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= UINT32_MAX:
            raise ControlError("'ttl' must be a number of seconds (0 to 2^32-1)")
        redirection = Redirection(alt_server, addresses, ttl)
        before = _redirection_json(self.server.service.core.redirection)
        self.server.service.set_redirection(redirection)
        after = _redirection_json(redirection)
        self.server.audit.record(who, "redirection set", "every client (RFC 9132 §4.6)", before, after)
        return {"redirection": after}

    def _redirect_clear(self, _args: dict[str, Any], who: str) -> dict[str, Any]:
        before = _redirection_json(self.server.service.core.redirection)
        self.server.service.set_redirection(None)
        self.server.audit.record(who, "redirection cleared", "every client (RFC 9132 §4.6)", before, None)
        return {"redirection": None}

    def _named_mitigation(self, args: dict[str, Any]) -> Any:
        """The mitigation ARGS name by "cuid" or "client" (a client's name or CUID) and "mid"; ControlError else."""
        cuid, mid = args.get("cuid", args.get("client")), args.get("mid")
        if not isinstance(cuid, str) or not isinstance(mid, int) or isinstance(mid, bool):
            raise ControlError("'cuid' or 'client' (string) and 'mid' (integer) name the mitigation")
        core = self.server.service.core
        client = next((c for c in core.settings.clients if c.name == cuid), None)
        if client is not None:  # a client's name: the operator should not have to look its CUID up
            owned = (m for m in core.mitigations() if m.record.client == cuid)
            cuid = next((m.record.cuid for m in owned if m.record.mid == mid), client.cuid)
        mitigation = next((m for m in core.mitigations() if m.key == (cuid, mid)), None)
        if mitigation is None:
            raise ControlError(f"no mitigation cuid={cuid} mid={mid}", "4.04")
        return mitigation

    def _report_status(self, args: dict[str, Any], who: str) -> dict[str, Any]:
        label = args.get("status")
        try:
            status = Status.from_label(label)
        except ValueError:
            status = None
        if status not in OPERATOR_STATUSES:
            labels = ", ".join(s.label for s in OPERATOR_STATUSES)
            raise ControlError(f"'status' must be one of {labels}")
        mitigation = self._named_mitigation(args)
        if not mitigation.enforcing or mitigation.terminating:
            cuid, mid = mitigation.key
            raise ControlError(f"mitigation cuid={cuid} mid={mid} is {mitigation.status.label}: not active")
        subject = mitigation.mitigator_key
        self.server.audit.record(
            who, "mitigation status", subject, mitigation.status.label, status.label, client=mitigation.record.client
        )
        self.server.service.report_status(subject, status)
        return {"status": status.label}

    def _terminate(self, args: dict[str, Any], who: str) -> dict[str, Any]:
        """RFC 9132 §4.4.2 status 6: the server ends the mitigation; the owner's observers see it end."""
        mitigation = self._named_mitigation(args)
        before, after = mitigation.status.label, Status.ATTACK_MITIGATION_TERMINATED.label
        subject = mitigation.mitigator_key
        self.server.audit.record(who, "mitigation terminated", subject, before, after, client=mitigation.record.client)
        self.server.service.terminate(subject)
        return {"status": after, "before": before}

    def _reload(self, _args: dict[str, Any], who: str) -> dict[str, Any]:
        if self.config_path is None:
            raise ControlError("this server was not started from a configuration file: nothing to reload")
        try:
            changes = self.server.reload_clients(ServerConfig.load(self.config_path), who)
        except ConfigError as problem:
            raise ControlError(f"{self.config_path}: {problem}; the clients in force are unchanged") from None
        return {"clients": changes}


def _count(keys: set[str] | None) -> int | None:
    return None if keys is None else len(keys)


def _redirection_json(redirection: Redirection | None) -> dict[str, Any] | None:
    if redirection is None:
        return None
    return {"alt-server": redirection.alt_server, "records": list(redirection.records), "ttl": redirection.ttl}


async def start_admin_socket(server: RunningSignalServer, path: Path, config_path: Path | None = None) -> ControlServer:
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise ControlError(f"admin_socket {path} is longer than a Unix socket path may be ({MAX_SOCKET_PATH} bytes)")
    control = ControlServer(path, AdminHandler(server, config_path))
    await control.start()
    return control
