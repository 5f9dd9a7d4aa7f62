"""Durable client state across processes: a client process killed without closing anything does not make the
next one reuse its mid (real child processes on one SQLite file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CUID = "dz6pHjaADkaFTbjr0JGBpw"


def test_a_killed_process_does_not_make_the_next_one_reuse_its_mid(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    script = (
        "import os, sys\n"
        "from opendots.store.client_state import ClientStateStore\n"
        f"store = ClientStateStore({str(path)!r}, {CUID!r})\n"
        "print(store.allocate_mid(), flush=True)\n"
        "os._exit(9)  # die without closing anything\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (first.returncode, second.returncode) == (9, 9), first.stderr + second.stderr
    assert (int(first.stdout), int(second.stdout)) == (0, 1)
