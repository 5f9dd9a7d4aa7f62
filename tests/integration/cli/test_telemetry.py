"""`opendots client telemetry` against a real server (`opendots server` as built, DTLS on loopback): the setup,
pipe and baseline verbs land in the server's tm-setup state, `report` in its tm state under the tmid, `show` renders
both as tables with units or as YANG-JSON; the agent installs client.toml's [telemetry] at start and again after a
reconnection to a server that lost it (RFC 9244 §7, §8.2)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from opendots.app import build_client_agent, start_server
from opendots.cli.main import cli
from opendots.config import ClientConfig, ConfigError
from opendots.pki.cuid import cuid_from_certificate
from opendots.pki.setup import init_pki
from tests.conftest import free_port

SETUP = "ietf-dots-telemetry:telemetry-setup"
TELEMETRY = "ietf-dots-telemetry:telemetry"


def _cuid(directory: Path) -> str:
    return cuid_from_certificate(ClientConfig.load(directory / "client.toml").tls.cert.read_bytes())


async def _run(directory: Path, running: Any, *args: str) -> Any:
    ports = ["--signal-port", str(running.config.signal_port)]
    verb = 2 if args[0] in ("setup", "pipe", "baseline") else 1  # sub-groups: the options follow the verb
    command = ["client", "telemetry", *args[:verb], "-c", str(directory / "client.toml"), *ports, *args[verb:]]
    return await asyncio.to_thread(CliRunner().invoke, cli, command)


async def test_setup_pipe_baseline_report_and_show_reach_the_server(app_server) -> None:
    running, directory = app_server
    core = running.signal.service.core
    cuid = _cuid(directory)

    configured = await _run(
        directory, running, "setup", "set", "--measurement-interval", "hour", "--low-percentile", "10"
    )
    assert configured.exit_code == 0 and configured.stdout == "tsid 0: 2.01 telemetry configuration installed\n", (
        configured.output
    )
    piped = await _run(directory, running, "pipe", "set", "--link", "uplink=10:Gbps")
    assert piped.exit_code == 0 and piped.stdout.startswith("tsid 1: 2.01"), piped.output
    based = await _run(
        directory, running, "baseline", "set", "--target-prefix", "203.0.113.0/24", "--normal", "300:Mbps",
        "--peak", "900:Mbps",
    )  # fmt: skip
    assert based.exit_code == 0 and based.stdout.startswith("tsid 2: 2.01"), based.output
    held = {record.tsid: record.setup for record in core.telemetry_setups.of("client", cuid)}
    assert held[0] == {"current-config": {"measurement-interval": "hour", "low-percentile": "10.00"}}
    assert held[1] == {"total-pipe-capacity": [{"link-id": "uplink", "capacity": "10", "unit": "gigabit-ps"}]}
    assert held[2]["baseline"][0]["total-traffic-normal"] == [
        {"unit": "megabit-ps", "mid-percentile-g": "300", "peak-g": "900"}
    ]

    reported = await _run(
        directory, running, "report", "--target-prefix", "203.0.113.7", "--total-attack-traffic", "25000:pps",
        "--top-talker", "198.51.100.7:53", "--top-talker", "[2001:db8:1::5]:123", "--attack-id", "3",
        "--severity", "high", "--description", "udp_flood",
    )  # fmt: skip
    assert reported.exit_code == 0 and reported.stdout == "tmid 0: 2.04 telemetry reported\n", reported.output
    (report,) = core.telemetry_reports.of("client", cuid)
    assert report.tmid == 0 and report.entries[0]["target"] == {"target-prefix": ["203.0.113.7/32"]}
    talkers = report.entries[0]["attack-detail"][0]["top-talker"]["talker"]
    assert [t["source-prefix"] for t in talkers] == ["198.51.100.7/32", "2001:db8:1::5/128"]

    shown = await _run(directory, running, "show")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["TSID", "SETUP", "VALUES"]
    assert "0     configuration  measurement-interval hour, low-percentile 10.00 %" in lines
    assert any(line.split() == ["1", "pipe", "link", "uplink:", "10", "Gbps"] for line in lines), shown.stdout
    assert any("203.0.113.0/24: normal 300 Mbps (mid), 900 Mbps (peak)" in line for line in lines), shown.stdout
    header = next(line for line in lines if line.startswith("TMID"))
    assert header.split()[:3] == ["TMID", "TARGET", "TOTAL"]
    row = lines[lines.index(header) + 1].split()
    assert row[:2] == ["0", "203.0.113.7/32"] and row[3:5] == ["25000", "pps"], shown.stdout
    # The top talkers, then the breakdowns by protocol and port: none in a client's report ('-').
    assert row[-3:] == ["198.51.100.7/32:53", "2001:db8:1::5/128:123", "-"] and "high" in row, shown.stdout

    as_json = await _run(directory, running, "show", "--json")
    body = json.loads(as_json.stdout)
    assert [e.get("tsid") for e in body[SETUP]["telemetry"]] == [0, 1, 2]
    assert body[TELEMETRY]["pre-or-ongoing-mitigation"][0]["tmid"] == 0

    removed = await _run(directory, running, "baseline", "delete")
    assert removed.exit_code == 0 and removed.stdout == "tsid 2: 2.02 baselines deleted\n", removed.output
    assert [r.tsid for r in core.telemetry_setups.of("client", cuid)] == [0, 1]
    got = await _run(directory, running, "setup", "get")
    assert got.exit_code == 0 and "baseline" not in got.stdout and "uplink" in got.stdout, got.output
    gone = await _run(directory, running, "delete", "--tmid", "0")
    assert gone.exit_code == 0 and core.telemetry_reports.of("client", cuid) == []
    empty = await _run(directory, running, "show")
    assert empty.exit_code == 0 and empty.stdout.endswith("no telemetry reports\n"), empty.output


async def test_bad_values_are_refused_before_sending_and_server_refusals_say_why(app_server) -> None:
    """A fractional rate, an unknown unit, a port out of range: usage errors, nothing sent; a baseline outside the
    client's prefixes: the server's 4.xx with its diagnostic, nothing stored (RFC 9244 §7.3.1)."""
    running, directory = app_server
    core = running.signal.service.core
    for args in (
        ("report", "--target-prefix", "203.0.113.7", "--total-attack-traffic", "1.5:Mbps"),
        ("report", "--target-prefix", "203.0.113.7", "--total-attack-traffic", "5:furlongs"),
        ("report", "--target-prefix", "203.0.113.7", "--top-talker", "198.51.100.7:70000"),
        ("setup", "set", "--low-percentile", "100.5"),
    ):
        refused = await _run(directory, running, *args)
        assert refused.exit_code == 2 and "Invalid value" in refused.output, (args, refused.output)
    outside = await _run(directory, running, "baseline", "set", "--target-prefix", "10.0.0.0/8", "--peak", "1:Gbps")
    assert outside.exit_code != 0 and "the DOTS server answered 4." in outside.output, outside.output
    assert core.telemetry_setups.of("client", _cuid(directory)) == []
    assert core.telemetry_reports.of("client", _cuid(directory)) == []


def test_unknown_telemetry_keys_in_client_toml_are_refused(tmp_path: Path) -> None:
    init_pki(tmp_path)
    text = (tmp_path / "client.toml").read_text()
    (tmp_path / "client.toml").write_text(text + '\n[telemetry]\nmesurement_interval = "hour"\n')
    with pytest.raises(ConfigError, match="unknown key 'mesurement_interval'"):
        ClientConfig.load(tmp_path / "client.toml")
    (tmp_path / "client.toml").write_text(text + "\n[telemetry]\nlow_percentile = 120\n")
    with pytest.raises(ConfigError, match=r"\[telemetry\] percentile 120"):
        ClientConfig.load(tmp_path / "client.toml")


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_agent_installs_client_toml_telemetry_and_again_after_reconnecting_to_a_server_that_lost_it(
    tmp_path: Path,
) -> None:
    server_config, _ = init_pki(tmp_path)
    server_config.listen = ["127.0.0.1"]
    server_config.signal_port = free_port()
    server_config.data_port = free_port(socket.SOCK_STREAM)
    server_config.admin_socket = Path("/tmp") / f"od-tm-{uuid.uuid4().hex[:10]}.sock"
    config = ClientConfig.load(tmp_path / "client.toml")
    config.server_addresses, config.transport = ["127.0.0.1"], "dtls"
    config.signal_port = server_config.signal_port
    config.control_socket = Path("/tmp") / f"od-tma-{uuid.uuid4().hex[:10]}.sock"
    config.agent = {"connect_timeout": 5.0, "request_timeout": 5.0, "reconnect_min": 0.2, "reconnect_max": 0.5}
    config.telemetry = {
        "measurement_interval": "hour",
        "mid_percentile": 50,
        "pipe": [{"link_id": "uplink", "capacity": "10:Gbps"}],
        "baseline": [{"target_prefix": "203.0.113.0/24", "normal": "300:Mbps"}],
    }
    config.save(tmp_path / "client.toml")
    cuid = _cuid(tmp_path)
    running = await start_server(server_config)
    agent = build_client_agent(ClientConfig.load(tmp_path / "client.toml"))
    await agent.start()
    try:
        assert await agent.wait_connected(10)

        def kinds() -> list[str]:
            return sorted(next(iter(r.setup)) for r in running.signal.service.core.telemetry_setups.of("client", cuid))

        await _wait(lambda: len(kinds()) == 3, 10, "the three setups at the server")
        assert kinds() == ["baseline", "current-config", "total-pipe-capacity"]
        first = [r.tsid for r in running.signal.service.core.telemetry_setups.of("client", cuid)]
        # The server restarts without its database; the agent's next session installs the same setups again.
        await running.stop()
        server_config.db = tmp_path / "fresh.db"
        running = await start_server(server_config)
        agent._mark_lost("test: the server restarted")
        await _wait(lambda: agent.sessions_established == 2 and len(kinds()) == 3, 20, "the setups re-sent")
        assert [r.tsid for r in running.signal.service.core.telemetry_setups.of("client", cuid)] == first
        # Through the agent's control socket now: a report, then show.
        reported = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["client", "telemetry", "report", "-c", str(tmp_path / "client.toml"), "--target-prefix", "203.0.113.9",
             "--total-attack-traffic", "2:Gbps"],
        )  # fmt: skip
        assert reported.exit_code == 0 and reported.stdout.startswith("tmid 0: 2.04"), reported.output
        assert [r.tmid for r in running.signal.service.core.telemetry_reports.of("client", cuid)] == [0]
    finally:
        await agent.stop()
        await running.stop()


async def test_the_fastnetmon_hook_reports_the_attack_as_telemetry_before_asking_for_mitigation(app_server) -> None:
    """`fastnetmon-hook IP incoming PPS ban` with FastNetMon's details on stdin (a pipe, as FastNetMon gives it):
    a tm report with the rates and top talkers, then the mitigation; unban withdraws both (RFC 9244 §8.2)."""
    from opendots.integrations.fastnetmon import EXIT_OK, STATE_FILE, run_hook
    from tests.helpers import FIXTURES

    running, directory = app_server
    core = running.signal.service.core
    client = ClientConfig.load(directory / "client.toml")
    client.signal_port = running.config.signal_port
    client.save(directory / "client.toml")
    details = (FIXTURES / "fastnetmon" / "ban-details-udp-flood.txt").read_bytes()

    def hook(*argv: str, stdin: bytes = b"") -> int:
        read, write = os.pipe()
        os.write(write, stdin)
        os.close(write)
        with os.fdopen(read, "rb") as stream:
            return run_hook(list(argv), directory / "client.toml", lifetime=600, timeout=10.0, stdin=stream)

    # As FastNetMon 1.2 does: ban with the counters, the sampled packets in a later attack_details call.
    header = details.split(b"\n\n")[0]
    assert await asyncio.to_thread(hook, "203.0.113.7", "incoming", "25000", "ban", stdin=header) == EXIT_OK
    cuid = _cuid(directory)
    (report,) = core.telemetry_reports.of("client", cuid)
    (entry,) = report.entries
    assert entry["target"] == {"target-prefix": ["203.0.113.7/32"]}
    assert entry["total-attack-traffic"] == [{"unit": "packet-ps", "current-g": "25000"}]
    assert entry["total-traffic"][1] == {"unit": "megabit-ps", "current-g": "20"}
    assert "top-talker" not in entry["attack-detail"][0]
    recorded = json.loads((directory / STATE_FILE).read_text())["203.0.113.7"]
    assert recorded["tmid"] == report.tmid
    assert [m.key for m in core.mitigations()] == [(cuid, recorded["mid"])]

    assert await asyncio.to_thread(hook, "203.0.113.7", "incoming", "25000", "attack_details", stdin=details) == 0
    (update,) = core.telemetry_reports.of("client", cuid)  # the newer tmid replaced the ban's (§8.2)
    assert update.tmid > report.tmid
    talkers = update.entries[0]["attack-detail"][0]["top-talker"]["talker"]
    assert [t["source-prefix"] for t in talkers] == ["198.51.100.6/32", "198.51.100.5/32"]
    assert json.loads((directory / STATE_FILE).read_text())["203.0.113.7"]["tmid"] == update.tmid
    # Details of an attack this hook did not ban: nothing sent.
    assert await asyncio.to_thread(hook, "203.0.113.8", "incoming", "1", "attack_details", stdin=details) == 0
    assert len(core.telemetry_reports.of("client", cuid)) == 1

    assert await asyncio.to_thread(hook, "203.0.113.7", "incoming", "0", "unban") == EXIT_OK
    assert core.telemetry_reports.of("client", cuid) == []
    assert json.loads((directory / STATE_FILE).read_text()) == {}


async def test_a_report_over_tls_reaches_the_server_too(app_server) -> None:
    """RFC 8323 CoAP over TLS carries the same telemetry bodies (the client's transport = "tls")."""
    running, directory = app_server
    client = ClientConfig.load(directory / "client.toml")
    client.transport = "tls"
    client.save(directory / "client.toml")
    reported = await _run(directory, running, "report", "--target-prefix", "2001:db8::5", "--total-traffic", "3:Gbps")
    assert reported.exit_code == 0 and reported.stdout == "tmid 0: 2.04 telemetry reported\n", reported.output
    (report,) = running.signal.service.core.telemetry_reports.of("client", _cuid(directory))
    assert report.entries == [
        {"target": {"target-prefix": ["2001:db8::5/128"]}, "total-traffic": [{"unit": "gigabit-ps", "current-g": "3"}]}
    ]
