"""Entry point of the `opendots` console script.

The verbs are imported lazily (opendots.cli.lazy): `opendots --help` and `opendots fastnetmon-hook` must not pay
for aiohttp, aiocoap, pyOpenSSL and the YANG model they do not use. A new verb goes in VERBS with its one-line help
(the first sentence of its docstring; tests/unit/cli/test_lazy_commands.py checks they agree).
"""

from __future__ import annotations

import logging

import click

from opendots import __version__
from opendots.cli.lazy import LazyGroup, Loader


def _client() -> click.Command:
    from opendots.cli.client import client
    from opendots.cli.client_telemetry import telemetry

    client.add_command(telemetry)
    return client


VERBS: dict[str, tuple[Loader, str]] = {
    "admin": (
        "opendots.cli.admin:admin",
        "Operate a running DOTS server: its clients, mitigations and redirection ([server] admin_socket).",
    ),
    "callhome": (
        "opendots.cli.callhome:callhome",
        "RFC 9066 DOTS Call Home (the customer's DOTS server dials the provider's DOTS client).",
    ),
    "certs": ("opendots.cli.certs:certs", "Create test certificates (ECDSA P-256) and configs for labs and tests."),
    "client": (_client, "DOTS client: the agent and its verbs (RFC 9132 signal channel)."),
    "data": (
        "opendots.cli.data:data",
        "Manage this client's registration, aliases and filtering rules on its DOTS server (RFC 8783).",
    ),
    "db": ("opendots.cli.db:db", "The server's database ([server] db): schema migrations."),
    "demo": (
        "opendots.cli.demo:demo",
        "Run a DOTS server and client on loopback and signal a mitigation end to end.",
    ),
    "fastnetmon-hook": ("opendots.cli.fastnetmon:fastnetmon_hook", "Called by FastNetMon as `..."),
    "gateway": (
        "opendots.cli.gateway:gateway",
        "A DOTS gateway (RFC 8811 §2.2.3): `opendots gateway --config gw.toml` runs it.",
    ),
    "server": (
        "opendots.cli.server:server",
        "Serve the DOTS signal channel over DTLS and TLS, and the data channel over HTTPS, until SIGINT/SIGTERM.",
    ),
}


@click.group(cls=LazyGroup, lazy=VERBS)
@click.version_option(__version__, prog_name="opendots")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """OpenDOTS: DDoS Open Threat Signaling client, server and gateway."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    cli(prog_name="opendots")
