"""`opendots data`: the DOTS data channel (RFC 8783) from the command line, configured by client.toml."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import click

from opendots.app import check_credentials
from opendots.cli import data_output as output
from opendots.cli.common import ConfiguredCommand, OpenDotsGroup
from opendots.cli.render import print_json
from opendots.cli.server import PORT
from opendots.config import ClientConfig
from opendots.data.client import MAPPING, DataChannelClient, Reply, one_line
from opendots.errors import UnavailableError
from opendots.model.data_channel import MODULE

X509_V_ERR_HOSTNAME_MISMATCH = 62  # openssl/x509_vfy.h
ACTIVATION_TYPES = ("activate-when-mitigating", "immediate", "deactivate")


def _run(context: click.Context, action: Callable[[DataChannelClient], Awaitable[Any]]) -> Any:
    """ACTION's result on a client of the configured server; failures are OpenDotsErrors (one line)."""
    config = ClientConfig.load(context.obj["config"])
    if "data_port" in context.obj:
        config.data_port = context.obj["data_port"]
    check_credentials(config.tls)  # a missing or mismatched file is a configuration error, named, not "unreachable"

    async def main() -> Any:
        if config.discovery == "auto" and not config.server_configured:  # no server named: RFC 8973 finds it
            from opendots.data.discovery import discovered_client

            async with discovered_client(config) as found:
                return await action(found)
        async with DataChannelClient.from_config(config) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except aiohttp.ClientConnectorCertificateError as error:
        raise UnavailableError(f"cannot reach the data channel: {_certificate_refused(config, error)}") from None
    except (OSError, aiohttp.ClientError) as error:  # refused, unreachable
        raise UnavailableError(f"cannot reach the data channel: {one_line(str(error))}") from None


def _certificate_refused(config: ClientConfig, error: aiohttp.ClientConnectorCertificateError) -> str:
    """Which check the server's certificate failed and what was expected, as the signal channel says it
    (opendots.pki.verify): the certificate is fetched again, unverified, to be described."""
    from cryptography import x509

    from opendots.pki.verify import explain

    failure = error.certificate_error
    code = getattr(failure, "verify_code", None)
    words = getattr(failure, "verify_message", None) or str(failure)
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # to read it, not to trust it
        context.load_cert_chain(config.tls.cert, config.tls.key)
        with (
            socket.create_connection((error.host, error.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=config.server_name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        der = None
    if der is None or code is None:
        return f"the server certificate failed verification: {words}"
    errno = 0 if code == X509_V_ERR_HOSTNAME_MISMATCH else code  # explain's "only the name check failed"
    certificate = x509.load_der_x509_certificate(der)
    reason = explain(certificate, errno, "server", config.server_name, name_source="server_name in client.toml")
    return f"{reason} ({words})"


def _report(reply: Reply, as_json: bool, lines: list[str], note: str | None = None) -> None:
    """A change's result: the server's status (and Location) as JSON, or sentences saying what it confirmed."""
    if as_json:
        print_json({"status": reply.status, "location": reply.location, "body": reply.body})
        return
    for line in lines:
        click.echo(line)
    if note:
        click.echo(note, err=True)


def _data_port(context: click.Context, _parameter: click.Parameter, value: int | None) -> None:
    if value is not None:
        context.ensure_object(dict)["data_port"] = value


class _DataCommand(ConfiguredCommand):
    """A data verb: -c after the verb too, --data-port (as the client verbs), --json for machine output."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--data-port"], type=PORT, expose_value=False, callback=_data_port, help="Overrides client.toml."
            )
        )
        self.params.append(click.Option(["--json", "as_json"], is_flag=True, help="Print the server's answer as JSON."))


class _DataGroup(OpenDotsGroup):
    command_class = _DataCommand


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
def register(context: click.Context, as_json: bool) -> None:
    """Register this client (its CUID comes from its certificate)."""
    client_id: list[str] = []

    async def action(client: DataChannelClient) -> Reply:
        client_id.append(client.cuid)
        return await client.register()

    reply = _run(context, action)
    _report(reply, as_json, [f"registered (cuid {client_id[0]})"])


@data.command()
@click.pass_context
def unregister(context: click.Context, as_json: bool) -> None:
    """De-register; the server deletes this client's aliases and ACLs."""
    _report(
        _run(context, lambda client: client.unregister()),
        as_json,
        ["unregistered: the server deleted this client's aliases and ACLs"],
    )


@data.command()
@click.pass_context
def capabilities(context: click.Context, as_json: bool) -> None:
    """Show the filtering capabilities of the server (§7.1)."""
    answer = _run(context, lambda client: client.capabilities())
    click.echo(json.dumps(answer, indent=2) if as_json else output.capability_rows(answer))


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
    """tcp, udp, ... or a number 0-255: the names the client verbs take and the tables print."""
    from opendots.signal.client.core.scope import ScopeError, parse_protocol

    try:
        return parse_protocol(text)
    except ScopeError as error:
        raise click.BadParameter(str(error)) from None


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
def alias_add(context: click.Context, name: str, prefixes, ports, protocols, fqdns, uris, as_json: bool) -> None:
    """Create or replace alias NAME."""
    entry: dict[str, Any] = {"name": name}
    for key, values in (("target-prefix", list(prefixes)), ("target-fqdn", list(fqdns)), ("target-uri", list(uris))):
        if values:
            entry[key] = values
    if ports:
        entry["target-port-range"] = [_port_range(port) for port in ports]
    if protocols:
        entry["target-protocol"] = [_protocol(protocol) for protocol in protocols]
    reply = _run(context, lambda client: client.put_alias(entry))
    verb = "created" if reply.status == 201 else "replaced"
    _report(reply, as_json, [f"alias {name} {verb}"])


@alias.command("list")
@click.argument("name", required=False)
@click.pass_context
def alias_list(context: click.Context, name: str | None, as_json: bool) -> None:
    """Show all aliases, or alias NAME (LIFETIME LEFT: pending-lifetime, in minutes)."""
    aliases = _run(context, lambda client: client.aliases(name))
    if as_json:
        print_json(aliases)
    else:
        click.echo(output.alias_rows(aliases) if aliases else "no aliases")


@alias.command("delete")
@click.argument("name")
@click.pass_context
def alias_delete(context: click.Context, name: str, as_json: bool) -> None:
    """Delete alias NAME."""
    _report(_run(context, lambda client: client.delete_alias(name)), as_json, [f"alias {name} deleted"])


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
def acl_add(
    context: click.Context, name: str | None, file: Path | None, insert, point, as_json: bool, **options: Any
) -> None:
    """Install ACL NAME from flags, or the ACL(s) of --file (an RFC 8783 body or bare entries)."""
    if file is not None:
        acls = _acls_from_file(file)
    elif name:
        acls = [_acl_from_flags(name, options)]
    else:
        raise click.UsageError("give an ACL NAME with flags, or --file")
    point_path = f"acl={point}" if point else None
    reply = _run(context, lambda client: client.create_acls(acls, insert, point_path))
    _report(reply, as_json, output.stored_acls(acls), output.ENFORCEMENT_NOTE)


@acl.command("list")
@click.argument("name", required=False)
@click.option("--content", type=click.Choice(["all", "config", "nonconfig"]), default="all", show_default=True)
@click.pass_context
def acl_list(context: click.Context, name: str | None, content: str, as_json: bool) -> None:
    """Show all ACLs in order, or ACL NAME (LIFETIME LEFT: pending-lifetime, in minutes)."""
    acls = _run(context, lambda client: client.acls(name, content))
    if as_json:
        print_json(acls)
    else:
        click.echo(output.acl_rows(acls) if acls else "no ACLs")


@acl.command("delete")
@click.argument("name")
@click.pass_context
def acl_delete(context: click.Context, name: str, as_json: bool) -> None:
    """Delete ACL NAME (the server stops applying it)."""
    _report(_run(context, lambda client: client.delete_acl(name)), as_json, [f"ACL {name} deleted"])


@acl.command("activate")
@click.argument("name")
@click.option("--type", "activation", type=click.Choice(ACTIVATION_TYPES), default="immediate", show_default=True)
@click.pass_context
def acl_activate(context: click.Context, name: str, activation: str, as_json: bool) -> None:
    """Change the activation type of ACL NAME (immediate, activate-when-mitigating, deactivate)."""
    reply = _run(context, lambda client: client.set_activation(name, activation))
    lines = output.stored_acls([{"name": name, "activation-type": activation}])
    _report(reply, as_json, lines, None if activation == "deactivate" else output.ENFORCEMENT_NOTE)


@data.group()
def mapping() -> None:
    """Vendor attack mappings (RFC 9244 §8.1.6): the server's, and this client's own."""


@mapping.command("get")
@click.option("--server", is_flag=True, help="The server's mapping instead of this client's.")
@click.pass_context
def mapping_get(context: click.Context, server: bool, as_json: bool) -> None:
    """Show a vendor attack mapping: one row per vendor, or every attack with --json."""
    found = _run(context, lambda client: client.vendor_mapping(server))
    if as_json:
        print_json({MAPPING: found} if found is not None else {})
    elif found is None:
        click.echo("no vendor mapping" + (" on the server" if server else " installed by this client"))
    else:
        click.echo(output.mapping_rows(found))


@mapping.command("set")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def mapping_set(context: click.Context, path: Path, as_json: bool) -> None:
    """Install or replace this client's mapping from PATH: {"ietf-dots-mapping:vendor-mapping": {"vendor": [...]}}."""
    try:
        body = json.loads(path.read_text())
    except ValueError as error:
        raise click.UsageError(f"{path}: not JSON: {error}") from None
    if not isinstance(body, dict) or list(body) != [MAPPING]:
        raise click.UsageError(f'{path}: expected {{"{MAPPING}": {{"vendor": [...]}}}}')
    reply = _run(context, lambda client: client.put_vendor_mapping(body[MAPPING]))
    vendors = len(body[MAPPING].get("vendor", [])) if isinstance(body[MAPPING], dict) else 0
    _report(
        reply, as_json, [f"vendor mapping {'installed' if reply.status == 201 else 'replaced'}: {vendors} vendor(s)"]
    )


@mapping.command("delete")
@click.pass_context
def mapping_delete(context: click.Context, as_json: bool) -> None:
    """Delete this client's mapping."""
    _report(_run(context, lambda client: client.delete_vendor_mapping()), as_json, ["vendor mapping deleted"])
