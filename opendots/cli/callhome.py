"""`opendots callhome server` (alias `cpe`): run an RFC 9066 Call Home DOTS server that dials its Call Home DOTS
client(s); `opendots callhome client ...` (opendots.cli.callhome_client) is the provider's side.

The configuration is a server.toml (`opendots certs init --call-home` writes one as cpe.toml): `[tls]` is the
CPE's certificate, `db` its store, `[[mitigators]]` what enforces, each `[[clients]]` entry a provider allowed to
ask, by the CUID of its certificate, with `prefixes` the CPE's own addresses it may ask about (RFC 9066 §5.3.1),
and each `[[providers]]` entry a Call Home DOTS client to dial:

    [[providers]]
    name = "provider"        # what its certificate must carry (checked as a TLS client checks a server)
    address = "192.0.2.1"    # an address or a name to dial
    port = 4647              # RFC 9066 §8.1 (the default)
    transport = "dtls"       # or "tls" (the default), or "auto" (Happy Eyeballs: DTLS first, then TLS)

--provider adds more on the command line. `[server] listen`, the ports and the data channel are not used (a CPE
listens on nothing). With `[call_home] discovery = "auto"` (opendots.callhome.discovery) the CPE finds its Call Home
DOTS client as RFC 8973 §4 says: those entries first, then DHCP, DNS S-NAPTR "DOTS-CALL-HOME"/SRV, DNS-SD, dialing
the first that answers; `opendots callhome discover` prints what it finds and from where.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opendots import eventloop
from opendots.cli.common import OpenDotsCommand, OpenDotsGroup, config_option, run_service
from opendots.cli.server import event_loop_option, log_format_option
from opendots.config import DEFAULT_CALL_HOME_PORT, ServerConfig

if TYPE_CHECKING:
    from opendots.callhome.cpe import ProviderAddress


@click.group(cls=OpenDotsGroup)
def callhome() -> None:
    """RFC 9066 DOTS Call Home (the customer's DOTS server dials the provider's DOTS client)."""


def parse_provider(text: str, transport: str) -> ProviderAddress:
    """NAME@HOST[:PORT]: NAME is what the provider's certificate must carry; HOST an address or name to dial."""
    from opendots.callhome.cpe import ProviderAddress

    name, at, location = text.partition("@")
    if not at or not name or not location:
        raise click.BadParameter(f"{text!r}: expected NAME@HOST[:PORT] (NAME: the provider's certificate name)")
    host, port = location, DEFAULT_CALL_HOME_PORT
    if location.startswith("["):  # [IPv6]:port
        host, _, rest = location[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), text)
    elif location.count(":") == 1:
        host, rest = location.split(":")
        port = _port(rest, text)
    origin = f"--provider {text}"
    return ProviderAddress(host, server_name=name, port=port, transport=transport, origin=origin)  # type: ignore[arg-type]


def providers_of(config: ServerConfig, path: Path) -> list[ProviderAddress]:
    """The `[[providers]]` entries of CONFIG (read from PATH) as addresses to dial."""
    from opendots.callhome.cpe import ProviderAddress
    from opendots.errors import ConfigError

    addresses = []
    for entry in config.providers:
        where = f"{path}: [[providers]] {entry.get('name', '')!s}".rstrip()
        unknown = [key for key in entry if key not in ("name", "address", "port", "transport")]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: name, address, port, transport)")
        name, address = entry.get("name"), entry.get("address")
        if not isinstance(name, str) or not name or not isinstance(address, str) or not address:
            raise ConfigError(f"{where}: needs name (the provider's certificate name) and address")
        port = entry.get("port", DEFAULT_CALL_HOME_PORT)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"{where}: port must be 1-65535, not {port!r}")
        transport = entry.get("transport", "tls")
        if transport not in ("tls", "dtls", "auto"):
            raise ConfigError(
                f"{where}: transport must be 'tls', 'dtls' or 'auto' (both, DTLS first), not {transport!r}"
            )
        origin = f"[[providers]] name in {path.name}"
        addresses.append(ProviderAddress(address, server_name=name, port=port, transport=transport, origin=origin))
    return addresses


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise click.BadParameter(f"{whole!r}: the port must be 1-65535")
    return int(text)


@click.command(cls=OpenDotsCommand)
@config_option("cpe.toml")
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help=f"NAME@HOST[:PORT] of a Call Home DOTS client to dial, besides [[providers]] (repeatable; port "
    f"{DEFAULT_CALL_HOME_PORT} by default).",
)
@click.option(
    "--transport",
    type=click.Choice(["tls", "dtls", "auto"]),
    default="tls",
    show_default=True,
    help="Of --provider (auto: Happy Eyeballs, DTLS first).",
)
@click.option("--db", help="SQLite database file (overrides db).")
@event_loop_option
@log_format_option
def server(
    config: Path, providers: tuple[str, ...], transport: str, db: str | None, event_loop: eventloop.EventLoopChoice
) -> None:
    """Dial the Call Home DOTS client(s) and serve their mitigation requests until SIGINT/SIGTERM."""
    from opendots.app import check_credentials
    from opendots.callhome.cpe import start_cpe

    loaded = ServerConfig.load(config)
    addresses = [*providers_of(loaded, config), *(parse_provider(text, transport) for text in providers)]
    discovery = _discovery(loaded, config, addresses)
    if not addresses and discovery is None:
        raise click.UsageError(
            f"no Call Home DOTS client to dial: add a [[providers]] entry to {config}, --provider, or "
            '[call_home] discovery = "auto"'
        )
    if db is not None:
        loaded.db = Path(db)
    check_credentials(loaded.tls)

    async def main() -> None:
        running = await start_cpe(loaded, addresses, discovery=discovery)
        admin = None
        if loaded.admin_socket is not None:  # `opendots admin -c cpe.toml status|mitigations|...`
            from opendots.signal.server.shell.admin import start_admin_socket

            try:
                admin = await start_admin_socket(running.signal, loaded.admin_socket, config)
            except BaseException:
                await running.stop()
                raise
        stop = eventloop.stop_on_signals()
        dialing = ", ".join(dialer.label for dialer in running.dialers)
        click.echo(f"DOTS Call Home server dialing {dialing}", err=True)  # first: the line scripts wait for
        try:
            await stop.wait()
        finally:
            if admin is not None:
                await admin.close()
            await running.stop()

    run_service(main(), event_loop)


def _discovery(loaded: ServerConfig, path: Path, addresses: list[ProviderAddress], always: bool = False) -> Any:
    """The ProviderDiscovery of `[call_home] discovery = "auto"` (ADDRESSES its explicit candidates), else None
    (unless ALWAYS)."""
    from opendots.callhome.discovery import CallHomeDiscoveryConfig, Candidate, provider_discovery

    settings = CallHomeDiscoveryConfig.from_table(loaded.call_home, path.resolve().parent, f"{path}: [call_home]")
    if settings.discovery != "auto" and not always:
        return None
    explicit = [Candidate(a.host, a.port, a.transport, a.server_name, "config") for a in addresses]
    return provider_discovery(settings, explicit)


@click.command(cls=OpenDotsCommand)
@config_option("cpe.toml")
@click.option("--json", "as_json", is_flag=True, help="Print the candidates and notes as JSON.")
def discover(config: Path, as_json: bool) -> None:
    """Find the Call Home DOTS client as RFC 8973 §4 says (configuration, DHCP, DNS S-NAPTR DOTS-CALL-HOME, DNS-SD)
    and show where from, in the order the CPE dials them."""
    import asyncio
    import dataclasses

    from opendots.cli.render import print_json, table
    from opendots.errors import UnavailableError

    loaded = ServerConfig.load(config)
    found = _discovery(loaded, config, providers_of(loaded, config), always=True)
    candidates = asyncio.run(found.candidates(0.0))
    notes = found.notes()
    if found.config.discovery != "auto":
        notes.append('[call_home] discovery is "off": `callhome server` dials the config entries only')
    if as_json:
        print_json({"providers": [dataclasses.asdict(c) for c in candidates], "notes": notes})
    else:
        rows = [
            [
                c.source,
                c.transport.upper(),
                c.host,
                str(c.port),
                c.server_name,
                "-" if c.ttl is None else f"{c.ttl:.0f} s",
            ]
            for c in candidates
        ]
        click.echo(table(rows, ["SOURCE", "TRANSPORT", "ADDRESS", "PORT", "VERIFY NAME", "TTL"]))
        for note in notes:
            click.echo(f"  {note}")
    if not candidates:
        raise UnavailableError("no Call Home DOTS client found")


def _attach() -> None:
    from opendots.cli.callhome_client import client

    callhome.add_command(server, "server")
    callhome.add_command(server, "cpe")  # the command's first name, kept for existing scripts
    callhome.add_command(client, "client")
    callhome.add_command(discover, "discover")


_attach()
