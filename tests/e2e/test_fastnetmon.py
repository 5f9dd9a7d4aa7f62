"""The FastNetMon notify hook, invoked exactly as FastNetMon does (argv + stdin), against a real `opendots server`
and `opendots client run` (processes); and, where FastNetMon can run here, FastNetMon itself in the lab."""

from __future__ import annotations

import json
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
from opendots.integrations.stack import ProcessStack, wait_for

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
