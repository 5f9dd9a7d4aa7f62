"""`opendots client config set|get` with RFC 9362's robust-transmission attributes, against the server as
`opendots server` builds it (one-shot client over DTLS, real SQLite)."""

from __future__ import annotations

import asyncio
import re

from click.testing import CliRunner

from opendots.cli.main import cli


async def test_config_set_conveys_robust_attributes_and_config_get_shows_them_with_units(app_server) -> None:
    running, directory = app_server
    common = ["-c", str(directory / "client.toml"), "--signal-port", str(running.config.signal_port)]

    async def run(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, cli, ["client", "config", *args, *common])

    configured = await run("set", "--set", "idle", "--max-payloads", "20", "--non-partial-timeout", "120.5")
    assert configured.exit_code == 0 and configured.stdout.endswith(": 2.01\n"), configured.output
    shown = (await run("get")).stdout
    # RFC 9362 §3: max-payloads conveyed in idle-config applies to mitigating-config too.
    assert re.search(r"mitigating-config\s+max-payloads\s+20\s+1\s+50\n", shown), shown
    assert re.search(r"idle-config\s+non-partial-timeout\s+120\.50 s\s+10\.00 s\s+600\.00 s\n", shown), shown
    assert re.search(r"mitigating-config\s+non-partial-timeout\s+223\.00 s", shown), shown
    refused = await run("set", "--max-payloads", "51")
    assert refused.exit_code != 0 and "ietf-dots-robust-trans:max-payloads=51" in refused.output, refused.output
