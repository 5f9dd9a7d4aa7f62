"""Data-channel ACLs enforced by the nftables actuator on a real router namespace (skips without root/netns/nft)."""

from __future__ import annotations

import ipaddress

import pytest

from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.base import MitigationScope, MitigatorError
from opendots.mitigate.nftables import NftablesMitigator
from opendots.mitigate.nftables_acl import (
    Ace,
    AceMatch,
    AclPolicy,
    BitmaskMatch,
    Fragment,
    PortMatch,
    policy_from_record,
)

pytestmark = pytest.mark.lab

PORT = 5005
OTHER_PORT = 6000
PACKETS = 1000
PPS = 15_000
SYN, ACK = 0x02, 0x10


@pytest.fixture(scope="module")
def tally(lab: Lab) -> VictimTally:
    return VictimTally(lab.victim, [PORT, OTHER_PORT], protocols=(17, 6, 1))


def net(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(str(text))


def delivered(
    lab: Lab, tally: VictimTally, destination: object, port: int = PORT, protocol: int = 17, **options
) -> int:
    before = tally.count(port, protocol)
    result = flood(
        lab.attacker, str(destination), port, count=PACKETS, duration=10.0, pps=PPS, protocol=protocol, **options
    )
    assert result.sent == PACKETS
    return tally.count(port, protocol) - before


def domain(lab: Lab) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return (net("203.0.113.0/24"), net("2001:db8:b::/64"))


async def test_accept_ace_exempts_its_traffic_from_a_mitigation(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    victim = lab.victim_v4[0]
    await nft_mitigator.apply(MitigationScope("cuid-a/1", (net(victim),)))
    allow = Ace("allow-6000", AceMatch(4, protocol=17, destination_port=PortMatch(OTHER_PORT, OTHER_PORT)), "accept")
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (allow,)))
    assert delivered(lab, tally, victim, OTHER_PORT) == PACKETS
    assert delivered(lab, tally, victim, PORT) == 0
    statistics = await nft_mitigator.acl_statistics("cuid-a/acl")
    assert statistics["allow-6000"].matched_packets == PACKETS
    assert (await nft_mitigator.counters("cuid-a/1")).pkts_dropped == PACKETS

    await nft_mitigator.withdraw_acl("cuid-a/acl")
    assert delivered(lab, tally, victim, OTHER_PORT) == 0  # the mitigation applies to it again
    await nft_mitigator.withdraw("cuid-a/1")
    assert nft_mitigator.table.name not in lab.router.run(["nft", "list", "tables"]).stdout


async def test_drop_ace_needs_no_mitigation_and_stays_inside_the_client_domain(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    drop_udp = Ace("drop-udp", AceMatch(4, protocol=17, destination_port=PortMatch(5000, 5009)), "drop")
    only_first_host = (net(lab.victim_v4[0]),)  # the client owns .2 only: .3 belongs to somebody else
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", only_first_host, (drop_udp,)))
    assert delivered(lab, tally, lab.victim_v4[0]) == 0
    assert delivered(lab, tally, lab.victim_v4[1]) == PACKETS
    assert delivered(lab, tally, lab.victim_v4[0], OTHER_PORT) == PACKETS
    assert (await nft_mitigator.acl_statistics("cuid-a/acl"))["drop-udp"].matched_packets == PACKETS


async def test_rate_limit_drops_the_excess_only(lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator):
    limited = Ace("limited", AceMatch(4, protocol=17), "accept", rate_limit=5_000.0)  # bytes/s; the flood: ~1.4 MB/s
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (limited,)))
    got = delivered(lab, tally, lab.victim_v4[0])
    statistics = (await nft_mitigator.acl_statistics("cuid-a/acl"))["limited"]
    assert 0 < got < PACKETS // 2
    assert statistics.matched_packets == PACKETS
    assert statistics.limited_packets == PACKETS - got
    generous = Ace("limited", AceMatch(4, protocol=17), "accept", rate_limit=50_000_000.0)
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (generous,)))  # a new limit object
    assert delivered(lab, tally, lab.victim_v4[0]) == PACKETS


async def test_fragment_ace_drops_fragments_only(lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator):
    fragments = Ace("no-fragments", AceMatch(4, fragment=BitmaskMatch(int(Fragment.ISF))), "drop")
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (fragments,)))
    # 3000-byte datagrams leave the attacker as fragments: the first carries the UDP header the tally counts.
    assert delivered(lab, tally, lab.victim_v4[0], size=3000) == 0
    assert delivered(lab, tally, lab.victim_v4[0]) == PACKETS
    statistics = (await nft_mitigator.acl_statistics("cuid-a/acl"))["no-fragments"]
    assert statistics.matched_packets == 3 * PACKETS  # 3000 bytes over a 1500-byte MTU: three fragments each


async def test_ipv6_fragment_ace(lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator):
    first = Ace("first-fragments", AceMatch(6, fragment=BitmaskMatch(int(Fragment.FF))), "drop")
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (first,)))
    assert delivered(lab, tally, lab.victim_v6[0], size=3000) == 0
    assert delivered(lab, tally, lab.victim_v6[0]) == PACKETS
    assert (await nft_mitigator.acl_statistics("cuid-a/acl"))["first-fragments"].matched_packets == PACKETS


async def test_tcp_flags_ace(lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator):
    syn_only = Ace("syn", AceMatch(4, protocol=6, tcp_flags=BitmaskMatch(SYN | ACK, "match")), "drop")
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (syn_only,)))
    assert delivered(lab, tally, lab.victim_v4[0], protocol=6, tcp_flags=SYN | ACK) == 0
    assert delivered(lab, tally, lab.victim_v4[0], protocol=6, tcp_flags=SYN) == PACKETS
    negated = Ace("not-ack", AceMatch(4, protocol=6, tcp_flags=BitmaskMatch(ACK, "any", negate=True)), "drop")
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (negated,)))
    assert delivered(lab, tally, lab.victim_v4[0], protocol=6, tcp_flags=SYN) == 0
    assert delivered(lab, tally, lab.victim_v4[0], protocol=6, tcp_flags=ACK) == PACKETS


async def test_icmp_ace_and_reject(lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator):
    echo = Ace("echo", AceMatch(4, protocol=1, icmp_type=8, icmp_code=0), "drop")
    reject = Ace("reject-udp6", AceMatch(6, protocol=17, destination_port=PortMatch(PORT, PORT)), "reject")
    await nft_mitigator.apply_acl(AclPolicy("cuid-a/acl", domain(lab), (echo, reject)))
    # Raw ICMP packets: the sender's "source port" fills the type and code bytes.
    assert delivered(lab, tally, lab.victim_v4[0], PORT, protocol=1, source_port=(8 << 8) | 0) == 0
    assert delivered(lab, tally, lab.victim_v4[0], PORT, protocol=1, source_port=(13 << 8) | 0) == PACKETS
    assert delivered(lab, tally, lab.victim_v6[0], PORT) == 0
    assert delivered(lab, tally, lab.victim_v6[0], OTHER_PORT) == PACKETS


async def test_invalid_acls_are_refused_and_change_nothing(lab: Lab, nft_mitigator: NftablesMitigator):
    good = AclPolicy("cuid-a/acl", domain(lab), (Ace("x", AceMatch(4, protocol=17), "drop"),))
    await nft_mitigator.apply_acl(good)
    ruleset = lab.router.run(["nft", "list", "ruleset"]).stdout
    bad_aces = [
        Ace("ports-without-protocol", AceMatch(4, destination_port=PortMatch(1, 2)), "drop"),
        Ace("flags-without-tcp", AceMatch(4, protocol=17, tcp_flags=BitmaskMatch(2)), "drop"),
        Ace("df-in-ipv6", AceMatch(6, fragment=BitmaskMatch(int(Fragment.DF))), "drop"),
        Ace("limit-with-drop", AceMatch(4), "drop", rate_limit=10.0),
        Ace("wrong-family", AceMatch(4, source=net("2001:db8::/32")), "drop"),
        Ace("icmp-without-icmp", AceMatch(6, protocol=17, icmp_type=1), "drop"),
    ]
    for ace in bad_aces:
        with pytest.raises(MitigatorError):
            await nft_mitigator.apply_acl(AclPolicy("cuid-a/bad", domain(lab), (ace,)))
    with pytest.raises(MitigatorError):
        await nft_mitigator.apply_acl(AclPolicy("cuid-a/bad", (), (Ace("x", AceMatch(4), "drop"),)))
    assert lab.router.run(["nft", "list", "ruleset"]).stdout == ruleset
    assert nft_mitigator.active_acls == ["cuid-a/acl"]


async def test_restore_brings_acls_back_with_their_counters(lab: Lab, tally: VictimTally, table_name: str):
    policy = AclPolicy("cuid-a/acl", domain(lab), (Ace("drop-udp", AceMatch(4, protocol=17), "drop"),))
    first = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)
    await first.apply_acl(policy)
    delivered(lab, tally, lab.victim_v4[0])
    second = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)
    try:
        assert await second.restore([], [policy]) == {}
        assert delivered(lab, tally, lab.victim_v4[0]) == 0
        assert (await second.acl_statistics(policy.key))["drop-udp"].matched_packets == 2 * PACKETS
    finally:
        await second.cleanup()


async def test_acl_record_without_family_drops_both_families_into_one_counter(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    from opendots.data.records import Acl

    entry = {
        "name": "no-udp-5005",
        "aces": {
            "ace": [
                {
                    "name": "udp-5005",
                    "matches": {"udp": {"destination-port-range-or-operator": {"operator": "eq", "port": PORT}}},
                    "actions": {"forwarding": "ietf-access-control-list:drop"},
                }
            ]
        },
    }
    policy = policy_from_record(Acl.from_json("cuid-a", entry), domain(lab))
    await nft_mitigator.apply_acl(policy)
    assert delivered(lab, tally, lab.victim_v4[0]) == 0
    assert delivered(lab, tally, lab.victim_v6[0]) == 0
    assert delivered(lab, tally, lab.victim_v6[0], OTHER_PORT) == PACKETS
    assert (await nft_mitigator.acl_statistics(policy.key))["udp-5005"].matched_packets == 2 * PACKETS
