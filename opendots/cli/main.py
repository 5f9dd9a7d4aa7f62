"""Entry point of the `opendots` console script."""

from __future__ import annotations

import logging

import click

from opendots import __version__
from opendots.cli.admin import admin
from opendots.cli.callhome import callhome
from opendots.cli.certs import certs
from opendots.cli.client import client
from opendots.cli.client_telemetry import telemetry
from opendots.cli.common import OpenDotsGroup
from opendots.cli.data import data
from opendots.cli.db import db
from opendots.cli.demo import demo
from opendots.cli.fastnetmon import fastnetmon_hook
from opendots.cli.gateway import gateway
from opendots.cli.server import server


@click.group(cls=OpenDotsGroup)
@click.version_option(__version__, prog_name="opendots")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """OpenDOTS: DDoS Open Threat Signaling client, server and gateway."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


cli.add_command(admin)
cli.add_command(callhome)
cli.add_command(certs)
client.add_command(telemetry)
cli.add_command(client)
cli.add_command(data)
cli.add_command(db)
cli.add_command(demo)
cli.add_command(fastnetmon_hook)
cli.add_command(gateway)
cli.add_command(server)


def main() -> None:
    cli(prog_name="opendots")
