"""FastNetMon's attack_details call racing its ban: both notify scripts run at once, so the details' hook may start
before the ban's has recorded the mitigation; the top talkers must still reach the server (RFC 9244 §8.2)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.integrations.fastnetmon import EXIT_OK, write_notify_script
from opendots.lab.processes import ProcessStack

DETAILS = (
    "IP: 203.0.113.7\nAttack type: udp_flood\nInitial attack power: 25000 packets per second\n"
    "2026-12-07 01:16:10.774769 198.51.100.51:37491 > 203.0.113.7:5000 protocol: udp frag: 0  packets: 1 size: 106 "
    "bytes ttl: 64 sample ratio: 1\n"
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ProcessStack]:
    with ProcessStack(tmp_path / "stack", [{"type": "logging"}]) as running:
        yield running


def test_attack_details_arriving_before_the_ban_is_recorded_still_report_the_top_talkers(
    stack: ProcessStack, tmp_path: Path
):
    stack.start_server()
    stack.start_agent()
    log_file = tmp_path / "hook.log"
    script = write_notify_script(tmp_path / "notify.sh", stack.client_config_path, lifetime=600, log_file=log_file)
    details = subprocess.Popen(
        [str(script), "203.0.113.7", "incoming", "25000", "attack_details"], stdin=subprocess.PIPE, text=True
    )
    details.stdin.write(DETAILS)  # type: ignore[union-attr]
    details.stdin.close()  # type: ignore[union-attr]
    ban = subprocess.run(
        [str(script), "203.0.113.7", "incoming", "25000", "ban"], input="IP: 203.0.113.7\n", text=True, timeout=30
    )
    assert ban.returncode == EXIT_OK
    assert details.wait(timeout=30) == EXIT_OK
    text = log_file.read_text()
    assert "attack_details 203.0.113.7: telemetry tmid 1 2.04 via agent (1 top talkers)" in text, text
    answer = stack.cli("client", "telemetry", "show", "--json")
    assert answer.returncode == 0, answer.stderr
    talkers = json.loads(answer.stdout)["ietf-dots-telemetry:telemetry"]["pre-or-ongoing-mitigation"][0]
    assert talkers["attack-detail"][0]["top-talker"]["talker"][0]["source-prefix"] == "198.51.100.51/32"
