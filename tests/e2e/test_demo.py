"""The main job (`opendots demo`) runs end to end as a real process and cleans up after itself."""

from __future__ import annotations

import subprocess
import sys


def test_demo_signals_a_mitigation_end_to_end(tmp_path):
    keep = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "opendots", "demo", "--keep", str(keep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "session up:" in out
    assert "→ PUT /.well-known/dots/mitigate/cuid=" in out and "← 2.01" in out  # mitigation created
    assert "⇐ notification 2.05" in out and "attack-successfully-mitigated" in out  # Observe works
    assert "→ PUT /.well-known/dots/config/sid=" in out  # session configuration changed
    assert "→ DELETE /.well-known/dots/mitigate/cuid=" in out and "← 2.02" in out  # withdrawn
    assert "done: 1 notification(s) received" in out
    # The server stored and then released the mitigation in the SQLite database it was given.
    assert (keep / "opendots.db").exists()
