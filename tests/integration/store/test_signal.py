"""The SQLite signal store survives SIGKILL: every acknowledged mitigation of a writer process killed mid-run is
recovered by the next server (a real child process on a real SQLite file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import REPOSITORY
from tests.helpers.signal_harness import ALPHA_CUID, SCOPE, T0, make_harness

ROOT = REPOSITORY


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from tests.helpers.signal_harness import make_harness, scope_body
    from pathlib import Path
    h = make_harness(Path(sys.argv[1]))
    h.now = float(sys.argv[2])
    for mid in range(1, 51):
        prefix = f"2001:db8:6401::{mid:x}/128"
        response = h.put(mid, scope_body(target_prefix=[prefix], lifetime=1000 + mid))
        assert response.code == "2.01", response
        print(mid, flush=True)   # acknowledged: the response exists only after the commit
    time.sleep(60)
    """
)


def _killed_after(script: str, tmp_path: Path, lines: int) -> list[str]:
    """Run SCRIPT on the store in TMP_PATH, read LINES acknowledgements from it, then SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path), str(T0)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[str] = []
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            acknowledged.append(line)
            if len(acknowledged) == lines:
                break
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    return acknowledged


def test_acknowledged_mitigations_survive_sigkill(tmp_path: Path):
    acknowledged = [int(line) for line in _killed_after(KILLED_WRITER, tmp_path, 50)]
    assert acknowledged == list(range(1, 51))
    h = make_harness(tmp_path)
    h.now = T0 + 100
    h.restart()
    scopes = h.get().body[SCOPE]["scope"]
    assert [e["mid"] for e in scopes] == acknowledged
    assert [e["lifetime"] for e in scopes] == [1000 + mid - 100 for mid in acknowledged]
    assert h.get(1, cuid=ALPHA_CUID).code == "2.05"


REFRESHING_WRITER = textwrap.dedent(
    """
    import sys, time
    from tests.helpers.signal_harness import make_harness, scope_body
    from pathlib import Path
    h = make_harness(Path(sys.argv[1]), renewal_slack=30.0)
    h.now = float(sys.argv[2])
    bodies = {mid: scope_body(target_prefix=[f"2001:db8:6401::{mid:x}/128"], lifetime=600) for mid in range(1, 11)}
    for mid, body in bodies.items():
        assert h.put(mid, body).code == "2.01"
    for step in range(200):   # refreshes every 0.7 s of the fake clock, most of them within the slack
        h.now += 0.7
        mid = step % 10 + 1
        response = h.put(mid, bodies[mid])
        assert response.code == "2.04", response
        print(mid, repr(h.now + 600), flush=True)   # acknowledged: the mitigation now lasts until then
    time.sleep(60)
    """
)


def test_refreshes_written_behind_lose_nothing_when_the_server_is_killed(tmp_path: Path):
    """[signal] renewal_slack: a server killed after acknowledging refreshes it did not all write comes back with
    every mitigation lasting at least as long as its last acknowledged refresh granted, and at most the slack
    longer (RFC 9132 §4.4.1)."""
    granted: dict[int, float] = {}
    for line in _killed_after(REFRESHING_WRITER, tmp_path, 200):
        mid, until = line.split()
        granted[int(mid)] = float(until)  # the last acknowledged refresh of each mid counts
    h = make_harness(tmp_path, renewal_slack=30.0)
    rows = {row[1]: row[8] for row in h.dump()["signal_mitigations"]}  # mid: expires_at
    assert sorted(rows) == sorted(granted) == list(range(1, 11))
    for mid, until in granted.items():
        assert until <= rows[mid] <= until + 30.0, (mid, until, rows[mid])
    h.now = max(granted.values()) - 1
    h.restart()
    assert [e["mid"] for e in h.get().body[SCOPE]["scope"]] == list(range(1, 11))
