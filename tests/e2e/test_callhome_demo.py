"""`opendots demo --lab --call-home` end to end, as a process: the CPE maps the ISP's public source to the internal
host (RFC 9066 §5.3.2), the compromised host is cut off, the legitimate one is not, and nothing is left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def test_call_home_lab_demo_shows_the_compromised_host_cut_off_and_cleans_up(callhome_lab_reason: str | None) -> None:
    if callhome_lab_reason is not None:
        pytest.skip(callhome_lab_reason)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "opendots", "demo", "--lab", "--call-home", "--transport", "tls"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Call Home session up" in result.stdout
    assert re.search(r"192\.0\.2\.2/32 is internal host\(s\) 10\.77\.0\.10 \(NAT lookup", result.stdout)
    assert int(re.search(r"pkts-dropped (\d+)", result.stdout).group(1)) > 0
    assert "203.0.113.2/32 from 192.0.2.2/32 = 10.77.0.10" in result.stdout  # the CPE operator's table
    namespaces = re.search(r"lab: (\S+) -> (\S+) \(NAT\) -> (\S+) -> (\S+)", result.stdout).groups()
    assert not any(os.path.exists(f"/run/netns/{name}") for name in namespaces)


def test_call_home_demo_needs_the_lab_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opendots", "demo", "--call-home"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2 and "--call-home runs in the lab" in result.stderr
