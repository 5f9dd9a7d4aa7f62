"""`opendots data`: the DOTS data channel (RFC 8783) from the command line, configured by client.toml."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import click

from opendots.cli.common import ConfiguredCommand, OpenDotsGroup
from opendots.config import ClientConfig
from opendots.data.client import DataChannelClient
from opendots.errors import UnavailableError
from opendots.model.data_channel import MODULE

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
ACTIVATION_TYPES = ("activate-when-mitigating", "immediate", "deactivate")


def _run(context: click.Context, action: Callable[[DataChannelClient], Awaitable[Any]]) -> None:
    config = ClientConfig.load(context.obj["config"])

    async def main() -> Any:
        async with DataChannelClient.from_config(config) as client:
            return await action(client)

    try:
        result = asyncio.run(main())
    except (OSError, aiohttp.ClientError) as error:  # refused, unreachable, or a failed certificate check
        raise UnavailableError(f"cannot reach the data channel: {error}") from None
    if result is not None:
        click.echo(json.dumps(result, indent=2))


class _DataGroup(OpenDotsGroup):
    command_class = ConfiguredCommand  # -c after the verb too


@click.group(cls=_DataGroup)
@click.option(
    "-c", "--config", type=click.Path(dir_okay=False, path_type=Path), default="client.toml", show_default=True
)
@click.pass_context
def data(context: click.Context, config: Path) -> None:
    """Manage this client's registration, aliases and filtering rules on its DOTS server (RFC 8783)."""
    context.ensure_object(dict)["config"] = config


@data.command()
@click.pass_context
def register(context: click.Context) -> None:
    """Register this client (its CUID comes from its certificate)."""
    _run(context, lambda client: _done(client.register(), "registered"))


@data.command()
@click.pass_context
def unregister(context: click.Context) -> None:
    """De-register; the server deletes this client's aliases and ACLs."""
    _run(context, lambda client: _done(client.unregister(), "unregistered"))


@data.command()
@click.pass_context
def capabilities(context: click.Context) -> None:
    """Show the filtering capabilities of the server (§7.1)."""
    _run(context, lambda client: client.capabilities())


async def _done(reply: Awaitable[Any], message: str) -> None:
    await reply
    click.echo(message)


def _port_range(text: str) -> dict[str, int]:
    lower, _, upper = text.partition("-")
    try:
        result = {"lower-port": int(lower)}
        if upper:
            result["upper-port"] = int(upper)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a port or a port range like 1024-65535") from None
    return result


def _protocol(text: str) -> int:
    if text.lower() in PROTOCOLS:
        return PROTOCOLS[text.lower()]
    if text.isdigit() and 0 <= int(text) <= 255:
        return int(text)
    raise click.BadParameter(f"{text!r} is not tcp, udp, icmp, icmpv6 or a protocol number")


@data.group()
def alias() -> None:
    """Aliases: named sets of targets the signal channel can refer to (§6)."""


@alias.command("add")
@click.argument("name")
@click.option("--prefix", "prefixes", multiple=True, help="Target prefix (repeatable).")
@click.option("--port", "ports", multiple=True, help="Target port or range, e.g. 443 or 8000-8080 (repeatable).")
@click.option("--protocol", "protocols", multiple=True, help="tcp, udp, icmp or a number (repeatable).")
@click.option("--fqdn", "fqdns", multiple=True, help="Target FQDN (repeatable).")
@click.option("--uri", "uris", multiple=True, help="Target URI (repeatable).")
@click.pass_context
def alias_add(context: click.Context, name: str, prefixes, ports, protocols, fqdns, uris) -> None:
    """Create or replace alias NAME."""
    entry: dict[str, Any] = {"name": name}
    for key, values in (("target-prefix", list(prefixes)), ("target-fqdn", list(fqdns)), ("target-uri", list(uris))):
        if values:
            entry[key] = values
    if ports:
        entry["target-port-range"] = [_port_range(port) for port in ports]
    if protocols:
        entry["target-protocol"] = [_protocol(protocol) for protocol in protocols]
    _run(context, lambda client: _done(client.put_alias(entry), f"alias {name} stored"))


@alias.command("list")
@click.argument("name", required=False)
@click.pass_context
def alias_list(context: click.Context, name: str | None) -> None:
    """Show all aliases, or alias NAME."""
    _run(context, lambda client: client.aliases(name))


@alias.command("delete")
@click.argument("name")
@click.pass_context
def alias_delete(context: click.Context, name: str) -> None:
    _run(context, lambda client: _done(client.delete_alias(name), f"alias {name} deleted"))


@data.group()
def acl() -> None:
    """Filtering rules (ACLs, §7)."""


def _acls_from_file(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise click.BadParameter(f"{path}: {error}") from None
    if isinstance(document, dict):
        for key in (f"{MODULE}:acls", "acls"):
            if key in document:
                return document[key].get("acl", [])
        for key in (f"{MODULE}:acl", "acl"):
            if key in document:
                return document[key]
        return [document]
    if isinstance(document, list):
        return document
    raise click.BadParameter(f"{path}: expected an ACL, a list of ACLs or an acls container")


def _acl_from_flags(name: str, options: dict[str, Any]) -> dict[str, Any]:
    family = None
    matches: dict[str, Any] = {}
    for prefix_option, direction in (("destination", "destination"), ("source", "source")):
        value = options[prefix_option]
        if value:
            family = family or (6 if ":" in value else 4)
            matches.setdefault(f"ipv{family}", {})[f"{direction}-ipv{family}-network"] = value
    if options["fragments"]:
        family = family or 4
        matches.setdefault(f"ipv{family}", {})["fragment"] = {"operator": "match", "type": "isf"}
    protocol = options["protocol"]
    if protocol:
        layer = protocol.lower().replace("icmpv6", "icmp")
        if layer not in ("tcp", "udp", "icmp"):
            raise click.BadParameter("--protocol must be tcp, udp or icmp here; use --file for others")
        fields: dict[str, Any] = {}
        for option, key in (("dst_port", "destination"), ("src_port", "source")):
            if options[option]:
                port = _port_range(options[option])
                fields[f"{key}-port-range-or-operator"] = (
                    port if "upper-port" in port else {"operator": "eq", "port": port["lower-port"]}
                )
        if options["tcp_flags"] is not None:
            if layer != "tcp":
                raise click.BadParameter("--tcp-flags needs --protocol tcp")
            fields["flags-bitmask"] = {"operator": "match", "bitmask": options["tcp_flags"]}
        matches[layer] = fields
    actions: dict[str, Any] = {"forwarding": f"ietf-access-control-list:{options['action']}"}
    if options["rate_limit"] is not None:
        actions = {"forwarding": "ietf-access-control-list:accept", "rate-limit": f"{options['rate_limit']:.2f}"}
    entry: dict[str, Any] = {
        "name": name,
        "activation-type": options["activation"],
        "aces": {"ace": [{"name": f"{name}-rule", "matches": matches, "actions": actions}]},
    }
    if family:
        entry["type"] = f"ietf-access-control-list:ipv{family}-acl-type"
    return entry


@acl.command("add")
@click.argument("name", required=False)
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="ACL(s) as JSON.")
@click.option("--destination", help="Destination prefix (in your domain).")
@click.option("--source", help="Source prefix.")
@click.option("--protocol", help="tcp, udp or icmp.")
@click.option("--dst-port", help="Destination port or range.")
@click.option("--src-port", help="Source port or range.")
@click.option("--tcp-flags", type=int, help="TCP flags bitmask to match (e.g. 2 for SYN).")
@click.option("--fragments", is_flag=True, help="Match IP fragments.")
@click.option("--action", type=click.Choice(["drop", "accept"]), default="drop", show_default=True)
@click.option("--rate-limit", type=float, help="Accept up to this many bytes/s (implies accept).")
@click.option(
    "--activation", type=click.Choice(ACTIVATION_TYPES), default="activate-when-mitigating", show_default=True
)
@click.option("--insert", type=click.Choice(["first", "last", "before", "after"]))
@click.option("--point", help="With --insert before/after: the ACL name to insert next to.")
@click.pass_context
def acl_add(context: click.Context, name: str | None, file: Path | None, insert, point, **options: Any) -> None:
    """Install ACL NAME from flags, or the ACL(s) of --file (an RFC 8783 body or bare entries)."""
    if file is not None:
        acls = _acls_from_file(file)
    elif name:
        acls = [_acl_from_flags(name, options)]
    else:
        raise click.UsageError("give an ACL NAME with flags, or --file")
    point_path = f"acl={point}" if point else None
    _run(context, lambda client: _done(client.create_acls(acls, insert, point_path), f"{len(acls)} ACL(s) installed"))


@acl.command("list")
@click.argument("name", required=False)
@click.option("--content", type=click.Choice(["all", "config", "nonconfig"]), default="all", show_default=True)
@click.pass_context
def acl_list(context: click.Context, name: str | None, content: str) -> None:
    """Show all ACLs in order, or ACL NAME."""
    _run(context, lambda client: client.acls(name, content))


@acl.command("delete")
@click.argument("name")
@click.pass_context
def acl_delete(context: click.Context, name: str) -> None:
    _run(context, lambda client: _done(client.delete_acl(name), f"ACL {name} deleted"))


@acl.command("activate")
@click.argument("name")
@click.option("--type", "activation", type=click.Choice(ACTIVATION_TYPES), default="immediate", show_default=True)
@click.pass_context
def acl_activate(context: click.Context, name: str, activation: str) -> None:
    """Change the activation type of ACL NAME (immediate, activate-when-mitigating, deactivate)."""
    _run(context, lambda client: _done(client.set_activation(name, activation), f"ACL {name}: {activation}"))
