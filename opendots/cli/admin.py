"""`opendots admin`: the operator's view of a running `opendots server` through its control socket."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from opendots.cli.common import OpenDotsGroup, group_config_option
from opendots.cli.common import config_option as common_config_option
from opendots.cli.render import seconds, table
from opendots.config import ServerConfig
from opendots.errors import ConfigError, UnavailableError


def _call(config: Path, op: str, **args: Any) -> dict[str, Any]:
    from opendots.signal.client.shell.control import ControlClient

    loaded = ServerConfig.load(config)
    if loaded.admin_socket is None:
        raise ConfigError(f"{config} sets no [server] admin_socket: the server has no operator socket")
    try:
        with ControlClient(loaded.admin_socket, timeout=10.0) as control:
            return control.call(op, **args)
    except (ConnectionError, FileNotFoundError):
        raise UnavailableError(f"no server answers on {loaded.admin_socket}") from None


def _ttl(ttl: int) -> str:
    return "no TTL (Max-Age 2^32-1: clients keep the alternate)" if ttl >= 2**32 - 1 else f"TTL {ttl} s"


config_option = common_config_option("server.toml")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")


@click.group(cls=OpenDotsGroup)
@group_config_option("server.toml")
def admin() -> None:
    """Operate a running DOTS server: its clients, mitigations and redirection ([server] admin_socket)."""


@admin.command()
@config_option
@json_option
def status(config: Path, as_json: bool) -> None:
    """Sessions, clients (connected, mitigations held and enforced) and redirection."""
    answer = _call(config, "status")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    sessions = answer["sessions"]
    click.echo(f"sessions: {sessions['dtls']} DTLS, {sessions['tls']} TLS; event loop: {answer['event-loop']}")
    redirection = answer["redirection"]
    if redirection is not None:
        records = ", ".join(redirection["records"]) or "-"
        click.echo(f"redirecting to {redirection['alt-server']} ({records}), {_ttl(redirection['ttl'])}")
    enforced = answer.get("enforced", True)
    if not enforced:
        click.echo("not enforced: only the logging mitigator runs, no traffic is dropped ([[mitigators]])")
    cluster = answer.get("cluster")
    if cluster is not None:  # several nodes on one PostgreSQL database: one drives the mitigators
        role = "holds the mitigator lease" if cluster["lease"] else "standby: another node drives the mitigators"
        if cluster.get("lease-state") == "grace":  # it took the lock; the previous holder may still be fencing
            role = "took the mitigator lease: drives once the previous holder's fence has passed"
        click.echo(f"cluster node {cluster['node']}: {role}")
    rows = []
    for client in answer["clients"]:
        seen = client["last-traffic"]
        ago = f"{time.time() - seen:.0f} s ago" if seen else "never"
        rows.append(
            [
                client["name"],
                "yes" if client["connected"] else "no",
                client["mitigations"],
                client["enforcing"] if enforced else "not enforced",
                ago + (" (lost)" if client["lost"] else ""),
            ]
        )
    click.echo(table(rows, ["CLIENT", "CONNECTED", "HELD", "ENFORCED", "LAST TRAFFIC"]))


@admin.command()
@config_option
@json_option
@click.option("--client", "client_name", help="Only this client's mitigations (its name or its CUID).")
def mitigations(config: Path, as_json: bool, client_name: str | None) -> None:
    """Every mitigation the server holds, with its status, targets, remaining lifetime and counters."""
    answer = _call(config, "mitigations", **({"client": client_name} if client_name else {}))
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    rows = []
    for entry in answer["mitigations"]:
        targets = ", ".join(
            [*entry.get("target-prefix", []), *entry.get("target-fqdn", []), *entry.get("target-uri", [])]
        )
        if "nat-external" in entry:  # a NAT CPE's lookup (RFC 9066 §5.3.2): the public source, the hosts found
            hosts = ", ".join(entry["nat-internal-hosts"]) or "no internal host found yet"
            targets += f" from {', '.join(entry['nat-external'])} = {hosts}"
        packets = "-" if entry["pkts-dropped"] is None else entry["pkts-dropped"]
        rows.append([entry["client"], entry["mid"], entry["status"], seconds(entry["lifetime"]), packets, targets])
    click.echo(table(rows, ["CLIENT", "MID", "STATUS", "LIFETIME", "PACKETS", "TARGETS"]))
    for entry in answer["mitigations"]:
        if "top-talkers" in entry:  # [mitigation] top-talker policy: what the actuator did
            click.echo(f"{entry['client']} mid {entry['mid']}: {entry['top-talkers']['summary']}")


@admin.command()
@config_option
@json_option
@click.option("--client", "client_name", help="Only this client (its name or its CUID).")
def clients(config: Path, as_json: bool, client_name: str | None) -> None:
    """Each client's session configuration, data-channel aliases and ACLs, telemetry setups and reports."""
    answer = _call(config, "client-details", **({"client": client_name} if client_name else {}))
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    rows = []
    for client in answer["clients"]:
        idle, mitigating = client["session-config"]["idle"], client["session-config"]["mitigating"]
        heartbeats = f"{idle['heartbeat-interval']} s / {mitigating['heartbeat-interval']} s"
        counts = [len(client[k]) for k in ("aliases", "acls", "telemetry-setups", "telemetry-reports")]
        rows.append([client["name"], client["cuid"], heartbeats, *counts])
    click.echo(table(rows, ["CLIENT", "CUID", "HEARTBEAT (IDLE/MITIGATING)", "ALIASES", "ACLS", "SETUPS", "REPORTS"]))


@admin.command()
@config_option
@click.option("--to", "alt_server", help="Name of the alternate DOTS server (alt-server).")
@click.option("--record", "records", multiple=True, help="An address of it (alt-server-record; repeatable).")
@click.option(
    "--ttl",
    type=int,
    help="Seconds a client keeps the alternate before returning here (Max-Age; default: no limit). The server "
    "redirects every request until --clear.",
)
@click.option("--clear", is_flag=True, help="Stop redirecting.")
def redirect(config: Path, alt_server: str | None, records: tuple[str, ...], ttl: int | None, clear: bool) -> None:
    """Send every client to an alternate server (RFC 9132 §4.6: 5.03 to requests and observers), or stop."""
    if clear:
        _call(config, "redirect-clear")
        click.echo("redirection cleared")
        return
    if not alt_server:
        raise click.UsageError("give --to NAME (and --record ADDRESS) or --clear")
    args: dict[str, Any] = {"alt-server": alt_server, "records": list(records)}
    if ttl is not None:
        args["ttl"] = ttl
    answer = _call(config, "redirect", **args)["redirection"]
    click.echo(f"redirecting to {answer['alt-server']} ({', '.join(answer['records']) or '-'}), {_ttl(answer['ttl'])}")
    # RFC 9132 §4.6: the TTL is how long clients cache the alternate, not how long this server redirects.
    click.echo("clients return here when the TTL ends and are redirected again until `opendots admin redirect --clear`")


@admin.command("report-status")
@config_option
@click.option("--client", "--cuid", "client", required=True, help="The owner: a client's name or its CUID.")
@click.option("--mid", type=int, required=True)
@click.option(
    "--status",
    "label",
    required=True,
    type=click.Choice(
        [
            "attack-mitigation-in-progress",
            "attack-successfully-mitigated",
            "attack-stopped",
            "attack-exceeded-capability",
        ]
    ),
)
def report_status(config: Path, client: str, mid: int, label: str) -> None:
    """Set a mitigation's status by hand (e.g. mitigated by equipment the server does not drive); its observers
    are notified."""
    _call(config, "report-status", client=client, mid=mid, status=label)
    click.echo(f"{client} mid={mid}: {label}")


@admin.command()
@config_option
@click.option("--client", "--cuid", "client", required=True, help="The owner: a client's name or its CUID.")
@click.option("--mid", type=int, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def terminate(config: Path, client: str, mid: int, yes: bool) -> None:
    """End a mitigation as the server (RFC 9132 status 6, attack-mitigation-terminated): it is withdrawn from the
    mitigators at once and its owner's observers are told."""
    if not yes:
        click.confirm(f"Terminate mitigation {client} mid={mid}? Its traffic is no longer mitigated", abort=True)
    answer = _call(config, "terminate", client=client, mid=mid)
    click.echo(f"{client} mid={mid}: {answer['before']} -> {answer['status']}")


@admin.command()
@config_option
def reload(config: Path) -> None:
    """Make the running server read server.toml's [[clients]] again (as SIGHUP does); sessions stay up."""
    changes = _call(config, "reload")["clients"]
    for kind in ("added", "removed", "changed"):
        click.echo(f"{kind}: {', '.join(changes[kind]) or '-'}")
