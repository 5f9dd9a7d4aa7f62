"""The whole chain for real: a flood from the attacker namespace, `opendots client mitigate` (a CLI process) to an
`opendots server` process, whose nftables actuator drops the flood on the router's attacker-facing interface.

The server runs in the root namespace on loopback and drives nft inside the router namespace (`netns`); the
counters the client reads back (GET, Observe) are compared with the router's nft named counter read directly.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendots.lab import Flood, Lab, VictimTally, flood
from opendots.lab.processes import ProcessStack, wait_for
from opendots.mitigate.nftables_ruleset import counter_name

pytestmark = pytest.mark.lab
SCOPE_KEY = "ietf-dots-signal-channel:mitigation-scope"


@pytest.fixture
def stack(lab: Lab, table_name: str, tmp_path: Path) -> Iterator[ProcessStack]:
    mitigator = {"type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name}
    with ProcessStack(tmp_path / "stack", [mitigator]) as running:
        try:
            yield running
        finally:
            running.close()
            lab.router.run(["nft", "delete", "table", "netdev", table_name], check=False)


def table_listing(lab: Lab, table: str) -> str | None:
    result = lab.router.run(["nft", "list", "table", "netdev", table], check=False)
    return result.stdout if result.returncode == 0 else None


def nft_counter(lab: Lab, table: str, key: str) -> tuple[int, int]:
    """(packets, bytes) of the mitigation's named counter, read straight from the router's kernel."""
    listing = lab.router.run(["nft", "-j", "list", "counter", "netdev", table, counter_name(key)]).stdout
    counter = next(item["counter"] for item in json.loads(listing)["nftables"] if "counter" in item)
    return counter["packets"], counter["bytes"]


def mitigate(stack: ProcessStack, target: str, *, oneshot: bool) -> int:
    result = stack.cli("client", "mitigate", "--target-prefix", target, "--lifetime", "600", oneshot=oneshot)
    assert result.returncode == 0, result.stderr
    assert ": 2.01 " in result.stdout, result.stdout  # "mid N: 2.01 (lifetime 600 s)"
    return int(result.stdout.split()[1].rstrip(":"))


def withdraw(stack: ProcessStack, mid: int, *, oneshot: bool) -> None:
    result = stack.cli("client", "withdraw", "--mid", str(mid), oneshot=oneshot)
    assert result.returncode == 0, result.stderr
    assert "2.02 Deleted" in result.stdout


def entry_of(entries: list[dict[str, Any]], mid: int) -> dict[str, Any]:
    return next((entry for entry in entries if entry.get("mid") == mid), {})


def dropped(entry: dict[str, Any]) -> tuple[int | None, int | None]:
    """(pkts-dropped, bytes-dropped) of a status entry; YANG-JSON carries uint64 values as strings."""
    packets, bytes_ = entry.get("pkts-dropped"), entry.get("bytes-dropped")
    return (None if packets is None else int(packets)), (None if bytes_ is None else int(bytes_))


def reported_counters_match(stack: ProcessStack, lab: Lab, table: str, key: str, mid: int, oneshot: bool) -> bool:
    """GET /mitigate (`client status --json --refresh`) reports exactly what the router's counter holds."""
    entry = entry_of(stack.status_entries(oneshot=oneshot), mid)
    packets, bytes_ = nft_counter(lab, table, key)
    return dropped(entry) == (packets, bytes_)


def test_flood_mitigated_through_cli_and_agent_then_withdrawn(stack: ProcessStack, lab: Lab, table_name: str):
    port = 20000 + secrets.randbelow(20000)
    victim = str(lab.victim_v4[0])
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    stack.start_server()
    stack.start_agent()

    # One bounded flood spans the whole exchange: delivered before the mitigation, dropped after it.
    running = Flood(lab.attacker, victim, port, count=40_000, duration=8.0, pps=5_000)
    try:
        wait_for(lambda: tally.count(port) >= 1_000, 10, "the flood to reach the victim")
        mid = mitigate(stack, f"{victim}/32", oneshot=False)  # through the agent's control socket
        key = f"{stack.cuid}/{mid}"
        wait_for(lambda: table_listing(lab, table_name), 10, "the nft table on the router")
        # Counting starts once the router counts drops: everything the victim gets after that is a leak.
        wait_for(lambda: nft_counter(lab, table_name, key)[0] > 0, 10, "the first dropped packet")
        delivered_at_mitigation = tally.count(port)
        sent = running.wait()
    finally:
        running.stop()
    leaked = tally.count(port) - delivered_at_mitigation
    dropped_packets, dropped_bytes = nft_counter(lab, table_name, key)
    assert delivered_at_mitigation >= 1_000
    assert leaked <= 5, f"{leaked} packets reached the victim after the router started dropping"
    assert dropped_packets > 0 and dropped_packets + delivered_at_mitigation + leaked <= sent.sent
    assert dropped_bytes == dropped_packets * (64 + 8 + 20)  # 64-byte payload + UDP + IPv4 headers

    # GET (through the agent, refreshed from the server) carries exactly the router's counters: the flood is over,
    # so they no longer move; the server polls its mitigator periodically, hence the bounded wait.
    wait_for(
        lambda: reported_counters_match(stack, lab, table_name, key, mid, oneshot=False),
        25,
        "status --json to report the nft counter",
        interval=0.5,
    )
    # An efficacy update makes the server notify the observing agent: the notification carries the counters.
    efficacy = stack.cli("client", "efficacy", "--mid", str(mid), "--attack-status", "under-attack")
    assert efficacy.returncode == 0, efficacy.stderr

    def observed() -> bool:
        with stack.control() as control:
            records = control.status(mid)["mitigations"]
        return any(dropped(record["last-entry"]) == (dropped_packets, dropped_bytes) for record in records)

    wait_for(observed, 10, "an Observe notification with the counters", interval=0.1)

    withdraw(stack, mid, oneshot=False)
    wait_for(lambda: table_listing(lab, table_name) is None, 10, "the nft table to be removed")
    before = tally.count(port)
    after = flood(lab.attacker, victim, port, count=500, duration=3.0, pps=2_000)
    wait_for(lambda: tally.count(port) - before >= after.sent * 0.95, 5, "traffic to flow again after withdraw")
    assert table_listing(lab, table_name) is None


def test_mitigation_survives_server_sigkill_and_restart(stack: ProcessStack, lab: Lab, table_name: str):
    port = 20000 + secrets.randbelow(20000)
    victim = str(lab.victim_v4[1])
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    stack.start_server()
    mid = mitigate(stack, f"{victim}/32", oneshot=True)
    key = f"{stack.cuid}/{mid}"
    wait_for(lambda: table_listing(lab, table_name), 10, "the nft table on the router")
    first = flood(lab.attacker, victim, port, count=1_000, duration=3.0, pps=5_000)
    assert tally.count(port) == 0
    dropped_before_kill = wait_for(lambda: (c := nft_counter(lab, table_name, key))[0] >= first.sent and c, 5, "drops")

    stack.kill_server()
    # Nobody is left to enforce anything, yet the kernel keeps dropping: enforcement outlives the process.
    assert table_listing(lab, table_name) is not None
    second = flood(lab.attacker, victim, port, count=1_000, duration=3.0, pps=5_000)
    assert tally.count(port) == 0
    dropped_while_down = wait_for(
        lambda: (c := nft_counter(lab, table_name, key))[0] >= dropped_before_kill[0] + second.sent and c,
        5,
        "drops while the server is down",
    )

    stack.start_server()  # same database: the mitigation is restored with its counter
    assert nft_counter(lab, table_name, key)[0] >= dropped_while_down[0], "restart reset the counter"
    wait_for(
        lambda: reported_counters_match(stack, lab, table_name, key, mid, oneshot=True),
        25,
        "status after restart to report the continued counter",
        interval=0.5,
    )
    entry = entry_of(stack.status_entries(oneshot=True), mid)
    assert dropped(entry)[0] >= dropped_while_down[0]
    assert entry["status"] == "attack-mitigation-in-progress"

    withdraw(stack, mid, oneshot=True)
    wait_for(lambda: table_listing(lab, table_name) is None, 10, "the nft table to be removed")
    tables = lab.router.run(["nft", "list", "tables"]).stdout
    assert table_name not in tables
    before = tally.count(port)
    after = flood(lab.attacker, victim, port, count=500, duration=3.0, pps=2_000)
    wait_for(lambda: tally.count(port) - before >= after.sent * 0.95, 5, "traffic to flow again after withdraw")


def test_agent_keeps_observing_a_mitigation_through_server_sigkill_and_restart(
    stack: ProcessStack, lab: Lab, table_name: str
):
    """The long-running agent's view: enforcement outlives the killed server, the agent finds the restarted one
    again by itself, and the counters it holds (Observe notifications, no explicit refresh) continue from the
    kernel's, never reset.

    A killed server sends no close_notify, and a restarted one silently drops records of the sessions it lost: only
    unanswered heartbeats tell the agent (RFC 9132 §4.7), so the session asks for 1 s heartbeats, 3 missed allowed;
    during a mitigation the agent then opens a new session alongside the old one."""
    port = 20000 + secrets.randbelow(20000)
    victim = str(lab.victim_v4[1])
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    stack.start_server()
    stack.start_agent()
    mid = mitigate(stack, f"{victim}/32", oneshot=False)
    key = f"{stack.cuid}/{mid}"
    wait_for(lambda: table_listing(lab, table_name), 10, "the nft table on the router")
    configured = stack.cli("client", "config", "set", "--heartbeat-interval", "1", "--missing-hb-allowed", "3")
    assert configured.returncode == 0, configured.stderr

    def agent_counters() -> int:
        with stack.control() as control:
            records = control.status(mid)["mitigations"]
        return max((dropped(record.get("last-entry", {}))[0] or 0 for record in records), default=0)

    first = flood(lab.attacker, victim, port, count=1_000, duration=3.0, pps=5_000)
    wait_for(lambda: agent_counters() >= first.sent, 15, "the agent to observe the first drops")

    stack.kill_server()
    second = flood(lab.attacker, victim, port, count=1_000, duration=3.0, pps=5_000)
    assert tally.count(port) == 0, "the flood reached the victim while the server was down"
    while_down = wait_for(
        lambda: (c := nft_counter(lab, table_name, key)[0]) >= first.sent + second.sent and c, 5, "kernel drops"
    )

    stack.start_server()
    wait_for(lambda: agent_counters() >= while_down, 30, "the agent to observe the drops made while down")
    with stack.control() as control:
        (record,) = control.status(mid)["mitigations"]
    assert record["last-entry"]["status"] == "attack-mitigation-in-progress"

    withdraw(stack, mid, oneshot=False)
    wait_for(lambda: table_listing(lab, table_name) is None, 10, "the nft table to be removed")
