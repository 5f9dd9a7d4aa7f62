"""The nftables mitigator rate-limiting instead of dropping (`rate_limit_pps`, the CPE's choice in RFC 9066 Call
Home): per flow key, packets within the rate pass, the rest is counted and dropped; on a real router namespace."""

from __future__ import annotations

import ipaddress
import secrets

import pytest

from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import ATTACKER_SIDE_V4, Lab
from opendots.mitigate.base import MitigationScope
from opendots.mitigate.nftables import NftablesMitigator

pytestmark = pytest.mark.lab
PORT = 5007
PACKETS = 1500


@pytest.fixture
async def limiter(lab: Lab):
    mitigator = NftablesMitigator(
        lab.router_ingress, table=f"odrl{secrets.token_hex(3)}", netns=lab.router.name, rate_limit=100
    )
    yield mitigator
    await mitigator.cleanup()


def scope(lab: Lab, key: str) -> MitigationScope:
    return MitigationScope(
        key,
        (ipaddress.ip_network(f"{lab.victim_v4[0]}/32"),),
        source_prefixes=(ATTACKER_SIDE_V4,),
        target_protocols=(17,),
    )


async def test_a_rate_limited_source_gets_some_packets_through_and_every_other_one_is_counted_as_dropped(
    lab: Lab, limiter: NftablesMitigator
) -> None:
    tally = VictimTally(lab.victim, [PORT], table=f"rlt{secrets.token_hex(3)}")
    await limiter.apply(scope(lab, "limited"))
    before = tally.count(PORT)
    sent = flood(lab.attacker, str(lab.victim_v4[0]), PORT, count=PACKETS, duration=10.0, pps=15_000).sent
    delivered = tally.count(PORT) - before
    dropped = (await limiter.counters("limited")).pkts_dropped
    assert sent == PACKETS and delivered + dropped == PACKETS
    # 1500 packets in ~0.1 s against 100 pps (burst 5): a few dozen pass at most, not none, not most.
    assert 0 < delivered < PACKETS // 5 and dropped > 0, (delivered, dropped)


async def test_the_rate_state_sets_come_and_go_with_their_maps(lab: Lab, limiter: NftablesMitigator) -> None:
    await limiter.apply(scope(lab, "first"))
    listing = lab.router.run(["nft", "list", "table", "netdev", limiter.table.name]).stdout
    assert "set rl_src_dst_proto4" in listing and "limit rate over 100/second" in listing
    await limiter.apply(
        MitigationScope("second", (ipaddress.ip_network(f"{lab.victim_v4[1]}/32"),), target_protocols=(17,))
    )
    await limiter.withdraw("first")  # its map empties: the map and its rate set go in one batch
    listing = lab.router.run(["nft", "list", "table", "netdev", limiter.table.name]).stdout
    assert "rl_src_dst_proto4" not in listing and "set rl_dst_proto4" in listing
    await limiter.withdraw("second")
    assert lab.router.run(["nft", "list", "table", "netdev", limiter.table.name], check=False).returncode != 0
