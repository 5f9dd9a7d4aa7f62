"""`opendots demo --lab` (run_lab_demo) end to end, as a process: it reports the drop and leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def test_lab_demo_shows_the_drop_and_cleans_up(lab_reason: str | None):
    if lab_reason is not None:
        pytest.skip(lab_reason)
    code = "from opendots.cli.demo_lab import run_lab_demo; raise SystemExit(run_lab_demo())"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environment, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    before = float(re.search(r"before mitigation:\s+(\d+) packets/s", result.stdout).group(1))
    after = float(re.search(r"after  mitigation:\s+(\d+) packets/s", result.stdout).group(1))
    assert before > 1_000 and after < before / 10
    dropped = re.search(r"router dropped (\d+) \((\d+) bytes\)", result.stdout)
    reported = re.search(r"pkts-dropped (\d+), bytes-dropped (\d+)", result.stdout)
    assert dropped and reported and dropped.groups() == reported.groups() and int(dropped.group(1)) > 0
    namespaces = re.search(r"attacker (\S+) -> router (\S+) -> victim (\S+)", result.stdout).groups()
    assert not any(os.path.exists(f"/run/netns/{name}") for name in namespaces)
