"""RFC 9066 source-icmp-type-range enforced by the nftables mitigator on a real router namespace: only the named
ICMP types from the named sources are dropped; other ICMP types and other protocols from them still pass."""

from __future__ import annotations

import ipaddress
import secrets

import pytest

from opendots.domain import IcmpTypeRange
from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import ATTACKER_SIDE_V4, Lab
from opendots.mitigate.base import MitigationScope
from opendots.mitigate.nftables import NftablesMitigator

pytestmark = pytest.mark.lab
PORT = 5011
PACKETS = 300
ECHO_REQUEST, TIMESTAMP = 8, 13


def send(lab: Lab, tally: VictimTally, protocol: int, icmp_type: int = 0) -> int:
    """PACKETS to the victim; how many arrived. Raw ICMP packets start with TYPE, CODE 0 (the sender's 'source
    port' field), then PORT where a checksum would be (the tally counts by it; no checksum is checked on the way)."""
    before = tally.count(PORT, protocol)
    sent = flood(
        lab.attacker, str(lab.victim_v4[0]), PORT, count=PACKETS, duration=10, pps=5000,
        protocol=protocol, source_port=icmp_type << 8,
    ).sent  # fmt: skip
    assert sent == PACKETS
    return tally.count(PORT, protocol) - before


async def test_only_the_named_icmp_types_from_the_named_sources_are_dropped_rfc9066_5_3_1(lab: Lab) -> None:
    tally = VictimTally(lab.victim, [PORT], protocols=(17, 1), table=f"icmpt{secrets.token_hex(3)}")
    mitigator = NftablesMitigator(lab.router_ingress, table=f"odicmp{secrets.token_hex(3)}", netns=lab.router.name)
    scope = MitigationScope(
        "echo",
        (ipaddress.ip_network(f"{lab.victim_v4[0]}/32"),),
        source_prefixes=(ATTACKER_SIDE_V4,),
        source_icmp_type_ranges=(IcmpTypeRange(ECHO_REQUEST),),
    )
    try:
        await mitigator.apply(scope)
        assert send(lab, tally, 1, ECHO_REQUEST) == 0
        assert send(lab, tally, 1, TIMESTAMP) == PACKETS
        assert send(lab, tally, 17) == PACKETS
        assert (await mitigator.counters("echo")).pkts_dropped == PACKETS
    finally:
        await mitigator.cleanup()
