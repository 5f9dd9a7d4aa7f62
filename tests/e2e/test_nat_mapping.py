"""The NAT CPE's mitigator (opendots/mitigate/nat.py) against a real conntrack table: the Call Home lab's network
(iot → cpe masquerading to 192.0.2.2 → isp → victim) without the DOTS processes; RFC 9066 §5.3.2."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from opendots.domain import MitigationScope, PortRange
from opendots.lab.callhome_lab import ATTACK_PORT, COMPROMISED, LEGIT_PORT, LEGITIMATE, PUBLIC, VICTIM, CallHomeLab
from opendots.mitigate.nat import NatMappingMitigator
from opendots.mitigate.nftables import NftablesMitigator

pytestmark = pytest.mark.lab
PACKETS = 300


@pytest.fixture(scope="module")
def network(callhome_lab_reason: str | None) -> Iterator[CallHomeLab]:
    if callhome_lab_reason is not None:
        pytest.skip(callhome_lab_reason)
    with CallHomeLab() as built:
        yield built


@pytest.fixture
async def nat(network: CallHomeLab, tmp_path: Path) -> AsyncIterator[NatMappingMitigator]:
    network.cpe.run(["conntrack", "-F"], check=False)
    inner = NftablesMitigator("c-lan", table=f"odnat{secrets.token_hex(3)}", netns=network.cpe.name)
    mitigator = NatMappingMitigator(inner, [ipaddress.ip_network(f"{PUBLIC}/32")], tmp_path / "nat.json", rescan=0)
    yield mitigator
    await inner.cleanup()


def send(network: CallHomeLab, source: str, port: int, sport: int) -> dict[str, int]:
    """PACKETS from SOURCE:SPORT to the victim's PORT; what the victim received of them, per kind."""
    before = network.received()
    network.flood(source, port, count=PACKETS, duration=10, pps=3000, sport=sport).wait()
    after = network.received()
    return {name: after[name] - before[name] for name in after}


def request(sport: int) -> MitigationScope:
    """What the ISP asks: the public address and the NAT'd source port it saw, toward the victim."""
    return MitigationScope(
        f"isp/{sport}",
        (ipaddress.ip_network(f"{VICTIM}/32"),),
        source_prefixes=(ipaddress.ip_network(f"{PUBLIC}/32"),),
        source_port_ranges=(PortRange(sport, sport),),
    )


async def test_a_host_that_starts_flooding_after_the_request_is_found_when_counters_are_read(
    network: CallHomeLab, nat: NatMappingMitigator, tmp_path: Path
) -> None:
    scope = request(41000)
    await nat.apply(scope)  # nothing tracked yet: enforced with the public source, which matches nothing inside
    assert nat.explain(scope.key) == {"nat-external": [f"{PUBLIC}/32"], "nat-internal-hosts": []}
    assert send(network, COMPROMISED, ATTACK_PORT, 41000)["attack"] == PACKETS
    assert (await nat.counters(scope.key)).pkts_dropped == 0  # this read looks again, and finds the host
    assert nat.explain(scope.key)["nat-internal-hosts"] == [COMPROMISED]
    assert json.loads((tmp_path / "nat.json").read_text()) == {"hosts": {scope.key: [COMPROMISED]}}
    assert send(network, COMPROMISED, ATTACK_PORT, 41000)["attack"] == 0
    assert send(network, COMPROMISED, ATTACK_PORT, 41001)["attack"] == 0  # the host, whatever its source port
    assert send(network, LEGITIMATE, LEGIT_PORT, 41002)["legitimate"] == PACKETS
    assert (await nat.counters(scope.key)).pkts_dropped == 2 * PACKETS
    await nat.withdraw(scope.key)
    assert json.loads((tmp_path / "nat.json").read_text()) == {"hosts": {}}
    assert send(network, COMPROMISED, ATTACK_PORT, 41000)["attack"] == PACKETS


async def test_the_port_range_tells_two_hosts_behind_one_public_address_apart(
    network: CallHomeLab, nat: NatMappingMitigator
) -> None:
    send(network, COMPROMISED, ATTACK_PORT, 42000)
    send(network, LEGITIMATE, ATTACK_PORT, 42001)
    await nat.apply(request(42001))
    assert nat.explain("isp/42001")["nat-internal-hosts"] == [LEGITIMATE]
    assert send(network, LEGITIMATE, ATTACK_PORT, 42001)["attack"] == 0
    assert send(network, COMPROMISED, ATTACK_PORT, 42000)["attack"] == PACKETS


async def test_a_restarted_cpe_keeps_the_hosts_found_before_when_conntrack_has_forgotten_them(
    network: CallHomeLab, nat: NatMappingMitigator, tmp_path: Path
) -> None:
    send(network, COMPROMISED, ATTACK_PORT, 43000)
    scope = request(43000)
    await nat.apply(scope)
    network.cpe.run(["conntrack", "-F"])
    again = NatMappingMitigator(nat.inner, nat.external, tmp_path / "nat.json", rescan=0)
    assert await again.restore([scope]) == {}
    assert again.explain(scope.key)["nat-internal-hosts"] == [COMPROMISED]
    assert send(network, COMPROMISED, ATTACK_PORT, 43000)["attack"] == 0


async def test_an_unreadable_state_file_is_set_aside_and_the_lookup_starts_afresh(
    network: CallHomeLab, nat: NatMappingMitigator, tmp_path: Path
) -> None:
    (tmp_path / "broken.json").write_text('{"hosts": [1, 2')
    fresh = NatMappingMitigator(nat.inner, nat.external, tmp_path / "broken.json", rescan=0)
    send(network, COMPROMISED, ATTACK_PORT, 44000)
    await fresh.apply(request(44000))
    assert fresh.explain("isp/44000")["nat-internal-hosts"] == [COMPROMISED]
    assert json.loads((tmp_path / "broken.json").read_text()) == {"hosts": {"isp/44000": [COMPROMISED]}}
