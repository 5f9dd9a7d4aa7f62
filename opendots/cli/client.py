"""`opendots client`: run the DOTS client agent, or ask for / inspect / withdraw mitigations.

Every verb talks to the running agent through its control socket when one answers, and otherwise opens a
signal channel session of its own for that one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from opendots import eventloop
from opendots.cli.common import OpenDotsGroup, acl_option, config_option, group_config_option
from opendots.cli.render import (
    PARAMETER_UNITS,
    current_and_peak,
    parameter,
    port_ranges,
    print_json,
    protocols,
    seconds,
    table,
)
from opendots.cli.server import PORT, event_loop_option, log_format_option
from opendots.config import ClientConfig
from opendots.errors import RefusedError, UnavailableError

MODULE = "ietf-dots-signal-channel"


_config_path_option = config_option("client.toml", name="config_path")


def _config_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return _config_path_option(_port_flags(function))


def _json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the YANG-JSON body.")(function)


def _port_flags(function: Callable[..., Any]) -> Callable[..., Any]:
    """--signal-port / --data-port: reach a server whose ports moved without editing client.toml."""

    def remember(context: click.Context, parameter: click.Parameter, value: int | None) -> None:
        if value is not None:
            context.ensure_object(dict)[parameter.name] = value

    for flag, name in (("--data-port", "data_port"), ("--signal-port", "signal_port")):
        function = click.option(
            flag, name, type=PORT, expose_value=False, callback=remember, help=f"Overrides {name} of client.toml."
        )(function)
    return function


def _load(config_path: Path) -> tuple[Any, Any]:
    from opendots.signal.client.shell.settings import AgentSettings

    config = ClientConfig.load(config_path)
    overrides = click.get_current_context().find_object(dict) or {}
    for name in ("signal_port", "data_port"):
        if name in overrides:
            setattr(config, name, overrides[name])
    return config, AgentSettings.from_config(config)


def _call(config_path: Path, operation: str, **args: Any) -> tuple[dict[str, Any], bool]:
    """(result, via_agent): through the agent if its socket answers, else one-shot. Failures are OpenDotsErrors,
    reported by opendots.cli.common."""
    from opendots.signal.client.shell.control import ControlClient, agent_answers

    config, settings = _load(config_path)
    try:
        if agent_answers(config.control_socket):
            with ControlClient(config.control_socket) as client:
                if operation != "status" or args.get("refresh"):  # the agent's cache needs no session
                    _note_no_session(client, settings)
                return client.call(operation, **args), True
        if operation == "status":
            args["refresh"] = True
        from opendots.signal.client.shell.oneshot import run_once

        return asyncio.run(run_once(config, settings, operation, args)), False
    except (ConnectionError, OSError) as error:
        raise UnavailableError(str(error)) from None


def _note_no_session(control: Any, settings: Any) -> None:
    """An agent that is still connecting holds a request until its attempt ends (up to twice connect_timeout):
    say so on stderr at once rather than stay silent."""
    info = control.session()
    activity = str(info.get("activity", ""))
    if not info.get("connected") and activity.startswith("connecting"):
        limit = 2 * settings.connect_timeout
        click.echo(f"note: the agent has no session yet ({activity}); waiting for it, at most {limit:.0f} s", err=True)


def _check_code(result: dict[str, Any]) -> None:
    code = str(result.get("code", ""))
    if code and not code.startswith("2."):
        detail = result.get("diagnostic") or (json.dumps(result["body"]) if result.get("body") else "")
        raise RefusedError(f"the DOTS server answered {code} {detail}".rstrip())


@click.group(cls=OpenDotsGroup)
@group_config_option("client.toml")
def client() -> None:
    """DOTS client: the agent and its verbs (RFC 9132 signal channel)."""


@client.command("run")
@_config_option
@event_loop_option
@log_format_option
def run_command(config_path: Path, event_loop: eventloop.EventLoopChoice) -> None:
    """Run the agent: keep the session up and serve the local control socket."""
    from opendots.app import build_client_agent

    config, _ = _load(config_path)
    agent = build_client_agent(config)
    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(agent.run_forever(), event_loop)


@client.command("mitigate")
@_config_option
@click.option("--target-prefix", "prefixes", multiple=True, help="Prefix or address under attack (repeatable).")
@click.option("--target-port", "ports", multiple=True, help="Port N or range N-M (repeatable).")
@click.option("--protocol", "protocols", multiple=True, help="udp, tcp, ... or a number 0-255 (repeatable).")
@click.option("--fqdn", "fqdns", multiple=True, help="Target FQDN (repeatable).")
@click.option("--uri", "uris", multiple=True, help="Target URI (repeatable).")
@click.option("--alias", "aliases", multiple=True, help="Alias name created over the data channel (repeatable).")
@acl_option
@click.option("--lifetime", type=int, default=3600, show_default=True, help="Seconds; -1 for indefinite.")
@click.option("--mid", type=int, help="Mitigation id (default: the next free one); an active mid refreshes it.")
@click.option("--trigger-mitigation/--no-trigger-mitigation", default=True, show_default=True)
@_json_option
def mitigate_command(
    config_path: Path,
    prefixes: tuple[str, ...],
    ports: tuple[str, ...],
    protocols: tuple[str, ...],
    fqdns: tuple[str, ...],
    uris: tuple[str, ...],
    aliases: tuple[str, ...],
    acls: tuple[str, ...],
    lifetime: int,
    mid: int | None,
    trigger_mitigation: bool,
    as_json: bool,
) -> None:
    """Request mitigation (PUT /mitigate)."""
    from opendots.domain import read_user_prefix
    from opendots.signal.client.core.scope import MitigationScope, PortRange, ScopeError, parse_acl

    try:
        read = [read_user_prefix(text) for text in prefixes]
        for _, note in read:
            if note:  # the wire and the server refuse host bits: say what is asked for instead
                click.echo(f"note: {note}", err=True)
        scope = MitigationScope(
            target_prefixes=tuple(prefix for prefix, _ in read),
            target_port_ranges=tuple(PortRange.parse(p) for p in ports),
            target_protocols=protocols,  # type: ignore[arg-type]
            target_fqdns=fqdns,
            target_uris=uris,
            alias_names=aliases,
            lifetime=lifetime,
            trigger_mitigation=trigger_mitigation,
            acl_list=tuple(parse_acl(text) for text in acls),
        )
    except ScopeError as error:
        raise click.BadParameter(str(error)) from None
    args: dict[str, Any] = {"scope": scope.to_yang()}
    if mid is not None:
        args["mid"] = mid
    result, _ = _call(config_path, "mitigate", **args)
    if as_json:
        print_json(result.get("body"))
    _check_code(result)
    if not as_json:
        entries = (result.get("body") or {}).get(f"{MODULE}:mitigation-scope", {}).get("scope", [{}])
        granted = entries[0].get("lifetime", lifetime) if entries else lifetime
        click.echo(f"mid {result['mid']}: {result['code']} (lifetime {seconds(granted)})")
        if result.get("replaced"):
            replaced = ", ".join(str(mid) for mid in result["replaced"])
            click.echo(f"replaces overlapping mid {replaced}: deleted at the server (RFC 9132 §4.4.1)")


SERVER_TRAFFIC = "ietf-dots-telemetry:total-attack-traffic"
ACL_LIST = "ietf-dots-signal-control:acl-list"  # RFC 9133


def _status_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    if "mitigations" in result:  # the agent's cached view: request scope + latest server entry
        return [
            {**record["scope"], **record["last-entry"], "mid": record["mid"], "status": record["status"]}
            for record in result["mitigations"]
        ]
    return list((result.get("body") or {}).get(f"{MODULE}:mitigation-scope", {}).get("scope", []))


@client.command("status")
@_config_option
@click.option("--mid", type=int, help="Only this mitigation.")
@click.option("--refresh", is_flag=True, help="Ask the server now instead of the agent's latest notifications.")
@_json_option
def status_command(config_path: Path, mid: int | None, refresh: bool, as_json: bool) -> None:
    """Show mitigation status (agent cache, or GET /mitigate)."""
    args: dict[str, Any] = {"refresh": refresh}
    if mid is not None:
        args["mid"] = mid
    result, _ = _call(config_path, "status", **args)
    if result.get("code") == "4.04":
        entries: list[dict[str, Any]] = []
    else:
        _check_code(result)
        entries = _status_entries(result)
    if as_json:
        print_json({f"{MODULE}:mitigation-scope": {"scope": entries}})
        return
    if not entries:
        click.echo("no active mitigations")
        return
    rows = []
    # RFC 9244 §9.2: the server's measured attack traffic, when this client asked for server-originated telemetry.
    measured = any(SERVER_TRAFFIC in entry for entry in entries)
    with_acls = any(ACL_LIST in entry for entry in entries)
    for entry in entries:
        targets = entry.get("target-prefix", []) + entry.get("target-fqdn", []) + entry.get("target-uri", [])
        targets += [f"alias:{a}" for a in entry.get("alias-name", [])]
        rows.append(
            [
                str(entry.get("mid", "")),
                str(entry.get("status") or "-"),
                seconds(entry.get("lifetime")),
                " ".join(targets),
                port_ranges(entry.get("target-port-range", [])),
                protocols(entry.get("target-protocol", [])),
                f"{entry.get('pkts-dropped', '-')}/{entry.get('bytes-dropped', '-')}",
                *([current_and_peak(entry.get(SERVER_TRAFFIC, []))] if measured else []),
                *([_acls(entry.get(ACL_LIST, []))] if with_acls else []),
            ]
        )
    headers = ["MID", "STATUS", "LIFETIME", "TARGETS", "PORTS", "PROTO", "DROPPED PKTS/BYTES"]
    headers += ["DROPPED RATE (SERVER)"] if measured else []
    click.echo(table(rows, headers + (["ACLS"] if with_acls else [])))


def _acls(items: list[dict[str, Any]]) -> str:
    """RFC 9133 'acl-list' as NAME=ACTIVATION-TYPE (the server's answers show the activation types in force)."""
    return (
        " ".join(
            f"{i.get('acl-name')}={i['activation-type']}" if "activation-type" in i else str(i.get("acl-name"))
            for i in items
        )
        or "-"
    )


@client.command("session")
@_config_option
@_json_option
def session_command(config_path: Path, as_json: bool) -> None:
    """Show the running agent's session: server, transport, RTT, heartbeat state, parameters in force."""
    from opendots.signal.client.shell.control import ControlClient, agent_answers

    config, _ = _load(config_path)
    if not agent_answers(config.control_socket):
        raise UnavailableError(f"no agent answers on {config.control_socket} (start one with `client run`)")
    with ControlClient(config.control_socket) as control:
        info = control.session()
    if as_json:
        print_json(info)
        return
    rows = [[name, _session_value(name, info[name])] for name in info]
    rows = [row for row in rows if row[0] not in ("config", "parameters")]
    for name, value in (info.get("parameters") or {}).items():  # in their YANG spelling, as `config get` shows them
        rows.append([f"parameter {name.replace('_', '-')}", parameter(name, value)])
    click.echo(table(rows, ["FIELD", "VALUE"]))


def _session_value(name: str, value: Any) -> str:
    if name == "rtt" and isinstance(value, int | float):
        return f"{value * 1000:.1f} ms"
    if name == "redirection" and isinstance(value, dict):
        ttl = "until cleared" if value.get("ttl-left") is None else f"{value['ttl-left']} s left of its TTL"
        return f"to {value.get('alt-server')} ({ttl})"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value) if isinstance(value, dict) else str(value)


@client.command("withdraw")
@_config_option
@click.option("--mid", type=int, required=True)
def withdraw_command(config_path: Path, mid: int) -> None:
    """Withdraw a mitigation (DELETE /mitigate)."""
    result, _ = _call(config_path, "withdraw", mid=mid)
    _check_code(result)
    # §4.4.4: 2.02 Deleted answers a known mid and an unknown one alike; only the outcome is certain.
    click.echo(f"mid {mid}: {result['code']} Deleted: the server holds no active mitigation with this mid now")


@client.command("efficacy")
@_config_option
@click.option("--mid", type=int, required=True)
@click.option(
    "--attack-status",
    type=click.Choice(["under-attack", "attack-successfully-mitigated"]),
    required=True,
)
def efficacy_command(config_path: Path, mid: int, attack_status: str) -> None:
    """Send an efficacy update (PUT with If-Match, RFC 9132 §4.4.3)."""
    result, _ = _call(config_path, "efficacy", mid=mid, **{"attack-status": attack_status})
    _check_code(result)
    click.echo(f"mid {mid}: {result['code']} ({attack_status})")


@client.group("config")
def config_group() -> None:
    """Signal channel session configuration (RFC 9132 §4.5)."""


@config_group.command("get")
@_config_option
@_json_option
def config_get_command(config_path: Path, as_json: bool) -> None:
    """Show acceptable and current session parameters (GET /config)."""
    result, _ = _call(config_path, "config-get")
    if as_json:
        print_json(result.get("body"))
    _check_code(result)
    if as_json:
        return
    config = (result.get("body") or {}).get(f"{MODULE}:signal-config", {})
    rows = []
    for set_name in ("mitigating-config", "idle-config"):
        for member, node in config.get(set_name, {}).items():
            name = member.removeprefix("ietf-dots-robust-trans:")  # RFC 9362's attributes, shown by their names
            current = node.get("current-value", node.get("current-value-decimal", "-"))
            low = node.get("min-value", node.get("min-value-decimal", "-"))
            high = node.get("max-value", node.get("max-value-decimal", "-"))
            rows.append([set_name, name, *(parameter(name, value) for value in (current, low, high))])
    click.echo(table(rows, ["SET", "PARAMETER", "CURRENT", "MIN", "MAX"]))


_PARAMETER_OPTIONS = (
    ("--heartbeat-interval", "heartbeat_interval", int),
    ("--missing-hb-allowed", "missing_hb_allowed", int),
    ("--probing-rate", "probing_rate", int),
    ("--max-retransmit", "max_retransmit", int),
    ("--ack-timeout", "ack_timeout", str),
    ("--ack-random-factor", "ack_random_factor", str),
    # RFC 9362 robust-transmission attributes (the Q-Block parameters of RFC 9177 §7.2)
    ("--max-payloads", "max_payloads", int),
    ("--non-max-retransmit", "non_max_retransmit", int),
    ("--non-timeout", "non_timeout", str),
    ("--non-receive-timeout", "non_receive_timeout", str),
    ("--non-probing-wait", "non_probing_wait", str),
    ("--non-partial-timeout", "non_partial_timeout", str),
)


_UNIT_HELP = {"s": "Seconds (2 fraction digits at most).", "bytes/s": "Bytes per second."}


def _parameter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for flag, name, kind in reversed(_PARAMETER_OPTIONS):
        unit = PARAMETER_UNITS.get(name.replace("_", "-"))
        function = click.option(flag, name, type=kind, default=None, help=_UNIT_HELP.get(unit or ""))(function)
    return function


@config_group.command("set")
@_config_option
@click.option(
    "--set",
    "which",
    type=click.Choice(["both", "idle", "mitigating"]),
    default="both",
    show_default=True,
    help="Which configuration set the values go to.",
)
@_parameter_options
def config_set_command(config_path: Path, which: str, **values: Any) -> None:
    """Convey session parameters (PUT /config/sid=N)."""
    chosen = {name: value for name, value in values.items() if value is not None}
    if not chosen:
        raise click.UsageError("give at least one parameter, e.g. --heartbeat-interval 60")
    args = {
        "idle": chosen if which in ("both", "idle") else None,
        "mitigating": chosen if which in ("both", "mitigating") else None,
    }
    result, _ = _call(config_path, "config-set", **args)
    _check_code(result)
    click.echo(f"sid {result['sid']}: {result['code']}")


@config_group.command("delete")
@_config_option
def config_delete_command(config_path: Path) -> None:
    """Return to the server's default session parameters (DELETE /config)."""
    result, _ = _call(config_path, "config-delete")
    _check_code(result)
    click.echo(f"{result['code']} configuration deleted")


@client.command("discover")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the candidates and notes as JSON.")
def discover_command(config_path: Path, as_json: bool) -> None:
    """Find DOTS servers as RFC 8973 §4 says (configuration, DHCP, DNS S-NAPTR, DNS-SD) and show where from."""
    from opendots.discovery.discover import ALL_PROTOCOLS, discoverer_for

    config, _ = _load(config_path)
    result = asyncio.run(discoverer_for(config).discover(ALL_PROTOCOLS))
    if as_json:
        print_json({"servers": [server.as_dict() for server in result.servers], "notes": result.notes})
        return
    rows = [
        [
            s.source,
            s.channel,
            s.transport.upper(),
            s.address,
            str(s.port),
            s.peer_name,
            "-" if s.ttl is None else f"{s.ttl:.0f} s",
        ]
        for s in result.servers
    ]
    click.echo(table(rows, ["SOURCE", "CHANNEL", "TRANSPORT", "ADDRESS", "PORT", "VERIFY NAME", "TTL"]))
    for note in result.notes:
        click.echo(f"  {note}")
    if not result.servers:
        raise UnavailableError("no DOTS server found")
