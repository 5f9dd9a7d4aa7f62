"""RFC 9066 Call Home end to end in namespaces: iot → cpe (NAT + `opendots callhome server` + nftables) → isp
(`opendots callhome client run` + the detector's nft set) → victim.

The ISP sees the flood as the CPE's public address and a NAT'd source port, asks the CPE to stop exactly that
(`opendots callhome client mitigate`), and the CPE maps it through its conntrack table to the compromised internal
host (§5.3.2) and drops that host's traffic to the victim on its LAN side; the legitimate host's traffic goes on.
Every claim is a packet count (victim, CPE counters, the provider's status), never a duration.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.lab.callhome_lab import ATTACK_PORT, COMPROMISED, LEGIT_PORT, LEGITIMATE, PUBLIC, CallHomeLab
from opendots.lab.processes import wait_for

pytestmark = pytest.mark.lab


@pytest.fixture
def lab(callhome_lab_reason: str | None) -> Iterator[CallHomeLab]:
    if callhome_lab_reason is not None:
        pytest.skip(callhome_lab_reason)
    with CallHomeLab() as built:
        yield built


def grows(lab: CallHomeLab, read, by: int, what: str) -> int:
    start = read()
    return wait_for(lambda: read() >= start + by and read(), 30, what, interval=0.1)


def attack_stopped_while_legitimate_flows(lab: CallHomeLab) -> None:
    """With a mitigation in force: the CPE drops ≥ 500 more attack packets while the victim gets none of them
    (a few in flight at most) and ≥ 50 legitimate ones."""
    wait_for(lambda: lab.dropped_on_cpe() > 0, 30, "a first packet dropped on the CPE", interval=0.1)
    before = lab.received()
    grows(lab, lab.dropped_on_cpe, 500, "500 more packets dropped on the CPE")
    grows(lab, lambda: lab.received()["legitimate"], 50, "legitimate traffic reaching the victim")
    after = lab.received()
    assert after["attack"] - before["attack"] <= 5, (before, after)


@pytest.mark.parametrize("transport", ["dtls", "tls"])
def test_the_isp_stops_an_outbound_flood_at_the_cpe_by_the_public_address_and_port_it_sees_rfc9066_5_3_2(
    lab: CallHomeLab, tmp_path: Path, transport: str
) -> None:
    lab.start(tmp_path, transport)
    attack = lab.flood(COMPROMISED, ATTACK_PORT, count=400_000, duration=50, pps=2000, sport=40000)
    legitimate = lab.flood(LEGITIMATE, LEGIT_PORT, count=40_000, duration=50, pps=200)
    try:
        # The detector: the biggest talker toward the victim is the CPE's public address and a NAT'd port.
        address, port, _packets = wait_for(
            lambda: (found := lab.top_talker()) and found[2] >= 1000 and found, 30, "the detector's top talker"
        )
        assert address == PUBLIC
        grows(lab, lambda: lab.received()["attack"], 100, "the flood reaching the victim")
        answer = lab.mitigate(address, port)
        assert answer["ietf-dots-signal-channel:mitigation-scope"]["scope"][0]["mid"] == 1
        attack_stopped_while_legitimate_flows(lab)

        # The CPE's counters reach the provider's status (RFC 9132 pkts-dropped, as the base server's do).
        def dropped_in_status() -> int:
            (entry,) = lab.status()
            (scope,) = entry["body"]["ietf-dots-signal-channel:mitigation-scope"]["scope"]
            return int(scope.get("pkts-dropped", 0))

        wait_for(lambda: dropped_in_status() >= 500, 30, "pkts-dropped in the provider's status", interval=0.5)
        assert "10.77.0.10" in lab.log("cpe.log") and LEGITIMATE not in lab.log("cpe.log")
        # What the lookup matched, in the CPE operator's view (not on the wire: RFC 9066 has no attribute for it).
        (held,) = lab.cpe_mitigations()
        assert held["nat-external"] == [f"{PUBLIC}/32"] and held["nat-internal-hosts"] == [COMPROMISED]

        # A CPE killed and restarted after its conntrack entries are gone re-dials and still drops that host:
        # the nft table outlived it, and the host the lookup found is kept in nat_state.
        lab.stop_cpe()
        lab.cpe.run(["conntrack", "-F"], check=False)
        state = json.loads((tmp_path / "nat.json").read_text())
        assert list(state["hosts"].values()) == [[COMPROMISED]]
        lab.start_cpe()
        lab.wait_connected()
        attack_stopped_while_legitimate_flows(lab)
    finally:
        attack.stop()
        legitimate.stop()
