"""The top-talker policy for real ([mitigation] top_talker_policy = "sources-first"): several attack sources and one
legitimate source flood the victim; the client reports RFC 9244 telemetry naming top talkers (`opendots client
telemetry report`, §8.2) and asks for mitigation; the server's nftables actuator on the router drops the named
sources first, and widens to the whole scope when what still reaches the victim does not fall.

Everything is asserted from the router's nft counters and the victim's received packets (nft tallies), never from
durations; the waits are bounded polls.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendots.lab import Flood, FloodResult, Lab, VictimTally
from opendots.lab.processes import ProcessStack, wait_for
from opendots.mitigate.nftables_ruleset import counter_name
from opendots.mitigate.nftables_watch import passed_counter_name

pytestmark = pytest.mark.lab
POLICY = {
    "top_talker_policy": "sources-first",
    "top_talker_window": 3,  # seconds of counting before the narrow drop is judged
    "top_talker_max_passed_share": 0.2,
    "top_talker_min_passed_pps": 300,  # the legitimate source sends 100 pps: never a reason to widen
}
ATTACK_PPS = 1_000  # per attack source
LEGIT_PPS = 100
DURATION = 12.0


@pytest.fixture
def stack(lab: Lab, table_name: str, tmp_path: Path) -> Iterator[ProcessStack]:
    mitigator = {"type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name}
    with ProcessStack(tmp_path / "stack", [mitigator], mitigation=POLICY, admin=True) as running:
        try:
            yield running
        finally:
            running.close()
            for table in (table_name, f"{table_name}_tt"):
                lab.router.run(["nft", "delete", "table", "netdev", table], check=False)


def counters(lab: Lab, table: str) -> dict[str, int]:
    """Packets of every named counter of TABLE on the router ({} when the table is gone)."""
    result = lab.router.run(["nft", "-j", "list", "counters", "table", "netdev", table], check=False)
    if result.returncode != 0:
        return {}
    items = json.loads(result.stdout)["nftables"]
    return {item["counter"]["name"]: item["counter"]["packets"] for item in items if "counter" in item}


def table_listing(lab: Lab, table: str) -> str | None:
    result = lab.router.run(["nft", "list", "table", "netdev", table], check=False)
    return result.stdout if result.returncode == 0 else None


def policy_of(stack: ProcessStack, mid: int) -> dict[str, Any] | None:
    """The top-talker policy's status of mitigation MID, from the operator's socket (`opendots admin`)."""
    answer = stack.admin("mitigations", "--json")
    assert answer.returncode == 0, answer.stderr
    entry = next(e for e in json.loads(answer.stdout)["mitigations"] if e["mid"] == mid)
    return entry.get("top-talkers")


def report_and_mitigate(stack: ProcessStack, victim: str, talkers: list[str]) -> int:
    """RFC 9244 §8.2 telemetry naming TALKERS, then the mitigation request for the same target (one-shot CLI)."""
    options = [word for talker in talkers for word in ("--top-talker", talker)]
    report = stack.cli(
        "client", "telemetry", "report", "--target-prefix", f"{victim}/32", *options, "--attack-id", "1", oneshot=True
    )
    assert report.returncode == 0 and "2.04" in report.stdout, report.stdout + report.stderr
    result = stack.cli("client", "mitigate", "--target-prefix", f"{victim}/32", "--lifetime", "600", oneshot=True)
    assert result.returncode == 0 and ": 2.01 " in result.stdout, result.stdout + result.stderr
    return int(result.stdout.split()[1].rstrip(":"))


def start_floods(lab: Lab, victim: str, attack_port: int, legit_port: int) -> tuple[list[Flood], Flood]:
    attackers = lab.attacker_sources(3, first=10)
    legitimate = lab.attacker_sources(1, first=20)[0]
    count = int(ATTACK_PPS * DURATION)
    floods = [
        Flood(lab.attacker, victim, attack_port, count=count, duration=DURATION, pps=ATTACK_PPS, source_address=str(a))
        for a in attackers
    ]
    legit = Flood(
        lab.attacker,
        victim,
        legit_port,
        count=int(LEGIT_PPS * DURATION),
        duration=DURATION,
        pps=LEGIT_PPS,
        source_address=str(legitimate),
    )
    return floods, legit


def finish(floods: list[Flood], legit: Flood) -> tuple[int, FloodResult]:
    try:
        attack_sent = sum(flood.wait().sent for flood in floods)
        return attack_sent, legit.wait()
    finally:
        for flood in [*floods, legit]:
            flood.stop()


def test_named_top_talkers_are_dropped_first_and_the_legitimate_source_keeps_flowing(
    stack: ProcessStack, lab: Lab, table_name: str
):
    victim = str(lab.victim_v4[0])
    attack_port, legit_port = (20000 + secrets.randbelow(20000) for _ in range(2))
    tally = VictimTally(lab.victim, [attack_port, legit_port], table=f"tally{secrets.token_hex(3)}")
    stack.start_server()
    floods, legit = start_floods(lab, victim, attack_port, legit_port)
    try:
        wait_for(lambda: tally.count(attack_port) >= 1_000, 10, "the flood to reach the victim")
        mid = report_and_mitigate(stack, victim, ["198.51.100.10", "198.51.100.11", "198.51.100.12"])
        key = f"{stack.cuid}/{mid}"
        wait_for(lambda: counters(lab, table_name).get(counter_name(key), 0) > 0, 10, "the first dropped packet")
        delivered_at_mitigation = tally.count(attack_port)
        legit_at_mitigation = tally.count(legit_port)
        # Narrow: the named sources in the router's table, and a passed-traffic counter behind the drop.
        listing = table_listing(lab, table_name) or ""
        assert "198.51.100.10" in listing and "198.51.100.20" not in listing
        # The policy judges the narrow drop after its window: what passes (100 pps) is no reason to widen.
        held = wait_for(
            lambda: (p := policy_of(stack, mid)) and p["reason"].startswith("holding") and p, 15, "a judgement"
        )
        assert held["phase"] == "narrow" and held["sources"] == [
            "198.51.100.10/32",
            "198.51.100.11/32",
            "198.51.100.12/32",
        ]
        assert "dropping 3 named top talkers only" in held["summary"]
    finally:
        attack_sent, legit_result = finish(floods, legit)
    leaked = tally.count(attack_port) - delivered_at_mitigation
    dropped = counters(lab, table_name)[counter_name(key)]
    passed = counters(lab, f"{table_name}_tt")[passed_counter_name(key)]
    assert leaked <= 5, f"{leaked} attack packets reached the victim after the router started dropping"
    assert dropped + delivered_at_mitigation + leaked <= attack_sent
    assert dropped >= 0.95 * (attack_sent - delivered_at_mitigation)  # the rest: in flight before the first drop
    # The legitimate source was never dropped: everything it sent arrived, and the watch counted what passed.
    legit_delivered = tally.count(legit_port)
    assert legit_delivered >= 0.95 * legit_result.sent
    assert passed >= legit_delivered - legit_at_mitigation - 5
    assert passed <= legit_result.sent + leaked
    assert policy_of(stack, mid)["phase"] == "narrow"  # type: ignore[index]


def test_talkers_that_are_not_the_attackers_make_the_policy_widen_to_the_whole_scope(
    stack: ProcessStack, lab: Lab, table_name: str
):
    victim = str(lab.victim_v4[1])
    attack_port, legit_port = (20000 + secrets.randbelow(20000) for _ in range(2))
    tally = VictimTally(lab.victim, [attack_port, legit_port], table=f"tally{secrets.token_hex(3)}")
    stack.start_server()
    floods, legit = start_floods(lab, victim, attack_port, legit_port)
    try:
        wait_for(lambda: tally.count(attack_port) >= 1_000, 10, "the flood to reach the victim")
        # Decoys: the client names sources that send nothing.
        mid = report_and_mitigate(stack, victim, ["198.51.100.30", "198.51.100.31"])
        key = f"{stack.cuid}/{mid}"
        wait_for(lambda: passed_counter_name(key) in counters(lab, f"{table_name}_tt"), 10, "the narrow drop")
        assert counters(lab, table_name)[counter_name(key)] == 0  # the decoys' drop catches nothing
        narrow_delivered = tally.count(attack_port)
        # Nothing falls: the policy widens, in one batch, to the whole scope; the watch table goes with it.
        wait_for(lambda: table_listing(lab, f"{table_name}_tt") is None, 20, "the widening")
        delivered_at_widening = tally.count(attack_port)
        status = policy_of(stack, mid)
        assert status is not None and status["phase"] == "wide", status
        assert status["reason"].startswith("widened:") and "whole scope" in status["summary"]
    finally:
        attack_sent, _ = finish(floods, legit)
    leaked = tally.count(attack_port) - delivered_at_widening
    dropped = counters(lab, table_name)[counter_name(key)]
    assert delivered_at_widening - narrow_delivered >= 1_000  # the attack kept arriving while only decoys were dropped
    assert leaked <= 5, f"{leaked} attack packets reached the victim after the widening"
    assert dropped >= 0.95 * (attack_sent - delivered_at_widening)
    assert "198.51.100.30" not in (table_listing(lab, table_name) or "")
