"""`opendots callhome client`: the provider's Call Home DOTS client (RFC 9066) and the verbs that drive it.

`run` listens for CPEs on port 4647 and serves the control socket of provider.toml; `mitigate`, `status`,
`withdraw` and `peers` talk to it there (a Call Home session is opened by the CPE, so there is no one-shot mode).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import click

from opendots import eventloop
from opendots.cli.common import OpenDotsGroup, acl_option, config_option, group_config_option, run_service
from opendots.cli.render import print_json, protocol_name, seconds, table
from opendots.cli.server import event_loop_option, log_format_option
from opendots.errors import RefusedError, UnavailableError

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
SOURCE = "ietf-dots-call-home:source-prefix"

_config = config_option("provider.toml")


def _load(config: Path) -> Any:
    from opendots.callhome.provider_config import ProviderConfig

    return ProviderConfig.load(config)


def _call(config: Path, operation: str, **args: Any) -> dict[str, Any]:
    from opendots.signal.client.shell.control import ControlClient, agent_answers

    loaded = _load(config)
    if not agent_answers(loaded.control_socket):
        raise UnavailableError(
            f"no Call Home DOTS client answers on {loaded.control_socket} (start it: opendots callhome client run -c "
            f"{config})"
        )
    try:
        with ControlClient(loaded.control_socket) as control:
            return control.call(operation, **args)
    except (ConnectionError, OSError) as error:
        raise UnavailableError(str(error)) from None


def _check(answer: dict[str, Any]) -> None:
    code = str(answer.get("code", ""))
    if not code.startswith("2."):
        detail = answer.get("diagnostic") or ""
        conflict = _conflict(answer.get("body"))
        if conflict:
            detail = f"{detail} {conflict}".strip()
        raise RefusedError(f"CPE {answer.get('peer')} answered {code} {detail}".rstrip())


def _conflict(body: Any) -> str:
    for entry in ((body or {}).get(SCOPE) or {}).get("scope") or []:
        info = entry.get("conflict-information") if isinstance(entry, dict) else None
        if info:
            return "(" + ", ".join(f"{key} {value}" for key, value in info.items() if key != "conflict-scope") + ")"
    return ""


@click.group("client", cls=OpenDotsGroup)
@group_config_option("provider.toml")
def client() -> None:
    """The provider's Call Home DOTS client: listen for CPEs, ask them to stop attacks from their network."""


@client.command("run")
@_config
@event_loop_option
@log_format_option
def run_command(config: Path, event_loop: eventloop.EventLoopChoice) -> None:
    """Listen for CPEs (port 4647, UDP and TCP) and serve the control socket until SIGINT/SIGTERM."""
    from opendots.app import check_credentials
    from opendots.callhome.provider_service import run_provider

    loaded = _load(config)
    check_credentials(loaded.tls)

    async def main() -> None:
        stop = eventloop.stop_on_signals()

        def started() -> None:
            where = ", ".join(f"{address} port {loaded.port}" for address in loaded.listen)
            transports = "+".join(loaded.transports)
            line = f"DOTS Call Home client listening on {where} ({transports}), control {loaded.control_socket}"
            click.echo(line, err=True)  # first: the line scripts wait for

        await run_provider(loaded, stop, started, config_path=config)

    run_service(main(), event_loop)


@client.command("mitigate")
@_config
@click.option("--peer", required=True, help="The CPE to ask (its name in provider.toml).")
@click.option("--source-prefix", "sources", multiple=True, required=True, help="Attacking prefix (repeatable).")
@click.option("--source-port", "source_ports", multiple=True, help="Source port N or range N-M (repeatable).")
@click.option("--source-icmp-type", "icmp_types", multiple=True, help="ICMP type T or range T-U (repeatable).")
@click.option("--target-prefix", "targets", multiple=True, required=True, help="Attacked prefix (repeatable).")
@click.option("--target-port", "target_ports", multiple=True, help="Target port N or range N-M (repeatable).")
@click.option("--protocol", "protocols", multiple=True, help="udp, tcp, ... or a number 0-255 (repeatable).")
@acl_option
@click.option("--lifetime", type=int, default=3600, show_default=True, help="Seconds; -1 for indefinite.")
@click.option("--mid", type=int, help="Mitigation id (default: the next one for this CPE).")
@click.option("--json", "as_json", is_flag=True, help="Print the CPE's YANG-JSON answer.")
def mitigate_command(
    config: Path,
    peer: str,
    sources: tuple[str, ...],
    source_ports: tuple[str, ...],
    icmp_types: tuple[str, ...],
    targets: tuple[str, ...],
    target_ports: tuple[str, ...],
    protocols: tuple[str, ...],
    acls: tuple[str, ...],
    lifetime: int,
    mid: int | None,
    as_json: bool,
) -> None:
    """Ask CPE PEER to stop traffic from its sources (PUT /mitigate with RFC 9066 source-prefix)."""
    from opendots.callhome.provider_service import parse_type_range
    from opendots.domain.ranges import PortRange
    from opendots.signal.client.core.scope import ScopeError, parse_acl, parse_protocol

    cpe = _load(config).cpe(peer)
    if cpe is None:
        raise click.BadParameter(f"no CPE named {peer!r} in {config}", param_hint="--peer")
    try:
        for text in (*sources, *targets):
            ipaddress.ip_network(text)
        for text in (*source_ports, *target_ports):
            PortRange.parse(text)
        for text in icmp_types:
            parse_type_range(text)
        numbers = [parse_protocol(text) for text in protocols]
        acl_list = [parse_acl(text).to_yang() for text in acls]
    except (ValueError, ScopeError) as error:
        raise click.BadParameter(str(error)) from None
    outside = [text for text in sources if not cpe.covers(ipaddress.ip_network(text))]
    if outside:  # RFC 9066 §5.3.1: the Call Home DOTS client MUST check this before asking
        allowed = ", ".join(str(prefix) for prefix in cpe.prefixes)
        raise click.BadParameter(
            f"{', '.join(outside)} is outside what this provider may ask CPE {peer!r} about ({allowed}; RFC 9066 "
            "§5.3.1)",
            param_hint="--source-prefix",
        )
    scope: dict[str, Any] = {
        "source-prefix": list(sources),
        "target-prefix": list(targets),
        "source-port": list(source_ports),
        "source-icmp-type": list(icmp_types),
        "target-port": list(target_ports),
        "protocol": numbers,
        "lifetime": lifetime,
    }
    if acl_list:
        scope["acl-list"] = acl_list  # RFC 9133 §3.2.1, in the CPE's data channel's ACLs of this provider
    answer = _call(config, "mitigate", peer=peer, scope=scope, **({"mid": mid} if mid is not None else {}))
    if as_json:
        print_json(answer.get("body"))
    _check(answer)
    if not as_json:
        entries = ((answer.get("body") or {}).get(SCOPE) or {}).get("scope") or [{}]
        granted = entries[0].get("lifetime", lifetime)
        click.echo(f"{peer} mid {answer['mid']}: {answer['code']} (lifetime {seconds(granted)})")


@client.command("status")
@_config
@click.option("--peer", help="Only this CPE (default: every connected one).")
@click.option("--mid", type=int, help="Only this mitigation.")
@click.option("--json", "as_json", is_flag=True, help="Print the CPEs' answers as JSON.")
def status_command(config: Path, peer: str | None, mid: int | None, as_json: bool) -> None:
    """Show the mitigations the CPEs hold for this provider (GET /mitigate)."""
    args: dict[str, Any] = {}
    if peer is not None:
        args["peer"] = peer
    if mid is not None:
        args["mid"] = mid
    answers = _call(config, "status", **args)["answers"]
    if as_json:
        print_json(answers)
        return
    rows = []
    for answer in answers:
        if answer["code"] == "4.04":
            continue  # nothing held at that CPE
        _check(answer)
        for entry in ((answer.get("body") or {}).get(SCOPE) or {}).get("scope") or []:
            rows.append(
                (
                    answer["peer"],
                    entry.get("mid"),
                    entry.get("status", "-"),
                    " ".join(entry.get(SOURCE, [])),
                    " ".join(entry.get("target-prefix", [])),
                    " ".join(protocol_name(number) for number in entry.get("target-protocol", [])) or "-",
                    seconds(entry.get("lifetime")),
                )
            )
    if not rows:
        click.echo("no mitigations" if answers else "no CPE is connected")
        return
    click.echo(table(rows, ("PEER", "MID", "STATUS", "SOURCE", "TARGET", "PROTOCOL", "LIFETIME")))


@client.command("withdraw")
@_config
@click.option("--peer", required=True, help="The CPE (its name in provider.toml).")
@click.option("--mid", type=int, required=True, help="The mitigation to withdraw.")
def withdraw_command(config: Path, peer: str, mid: int) -> None:
    """Withdraw a mitigation request (DELETE /mitigate)."""
    answer = _call(config, "withdraw", peer=peer, mid=mid)
    _check(answer)
    click.echo(f"{peer} mid {mid}: {answer['code']} withdrawn")


@client.command("peers")
@_config
@click.option("--json", "as_json", is_flag=True, help="Print the peers as JSON.")
def peers_command(config: Path, as_json: bool) -> None:
    """The configured CPEs, whether each has a session, and what each may be asked about."""
    peers = _call(config, "peers")["peers"]
    if as_json:
        print_json(peers)
        return
    rows = [
        (
            peer["name"],
            "yes" if peer["connected"] else "no",
            peer["transport"] or "-",
            " ".join(peer["prefixes"]),
            peer["cuid"],
        )
        for peer in peers
    ]
    click.echo(table(rows, ("CPE", "CONNECTED", "TRANSPORT", "SOURCES", "CUID")))


@client.command("reload")
@_config
def reload_command(config: Path) -> None:
    """Read provider.toml's [[cpes]] again (as SIGHUP does): a removed CPE, or one with a new certificate, loses its
    session; other settings need a restart."""
    answer = _call(config, "reload")
    for kind in ("added", "removed", "changed"):
        names = answer["cpes"][kind]
        click.echo(f"{kind}: {', '.join(names) if names else '-'}")
    if answer["restart_needed"]:
        click.echo(f"not applied until a restart: {', '.join(answer['restart_needed'])}")


@client.command("redirect")
@_config
@click.option("--peer", required=True, help="The CPE (its name in provider.toml).")
@click.option(
    "--to", "alternate", required=True, help="FQDN of the alternate Call Home DOTS client (its certificate's)."
)
@click.option("--address", "records", multiple=True, help="An address of the alternate (repeatable; default: by name).")
@click.option(
    "--ttl", type=click.IntRange(0, 2**32 - 1), help="Seconds the alternate holds (default: until redirected)."
)
def redirect_command(config: Path, peer: str, alternate: str, records: tuple[str, ...], ttl: int | None) -> None:
    """Send CPE PEER to another Call Home DOTS client (RFC 9066 §5.2.2: a PUT /redirect)."""
    for text in records:
        try:
            ipaddress.ip_address(text)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--address") from None
    args: dict[str, Any] = {"peer": peer, "alt-ch-client": alternate, "records": list(records)}
    if ttl is not None:
        args["ttl"] = ttl
    answer = _call(config, "redirect", **args)
    _check(answer)
    click.echo(f"{peer}: {answer['code']} redirected to {alternate}")
