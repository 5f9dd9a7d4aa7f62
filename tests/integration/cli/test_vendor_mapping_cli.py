"""`opendots data mapping get|set|delete` against a real server (`opendots server` as built, HTTPS on loopback): a
client installs, reads and deletes its RFC 9244 §8.1.6 vendor attack mapping; the server's is read with --server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from opendots.cli.main import cli
from tests.helpers.vendor_mapping import FIGURE_30, MAPPING


async def _data(running, directory: Path, *args: str):
    flags = ["-c", str(directory / "client.toml"), "--data-port", str(running.config.data_port)]
    return await asyncio.to_thread(CliRunner().invoke, cli, ["data", *args, *flags])


async def test_a_client_sets_reads_and_deletes_its_vendor_mapping(app_server) -> None:
    running, directory = app_server
    assert (await _data(running, directory, "register")).exit_code == 0
    none = await _data(running, directory, "mapping", "get")
    assert none.exit_code == 0 and none.stdout == "no vendor mapping installed by this client\n", none.output
    server = await _data(running, directory, "mapping", "get", "--server")
    assert server.stdout == "no vendor mapping on the server\n", server.output  # none in server.toml

    path = directory / "mapping.json"
    path.write_text(json.dumps(FIGURE_30))
    installed = await _data(running, directory, "mapping", "set", str(path))
    assert installed.exit_code == 0 and installed.stdout == "vendor mapping installed: 1 vendor(s)\n", installed.output
    replaced = await _data(running, directory, "mapping", "set", str(path))
    assert replaced.stdout == "vendor mapping replaced: 1 vendor(s)\n", replaced.output

    shown = (await _data(running, directory, "mapping", "get")).stdout.splitlines()
    assert shown[0].split() == ["VENDOR-ID", "NAME", "LAST-UPDATED", "ATTACKS", "ATTACK-IDS"]
    assert shown[1].split() == ["345", "mitigator-c", "1629898958", "2", "1,2"]
    as_json = await _data(running, directory, "mapping", "get", "--json")
    assert json.loads(as_json.stdout) == FIGURE_30

    bad = directory / "bad.json"
    bad.write_text(json.dumps({MAPPING: {"vendor": [{"vendor-id": 1}]}}))
    refused = await _data(running, directory, "mapping", "set", str(bad))
    assert refused.exit_code != 0 and "missing-attribute" in refused.output, refused.output

    deleted = await _data(running, directory, "mapping", "delete")
    assert deleted.exit_code == 0 and deleted.stdout == "vendor mapping deleted\n"
    assert (await _data(running, directory, "mapping", "get")).stdout == "no vendor mapping installed by this client\n"
