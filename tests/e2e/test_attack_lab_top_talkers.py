"""The top-talker policy for real ([mitigation] top_talker_policy = "sources-first"): several attack sources and one
legitimate source flood the victim; the client reports RFC 9244 telemetry naming top talkers (`opendots client
telemetry report`, §8.2) and asks for mitigation; the server's nftables actuator on the router drops the named
sources first, and widens to the whole scope when what still reaches the victim does not fall.

Everything is asserted from the router's nft counters and the victim's received packets (nft tallies), never from
durations; the waits are bounded polls.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opendots.integrations.fastnetmon import write_notify_script
from opendots.lab import Flood, FloodResult, Lab, VictimTally
from opendots.lab.processes import ProcessStack, wait_for
from opendots.mitigate.nftables_ruleset import counter_name
from opendots.mitigate.nftables_watch import passed_counter_name
from tests.helpers.fastnetmon import running_fastnetmon
from tests.helpers.nft import named_counters, table_listing

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


@dataclass
class Attack:
    """Three attack sources (198.51.100.10-12) flooding one victim port, one legitimate source (.20) another."""

    victim: str
    tally: VictimTally
    attack_port: int
    legit_port: int
    floods: list[Flood]
    legit: Flood

    def finish(self) -> tuple[int, FloodResult]:
        """(attack packets sent, the legitimate flood's result) once every flood is over."""
        try:
            return sum(flood.wait().sent for flood in self.floods), self.legit.wait()
        finally:
            for flood in [*self.floods, self.legit]:
                flood.stop()


def start_attack(stack: ProcessStack, lab: Lab, victim: str) -> Attack:
    """Start the server and the floods toward VICTIM; return once the attack reaches it."""
    attack_port, legit_port = (20000 + secrets.randbelow(20000) for _ in range(2))
    tally = VictimTally(lab.victim, [attack_port, legit_port], table=f"tally{secrets.token_hex(3)}")
    stack.start_server()
    count = int(ATTACK_PPS * DURATION)
    floods = [
        Flood(lab.attacker, victim, attack_port, count=count, duration=DURATION, pps=ATTACK_PPS, source_address=str(a))
        for a in lab.attacker_sources(3, first=10)
    ]
    (legitimate,) = lab.attacker_sources(1, first=20)
    options = {"count": int(LEGIT_PPS * DURATION), "duration": DURATION, "pps": LEGIT_PPS}
    legit = Flood(lab.attacker, victim, legit_port, source_address=str(legitimate), **options)
    attack = Attack(victim, tally, attack_port, legit_port, floods, legit)
    try:
        wait_for(lambda: tally.count(attack_port) >= 1_000, 10, "the flood to reach the victim")
    except BaseException:
        attack.finish()
        raise
    return attack


def test_named_top_talkers_are_dropped_first_and_the_legitimate_source_keeps_flowing(
    stack: ProcessStack, lab: Lab, table_name: str
):
    attack = start_attack(stack, lab, str(lab.victim_v4[0]))
    tally, attack_port, legit_port = attack.tally, attack.attack_port, attack.legit_port
    try:
        mid = report_and_mitigate(stack, attack.victim, ["198.51.100.10", "198.51.100.11", "198.51.100.12"])
        key = f"{stack.cuid}/{mid}"
        wait_for(lambda: named_counters(lab, table_name).get(counter_name(key), 0) > 0, 10, "the first dropped packet")
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
        human = stack.admin("mitigations").stdout  # the operator's table, and a line saying what the policy did
        assert f"mid {mid}: sources-first: dropping 3 named top talkers only (holding: " in human
    finally:
        attack_sent, legit_result = attack.finish()
    leaked = tally.count(attack_port) - delivered_at_mitigation
    dropped = named_counters(lab, table_name)[counter_name(key)]
    passed = named_counters(lab, f"{table_name}_tt")[passed_counter_name(key)]
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
    attack = start_attack(stack, lab, str(lab.victim_v4[1]))
    tally, attack_port = attack.tally, attack.attack_port
    try:
        # Decoys: the client names sources that send nothing.
        mid = report_and_mitigate(stack, attack.victim, ["198.51.100.30", "198.51.100.31"])
        key = f"{stack.cuid}/{mid}"
        wait_for(lambda: passed_counter_name(key) in named_counters(lab, f"{table_name}_tt"), 10, "the narrow drop")
        assert named_counters(lab, table_name)[counter_name(key)] == 0  # the decoys' drop catches nothing
        narrow_delivered = tally.count(attack_port)
        # Nothing falls: the policy widens, in one batch, to the whole scope; the policy's watch goes with it (the
        # counting table stays: it counts what passes toward the target, for total-traffic).
        wait_for(lambda: passed_counter_name(key) not in named_counters(lab, f"{table_name}_tt"), 20, "the widening")
        delivered_at_widening = tally.count(attack_port)
        status = policy_of(stack, mid)
        assert status is not None and status["phase"] == "wide", status
        assert status["reason"].startswith("widened:") and "whole scope" in status["summary"]
    finally:
        attack_sent, _ = attack.finish()
    leaked = tally.count(attack_port) - delivered_at_widening
    dropped = named_counters(lab, table_name)[counter_name(key)]
    assert delivered_at_widening - narrow_delivered >= 1_000  # the attack kept arriving while only decoys were dropped
    assert leaked <= 5, f"{leaked} attack packets reached the victim after the widening"
    assert dropped >= 0.95 * (attack_sent - delivered_at_widening)
    assert "198.51.100.30" not in (table_listing(lab, table_name) or "")


def test_fastnetmon_names_the_top_talkers_and_the_ban_narrows_to_them(
    stack: ProcessStack, lab: Lab, table_name: str, tmp_path: Path
):
    """The real detector: FastNetMon bans the victim (a mitigation of the whole /32), then sends its sampled packets
    (`attack_details`); the hook reports them as telemetry naming the three sources (§8.2), and the server narrows
    the enforced mitigation to them. The flood stays dropped, the narrow drop holds, and the unban removes it all."""
    victim = str(lab.victim_v4[1])
    port = 20000 + secrets.randbelow(20000)
    tally = VictimTally(lab.victim, [port], table=f"tally{secrets.token_hex(3)}")
    attackers = [str(address) for address in lab.attacker_sources(3, first=50)]
    stack.start_server()
    stack.start_agent()
    hook_log = tmp_path / "hook.log"
    directory = tmp_path / "fastnetmon"
    directory.mkdir()
    script = write_notify_script(directory / "notify.sh", stack.client_config_path, lifetime=600, log_file=hook_log)
    floods: list[Flood] = []
    try:
        # 100 sampled packets from three equal sources: each is named (a miss is (2/3)^100 away).
        with running_fastnetmon(lab, directory, script, tmp_path / "fastnetmon.log", "203.0.113.0/24\n", 100):
            floods = [
                Flood(lab.attacker, victim, port, count=15_000, duration=15.0, pps=1_000, source_address=source)
                for source in attackers
            ]
            narrowing = "the ban, then the narrowing"
            wait_for(
                lambda: any(n.startswith("p") for n in named_counters(lab, f"{table_name}_tt")), 20, narrowing, 0.1
            )
            listing = table_listing(lab, table_name) or ""
            assert all(source in listing for source in attackers), listing
            narrowed = tally.count(port)
            (mid,) = [entry["mid"] for entry in json.loads(stack.admin("mitigations", "--json").stdout)["mitigations"]]
            held = wait_for(
                lambda: (p := policy_of(stack, mid)) and p["reason"].startswith("holding") and p, 15, "a judgement"
            )
            assert held["phase"] == "narrow" and sorted(held["sources"]) == sorted(f"{a}/32" for a in attackers)
            for flood in floods:
                flood.wait()
            assert tally.count(port) - narrowed <= 5, "the flood reached the victim once the drop was narrowed"
            assert re.search(rf"attack_details {victim}: telemetry tmid \d+ 2\.04 via agent \(3 top talkers\)",
                             hook_log.read_text())  # fmt: skip
            # The flood is over: FastNetMon unbans, the hook withdraws, both tables go.
            wait_for(lambda: table_listing(lab, table_name) is None, 25, "unban to withdraw the mitigation", 0.2)
            assert table_listing(lab, f"{table_name}_tt") is None
    finally:
        for flood in floods:
            flood.stop()
