"""`opendots client status` and `client telemetry show` with RFC 9244 server-originated telemetry (§9.2, §8.3):
against a real server (`opendots server` as built, DTLS on loopback) whose counter readings give a dropped rate,
the client's tables show it with its units."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from click.testing import CliRunner

from opendots.cli.main import cli
from opendots.domain import Counters


async def test_status_and_telemetry_show_carry_the_servers_dropped_rates_with_units(app_server) -> None:
    running, directory = app_server
    service = running.signal.service
    core = service.core
    core.settings = replace(core.settings, telemetry=replace(core.settings.telemetry, server_originated=True))
    ports = ["--signal-port", str(running.config.signal_port)]
    client_toml = str(directory / "client.toml")

    async def run(*args: str):
        result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    await run(
        "client", "telemetry", "setup", "set", "-c", client_toml, *ports, "--measurement-sample", "second",
        "--server-originated",
    )  # fmt: skip
    placed = await run("client", "mitigate", "-c", client_toml, *ports, "--target-prefix", "203.0.113.9/32")
    mid = int(placed.split()[1].rstrip(":"))
    await run("client", "telemetry", "report", "-c", client_toml, *ports, "--target-prefix", "203.0.113.0/24")
    (mitigation,) = core.mitigations()

    now = [time.time()]
    service.clock = lambda: now[0]  # the server's clock, moved by the test between two counter reads
    for step, packets in ((0.0, 0), (10.0, 25_000)):
        now[0] += step
        # All the traffic toward the target, per protocol and per port (§8.3), as an nftables breakdown counts it.
        by_protocol = ((6, packets // 5, packets * 20), (17, packets, packets * 100))
        counters = Counters(
            bytes_dropped=packets * 100, pkts_dropped=packets, by_protocol=by_protocol, by_port=((53, packets, 0),)
        )
        service.report_counters(mitigation.mitigator_key, counters)
        await service.idle()
        service.counters_read()
        await service.idle()

    status = (await run("client", "status", "-c", client_toml, *ports)).splitlines()
    assert status[0].split()[-3:] == ["DROPPED", "RATE", "(SERVER)"], status
    row = status[1]
    assert row.split()[0] == str(mid)
    assert "2500 pps (peak 2500 pps), 2000000 bps (peak 2000000 bps), 250000 Bps (peak 250000 Bps)" in row, status

    shown = (await run("client", "telemetry", "show", "-c", client_toml, *ports)).splitlines()
    header = next(line for line in shown if line.startswith("TMID"))
    row = shown[shown.index(header) + 1]
    assert row.split()[:2] == ["0", "203.0.113.0/24"], shown
    assert "2500 pps (low), 2500 pps (mid), 2500 pps (high), 2500 pps (peak)" in row, shown
    assert header.split()[-4:] == ["BY", "PROTOCOL;", "BY", "PORT"], shown
    # Per protocol and per port (§8.3): the rate of each unit, in the order the server lists them.
    breakdown = "tcp 500 pps/400000 bps/50000 Bps, udp 2500 pps/2000000 bps/250000 Bps; port 53 2500 pps/0 bps/0 Bps"
    assert row.endswith(breakdown), shown
