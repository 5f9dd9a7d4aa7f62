"""What `opendots client` prints, against a real `opendots server` (the lossy namespace without loss): sentences
that say what the server did, protocol names, readable RTTs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.loss_lab import AgentProcess, LossyServer, lossy_environment


@pytest.fixture(scope="module")
def served(lab_reason: str | None, pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LossyServer]:
    if lab_reason is not None:
        pytest.skip(lab_reason)
    with lossy_environment(), LossyServer(tmp_path_factory.mktemp("cli"), pki_dir) as server:
        yield server


def test_withdrawing_an_unknown_mid_does_not_claim_a_withdrawal(served: LossyServer) -> None:
    """RFC 9132 §4.4.4: 2.02 Deleted even for a mid the server never held."""
    config = served.client_config("dtls", "withdraw")
    run = served.cli(config, "withdraw", "--mid", "99")
    assert run.returncode == 0, run.stderr
    assert "withdrawn" not in run.stdout
    assert run.stdout == "mid 99: 2.02 Deleted: the server holds no active mitigation with this mid now\n"


def test_a_request_that_overlaps_older_mids_names_the_ones_it_replaces(served: LossyServer) -> None:
    """RFC 9132 §4.4.1: the overlapped lower mids are deleted at the server."""
    config = served.client_config("dtls", "overlap")
    first = served.cli(config, "mitigate", "--target-prefix", "203.0.113.0/28", "--protocol", "udp")
    mid = int(re.match(r"mid (\d+):", first.stdout).group(1))  # type: ignore[union-attr]
    assert "replaces" not in first.stdout
    second = served.cli(config, "mitigate", "--target-prefix", "203.0.113.8/32")
    assert second.returncode == 0, second.stderr
    assert f"replaces overlapping mid {mid}: deleted at the server" in second.stdout
    assert mid not in served.held()
    status = served.cli(config, "status")
    header, *rows = status.stdout.splitlines()
    assert "PROTO" in header and not any(" 17 " in row for row in rows)


def test_status_and_session_print_protocol_names_and_a_readable_rtt(served: LossyServer) -> None:
    config = served.client_config("dtls", "session")
    created = served.cli(config, "mitigate", "--target-prefix", "198.51.100.7/32", "--protocol", "udp")
    mid = int(re.match(r"mid (\d+):", created.stdout).group(1))  # type: ignore[union-attr]
    status = served.cli(config, "status", "--mid", str(mid))
    row = status.stdout.splitlines()[1].split()
    assert row[0] == str(mid) and "udp" in row and "17" not in row, status.stdout
    agent = AgentProcess(served, config)
    try:
        agent.wait_connected(20)
        session = served.cli(config, "session")
        rtt = next(line for line in session.stdout.splitlines() if line.startswith("rtt "))
        assert re.fullmatch(r"rtt\s+\d+\.\d ms", rtt), rtt
        activity = next(line for line in session.stdout.splitlines() if line.startswith("activity "))
        assert activity.split(None, 1)[1] == "connected to localhost"
    finally:
        agent.stop()
