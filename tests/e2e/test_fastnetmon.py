"""The FastNetMon notify hook, invoked exactly as FastNetMon does (argv + stdin), against a real `opendots server`
and `opendots client run` (processes); and, where FastNetMon can run here, FastNetMon itself in the lab."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendots.integrations.fastnetmon import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    STATE_FILE,
    write_notify_script,
)
from opendots.lab.processes import ProcessStack, wait_for
from tests.helpers.fastnetmon import running_fastnetmon

DETAILS = "IP: 203.0.113.7\nAttack type: udp_flood\nInitial attack power: 25000 packets per second\n"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with ProcessStack(tmp_path / "stack", [{"type": "logging"}]) as running:
        yield running


def notify(script: Path, *argv: str, stdin: str = "", timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run the notify script the way FastNetMon does: four arguments, attack details on stdin."""
    return subprocess.run([str(script), *argv], input=stdin, capture_output=True, text=True, timeout=timeout)


def mapping(stack: ProcessStack) -> dict[str, Any]:
    path = stack.directory / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def active(stack: ProcessStack, prefix: str, *, oneshot: bool) -> list[dict[str, Any]]:
    entries = stack.status_entries(oneshot=oneshot)
    return [
        e
        for e in entries
        if prefix in e.get("target-prefix", []) and e.get("status") != "dots-client-withdrawn-mitigation"
    ]


def test_ban_and_unban_through_the_agent(stack: ProcessStack, tmp_path: Path):
    stack.start_server()
    stack.start_agent()
    log_file = tmp_path / "hook.log"
    script = write_notify_script(tmp_path / "notify.sh", stack.client_config_path, lifetime=600, log_file=log_file)

    banned = notify(script, "203.0.113.7", "incoming", "25000", "ban", stdin=DETAILS)
    assert banned.returncode == EXIT_OK, banned.stderr + log_file.read_text()
    mid = mapping(stack)["203.0.113.7"]["mid"]
    [entry] = active(stack, "203.0.113.7/32", oneshot=False)
    assert entry["mid"] == mid and entry["lifetime"] > 500
    assert "via agent" in log_file.read_text() and "Attack type: udp_flood" not in banned.stdout

    again = notify(script, "203.0.113.7", "incoming", "30000", "ban", stdin=DETAILS)
    assert again.returncode == EXIT_OK
    assert mapping(stack)["203.0.113.7"]["mid"] == mid  # the same attack refreshes the same mitigation
    assert len(active(stack, "203.0.113.7/32", oneshot=False)) == 1

    v6 = notify(script, "2001:db8:b::5", "incoming", "40000", "ban", stdin="IP: 2001:db8:b::5\n")
    assert v6.returncode == EXIT_OK
    assert active(stack, "2001:db8:b::5/128", oneshot=False)

    unbanned = notify(script, "203.0.113.7", "incoming", "0", "unban")
    assert unbanned.returncode == EXIT_OK, log_file.read_text()
    assert "203.0.113.7" not in mapping(stack) and "2001:db8:b::5" in mapping(stack)
    wait_for(lambda: not active(stack, "203.0.113.7/32", oneshot=False), 10, "the withdrawal", interval=0.2)
    assert active(stack, "2001:db8:b::5/128", oneshot=False)  # the other ban is untouched


def test_concurrent_bans_each_get_their_own_mitigation(stack: ProcessStack, tmp_path: Path):
    """FastNetMon runs one script per attacked host, possibly at once: the state file must keep every mapping."""
    stack.start_server()
    stack.start_agent()
    script = write_notify_script(tmp_path / "notify.sh", stack.client_config_path, log_file=tmp_path / "hook.log")
    hosts = [f"203.0.113.{20 + i}" for i in range(4)]
    calls = [
        subprocess.Popen([str(script), host, "incoming", "20000", "ban"], stdin=subprocess.PIPE, text=True)
        for host in hosts
    ]
    for call in calls:
        call.communicate(DETAILS, timeout=30)
        assert call.returncode == EXIT_OK
    recorded = mapping(stack)
    assert set(recorded) == set(hosts)
    assert len({recorded[host]["mid"] for host in hosts}) == len(hosts)
    for host in hosts:
        [entry] = active(stack, f"{host}/32", oneshot=False)
        assert entry["mid"] == recorded[host]["mid"]


def test_one_shot_when_no_agent_runs(stack: ProcessStack, tmp_path: Path):
    stack.start_server()
    log_file = tmp_path / "hook.log"
    script = write_notify_script(tmp_path / "notify.sh", stack.oneshot_config_path, lifetime=300, log_file=log_file)
    assert notify(script, "198.51.100.9", "incoming", "5000", "ban", stdin="details").returncode == EXIT_OK
    assert "via one-shot" in log_file.read_text()
    assert active(stack, "198.51.100.9/32", oneshot=True)
    assert notify(script, "198.51.100.9", "incoming", "0", "unban").returncode == EXIT_OK
    wait_for(lambda: not active(stack, "198.51.100.9/32", oneshot=True), 10, "the withdrawal", interval=0.2)
    assert mapping(stack) == {}


def test_bad_calls_and_unreachable_server_end_quickly(stack: ProcessStack, tmp_path: Path):
    log_file = tmp_path / "hook.log"
    script = write_notify_script(tmp_path / "notify.sh", stack.oneshot_config_path, timeout=3, log_file=log_file)
    assert notify(script, "not-an-ip", "incoming", "1", "ban").returncode == EXIT_USAGE
    assert notify(script, "203.0.113.7", "incoming", "1", "explode").returncode == EXIT_USAGE
    assert notify(script, "203.0.113.7", "incoming").returncode == EXIT_USAGE
    # Nothing to do needs no server: an unban we never banned, an outgoing attack, attack details.
    assert notify(script, "203.0.113.7", "incoming", "0", "unban").returncode == EXIT_OK
    assert notify(script, "203.0.113.7", "outgoing", "9000", "ban", stdin=DETAILS).returncode == EXIT_OK
    assert notify(script, "203.0.113.7", "incoming", "9000", "attack_details", stdin=DETAILS).returncode == EXIT_OK
    # No server listens: FastNetMon gets a failure status within the hook's 3 s budget, not a hang.
    started = time.monotonic()
    failed = notify(script, "203.0.113.7", "incoming", "9000", "ban", stdin=DETAILS)
    assert failed.returncode == EXIT_UNAVAILABLE
    assert time.monotonic() - started < 8.0
    assert mapping(stack) == {}
    assert "ERROR" in log_file.read_text()


@pytest.mark.lab
def test_real_fastnetmon_detects_a_flood_and_the_router_drops_it(lab, table_name: str, tmp_path: Path):
    """FastNetMon (AF_PACKET on the router's attacker-facing interface) detects the flood and runs our hook; the
    DOTS server's nftables actuator then drops the flood there; once the flood is over FastNetMon unbans and the
    hook withdraws, leaving no nft table behind."""
    from opendots.lab import Flood, VictimTally

    mitigator = {"type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name}
    directory = tmp_path / "fastnetmon"
    victim, port = str(lab.victim_v4[0]), 5000 + secrets.randbelow(1000)
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    with ProcessStack(tmp_path / "stack", [mitigator]) as stack:
        stack.start_server()
        stack.start_agent()
        hook_log = tmp_path / "hook.log"
        directory.mkdir()
        script = write_notify_script(directory / "notify.sh", stack.client_config_path, lifetime=600, log_file=hook_log)
        networks = "203.0.113.0/24\n2001:db8:b::/64\n"
        attack = None
        try:
            with running_fastnetmon(lab, directory, script, tmp_path / "fastnetmon.log", networks):
                attack = Flood(lab.attacker, victim, port, count=60_000, duration=10.0, pps=3_000)
                wait_for(lambda: table_listing(lab, table_name), 15, "FastNetMon's ban to reach the router", 0.1)
                wait_for(lambda: victim in (table_listing(lab, table_name) or ""), 5, "the victim's rule", 0.1)
                time.sleep(0.2)  # let packets already past the router arrive, then nothing more may
                reached = tally.count(port)
                sent = attack.wait()
                assert tally.count(port) - reached <= 5, "the flood kept reaching the victim after the ban"
                assert reached < sent.sent * 0.8, "the ban came too late to matter"
                log_text = hook_log.read_text()
                assert f"ban {victim} (incoming" in log_text and "via agent" in log_text
                # RFC 9244 §8.2: the attack reported as telemetry before the mitigation request; FastNetMon's
                # sampled packets come in a later attack_details call, whose report names the attacker as a top
                # talker.
                reported = re.search(rf"ban {victim}: telemetry tmid \d+ 2\.04 via agent", log_text)
                assert reported is not None and log_text.index(reported.group(0)) < log_text.index(
                    f"ban {victim} (incoming"
                )
                pattern = rf"attack_details {victim}: telemetry tmid \d+ 2\.04 via agent \((\d+) top talkers\)"
                wait_for(lambda: re.search(pattern, hook_log.read_text()), 10, "the attack details' telemetry", 0.2)
                talkers = re.search(pattern, hook_log.read_text())
                assert talkers is not None and int(talkers.group(1)) >= 1, hook_log.read_text()
                # The flood is over: FastNetMon unbans after ban_time, the hook withdraws, the table goes away.
                wait_for(lambda: table_listing(lab, table_name) is None, 20, "unban to withdraw the mitigation", 0.2)
                assert f"unban {victim}: mitigation mid" in hook_log.read_text()
                assert re.search(rf"unban {victim}: telemetry tmid \d+ deleted \(2\.02\)", hook_log.read_text())
        finally:
            if attack is not None:
                attack.stop()
            lab.router.run(["nft", "delete", "table", "netdev", table_name], check=False)


def table_listing(lab, table: str) -> str | None:
    result = lab.router.run(["nft", "list", "table", "netdev", table], check=False)
    return result.stdout if result.returncode == 0 else None
