"""`opendots gateway`: run a DOTS gateway (`run`), or ask a running one what it relays (`status`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opendots import eventloop
from opendots.cli.common import OpenDotsGroup, config_option, group_config_option, run_service
from opendots.cli.server import event_loop_option, log_format_option

DEFAULT = "gw.toml"


@click.group(cls=OpenDotsGroup, invoke_without_command=True)
@group_config_option(DEFAULT)
@event_loop_option
@log_format_option
@click.pass_context
def gateway(context: click.Context, event_loop: eventloop.EventLoopChoice) -> None:
    """A DOTS gateway (RFC 8811 §2.2.3): `opendots gateway --config gw.toml` runs it."""
    if context.invoked_subcommand is None:
        path = (context.find_object(dict) or {}).get("config") or Path(DEFAULT)
        _run(Path(path), event_loop)


def _run(path: Path, event_loop: eventloop.EventLoopChoice) -> None:
    from opendots.gateway.config import GatewayConfig
    from opendots.gateway.shell import run_gateway

    run_service(run_gateway(GatewayConfig.load(path)), event_loop)


@gateway.command("run")
@config_option(DEFAULT)
@event_loop_option
@log_format_option
def run_command(config: Path, event_loop: eventloop.EventLoopChoice) -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    _run(config, event_loop)


@gateway.command("status")
@config_option(DEFAULT)
@click.option("--json", "as_json", is_flag=True, help="The admin socket's answer as JSON.")
def status_command(config: Path, as_json: bool) -> None:
    """Each downstream mitigation beside its upstream counterpart, the upstream session, the counters."""
    from opendots.gateway.config import GatewayConfig
    from opendots.signal.client.shell.control import ControlClient

    loaded = GatewayConfig.load(config)
    socket = loaded.admin_socket or loaded.upstream.control_socket
    with ControlClient(socket, timeout=10.0) as control:
        answer = control.call("gateway")
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    upstream = answer["upstream"]
    click.echo(f"gateway {answer['identity']} ({answer['kind']}): {upstream['activity']}")
    click.echo(f"observers relayed: {answer['observers']}; counters: {answer['counters']}")
    for link in answer["links"]:
        left = "indefinite" if link["lifetime-left"] is None else f"{link['lifetime-left']} s left"
        click.echo(f"  {link['client']} {link['downstream']} -> {link['upstream']}  {link['status'] or '-'}  {left}")
    names = answer.get("data-names")
    if names:
        # Client-domain data channel: each client's alias and ACL names upstream are its prefix + its own name.
        click.echo("data channel name prefixes upstream:")
        for entry in names:
            registered = "registered" if entry["registered"] else "not registered"
            client = entry["client"] or "(no longer served)"
            click.echo(f"  {client} cuid={entry['cuid']}  {entry['prefix']}  {registered}")
