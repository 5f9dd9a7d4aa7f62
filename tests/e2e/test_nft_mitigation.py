"""The nftables mitigator on a real router namespace, against real bounded floods (skips without root/netns/nft)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.base import MitigationScope, MitigatorError, PortRange
from opendots.mitigate.nftables import NftablesMitigator
from opendots.mitigate.nftables_ruleset import counter_name

pytestmark = pytest.mark.lab

FLOOD_PORT = 5005
OTHER_PORT = 6000
# Paced, so no queue on the path can overflow: every packet is either delivered or dropped by the mitigator.
PACKETS = 1500
PPS = 15_000
IP_UDP_BYTES = 20 + 8 + 64  # what the netdev ingress counter sees per flood packet (no Ethernet header)


@pytest.fixture(scope="module")
def tally(lab: Lab) -> VictimTally:
    return VictimTally(lab.victim, [FLOOD_PORT, OTHER_PORT], protocols=(17, 6))


def send(lab: Lab, destination: object, port: int = FLOOD_PORT, protocol: int = 17, source_port: int = 0) -> int:
    result = flood(
        lab.attacker,
        str(destination),
        port,
        count=PACKETS,
        duration=10.0,
        pps=PPS,
        protocol=protocol,
        source_port=source_port,
    )
    assert result.sent == PACKETS
    return result.sent


def delivered(tally: VictimTally, action, port: int = FLOOD_PORT, protocol: int = 17) -> int:
    before = tally.count(port, protocol)
    action()
    return tally.count(port, protocol) - before


def host(address: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(str(address))


def nft_counter(lab: Lab, table: str, key: str) -> tuple[int, int]:
    listing = lab.router.run(["nft", "-j", "list", "counter", "netdev", table, counter_name(key)]).stdout
    counter = next(item["counter"] for item in json.loads(listing)["nftables"] if "counter" in item)
    return counter["packets"], counter["bytes"]


def router_tables(lab: Lab) -> list[str]:
    listing = json.loads(lab.router.run(["nft", "-j", "list", "tables"]).stdout)["nftables"]
    return [item["table"]["name"] for item in listing if "table" in item]


def router_ruleset(lab: Lab) -> str:
    return lab.router.run(["nft", "list", "ruleset"]).stdout


async def test_flood_is_dropped_counted_exactly_and_flows_again_after_withdraw(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator, table_name: str
):
    victim = lab.victim_v4[0]
    assert delivered(tally, lambda: send(lab, victim)) == PACKETS  # the lab forwards the flood unmitigated

    scope = MitigationScope("cuid-a/1", (host(victim),))
    await nft_mitigator.apply(scope)
    assert await nft_mitigator.health()
    assert delivered(tally, lambda: send(lab, victim)) == 0

    counters = await nft_mitigator.counters(scope.key)
    assert (counters.pkts_dropped, counters.bytes_dropped) == (PACKETS, PACKETS * IP_UDP_BYTES)
    assert (counters.pkts_dropped, counters.bytes_dropped) == nft_counter(lab, table_name, scope.key)
    assert counters.pps_dropped is not None and counters.pps_dropped > 0
    assert counters.bps_dropped is not None and counters.bps_dropped > counters.pps_dropped

    await nft_mitigator.withdraw(scope.key)
    assert table_name not in router_tables(lab)  # nothing left behind, not even an empty hook
    assert delivered(tally, lambda: send(lab, victim)) == PACKETS
    with pytest.raises(MitigatorError):
        await nft_mitigator.counters(scope.key)


async def test_ipv6_prefix_is_dropped_and_other_victim_address_is_not(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    mitigated, spared = lab.victim_v6
    await nft_mitigator.apply(MitigationScope("cuid-a/2", (host(mitigated),)))
    assert delivered(tally, lambda: send(lab, mitigated)) == 0
    assert delivered(tally, lambda: send(lab, spared)) == PACKETS
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == PACKETS
    assert (await nft_mitigator.counters("cuid-a/2")).pkts_dropped == PACKETS


async def test_counters_of_every_mitigation_in_one_batch_read(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator, table_name: str
):
    """counters_many (what the server's periodic poll uses): one nft call, each mitigation's own counter."""
    dropped, idle = lab.victim_v6
    await nft_mitigator.apply(MitigationScope("cuid-a/20", (host(dropped),)))
    await nft_mitigator.apply(MitigationScope("cuid-a/21", (host(idle),)))
    assert delivered(tally, lambda: send(lab, dropped)) == 0
    batch = await nft_mitigator.counters_many(["cuid-a/20", "cuid-a/21", "cuid-a/unknown"])
    assert set(batch) == {"cuid-a/20", "cuid-a/21"}
    assert (batch["cuid-a/20"].pkts_dropped, batch["cuid-a/20"].bytes_dropped) == nft_counter(
        lab, table_name, "cuid-a/20"
    )
    assert batch["cuid-a/20"].pkts_dropped == PACKETS and batch["cuid-a/21"].pkts_dropped == 0
    assert (await nft_mitigator.counters("cuid-a/20")).pkts_dropped == PACKETS  # the single read agrees


async def test_port_range_and_protocol_scope_drops_only_matching_traffic(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator, table_name: str
):
    victim = lab.victim_v4[0]
    udp_ports = MitigationScope(
        "cuid-a/3", (host(victim),), target_port_ranges=(PortRange(5000, 5009),), target_protocols=(17,)
    )
    await nft_mitigator.apply(udp_ports)
    assert delivered(tally, lambda: send(lab, victim, FLOOD_PORT)) == 0
    assert delivered(tally, lambda: send(lab, victim, OTHER_PORT), port=OTHER_PORT) == PACKETS
    assert delivered(tally, lambda: send(lab, victim, FLOOD_PORT, protocol=6), protocol=6) == PACKETS
    assert (await nft_mitigator.counters(udp_ports.key)).pkts_dropped == PACKETS

    # Update the same mitigation to "TCP, any port": UDP flows again, TCP-numbered packets are dropped.
    tcp_only = MitigationScope("cuid-a/3", (host(victim),), target_protocols=(6,))
    await nft_mitigator.update(tcp_only)
    assert delivered(tally, lambda: send(lab, victim, FLOOD_PORT)) == PACKETS
    assert delivered(tally, lambda: send(lab, victim, OTHER_PORT, protocol=6), port=OTHER_PORT, protocol=6) == 0
    counters = await nft_mitigator.counters(tcp_only.key)
    assert counters.pkts_dropped == 2 * PACKETS  # one counter per mitigation, across its updates
    assert counters.pkts_dropped == nft_counter(lab, table_name, tcp_only.key)[0]


async def test_ports_without_protocol_cover_port_protocols_only(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    victim = lab.victim_v4[1]
    await nft_mitigator.apply(
        MitigationScope("cuid-a/4", (host(victim),), target_port_ranges=(PortRange(FLOOD_PORT, FLOOD_PORT),))
    )
    assert delivered(tally, lambda: send(lab, victim, FLOOD_PORT)) == 0
    assert delivered(tally, lambda: send(lab, victim, FLOOD_PORT, protocol=6), protocol=6) == 0
    assert delivered(tally, lambda: send(lab, victim, OTHER_PORT), port=OTHER_PORT) == PACKETS


async def test_source_aware_scopes_drop_only_traffic_from_the_named_sources(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    """RFC 9066 call home: source prefixes and source ports narrow a mitigation."""
    victim_v4, victim_v6 = lab.victim_v4[0], lab.victim_v6[0]
    elsewhere = MitigationScope(
        "cuid-a/20", (host(victim_v4),), source_prefixes=(ipaddress.ip_network("192.0.2.0/24"),)
    )
    await nft_mitigator.apply(elsewhere)
    assert delivered(tally, lambda: send(lab, victim_v4)) == PACKETS  # the attacker is not in 192.0.2.0/24
    from_attacker = MitigationScope(
        "cuid-a/21", (host(victim_v4), host(victim_v6)), source_prefixes=(host(lab.attacker_v4), host(lab.attacker_v6))
    )
    await nft_mitigator.apply(from_attacker)
    assert delivered(tally, lambda: send(lab, victim_v4)) == 0
    assert delivered(tally, lambda: send(lab, victim_v6)) == 0
    source_port = MitigationScope(
        "cuid-a/21", (host(victim_v4),), source_port_ranges=(PortRange(40000, 40009),), target_protocols=(17,)
    )
    await nft_mitigator.update(source_port)
    assert delivered(tally, lambda: send(lab, victim_v4, source_port=40005)) == 0
    assert delivered(tally, lambda: send(lab, victim_v4, source_port=41000)) == PACKETS
    assert (await nft_mitigator.counters("cuid-a/21")).pkts_dropped == 3 * PACKETS


async def test_nested_prefixes_of_two_mitigations_each_count_their_own_drops(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator, table_name: str
):
    wide = MitigationScope("cuid-a/5", (ipaddress.ip_network("203.0.113.0/24"),))
    narrow = MitigationScope("cuid-b/1", (host(lab.victim_v4[1]),))
    await nft_mitigator.apply(wide)
    await nft_mitigator.apply(narrow)
    assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == 0
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
    assert (await nft_mitigator.counters(narrow.key)).pkts_dropped == PACKETS  # the most specific prefix counts
    assert (await nft_mitigator.counters(wide.key)).pkts_dropped == PACKETS

    await nft_mitigator.withdraw(narrow.key)
    assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == 0  # still inside the wide mitigation
    assert (await nft_mitigator.counters(wide.key)).pkts_dropped == 2 * PACKETS
    await nft_mitigator.withdraw(wide.key)
    assert table_name not in router_tables(lab)
    assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == PACKETS


async def test_many_prefix_lengths_use_the_interval_map_and_still_count_the_most_specific(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    lengths = ["203.0.113.0/25", "203.0.113.128/26", "203.0.113.192/27", "203.0.113.224/28", "203.0.113.240/29"]
    lengths += ["203.0.113.248/30", "203.0.113.252/31", "203.0.113.254/31"]
    wide = MitigationScope("cuid-a/30", tuple(ipaddress.ip_network(text) for text in lengths))
    narrow = MitigationScope("cuid-b/30", (host(lab.victim_v4[1]),))
    await nft_mitigator.apply(wide)
    await nft_mitigator.apply(narrow)
    listing = router_ruleset(lab)
    assert "map dst4 {" in listing and "flags interval" in listing  # the /25 (and /26) went to the interval map
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
    assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == 0
    assert (await nft_mitigator.counters(wide.key)).pkts_dropped == PACKETS
    assert (await nft_mitigator.counters(narrow.key)).pkts_dropped == PACKETS


def map_size(lab: Lab, table: str, name: str) -> int:
    listing = lab.router.run(["nft", "-j", "list", "map", "netdev", table, name]).stdout
    return next(item["map"] for item in json.loads(listing)["nftables"] if "map" in item)["size"]


async def test_a_map_that_outgrows_its_size_is_replaced_and_every_counter_stays_exact(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator, table_name: str
):
    """Port-keyed targets sit behind a destination pre-filter, in fixed-size hash maps re-created when full."""
    victim = lab.victim_v4[0]
    udp_port = (PortRange(FLOOD_PORT, FLOOD_PORT),)
    ports = MitigationScope("cuid-a/40", (host(victim),), target_port_ranges=udp_port, target_protocols=(17,))
    await nft_mitigator.apply(ports)
    assert "goto targets4" in router_ruleset(lab) and "jump dports4" in router_ruleset(lab)
    assert delivered(tally, lambda: send(lab, victim)) == 0
    # Through the pre-filter (a target address) but not a target port: forwarded.
    assert delivered(tally, lambda: send(lab, victim, OTHER_PORT), port=OTHER_PORT) == PACKETS
    small = map_size(lab, table_name, "dst_proto_port4_exact")

    # 200 more hosts × 2 ports: more elements than the map's size, so the same batch replaces it with a bigger one.
    hosts = tuple(ipaddress.ip_network(f"192.0.2.{i}/32") for i in range(1, 201))
    two_ports = (PortRange(1000, 1000), PortRange(1001, 1001))
    many = MitigationScope("cuid-b/40", hosts, target_port_ranges=two_ports, target_protocols=(17,))
    await nft_mitigator.apply(many)
    assert map_size(lab, table_name, "dst_proto_port4_exact") > small >= 2
    assert delivered(tally, lambda: send(lab, victim)) == 0
    send(lab, "192.0.2.77", 1001)  # not routed beyond the router, but counted and dropped at its ingress first
    assert delivered(tally, lambda: send(lab, victim, OTHER_PORT), port=OTHER_PORT) == PACKETS

    for key, packets in ((ports.key, 2 * PACKETS), (many.key, PACKETS)):
        counters = await nft_mitigator.counters(key)
        assert (counters.pkts_dropped, counters.bytes_dropped) == (packets, packets * IP_UDP_BYTES)
        assert (counters.pkts_dropped, counters.bytes_dropped) == nft_counter(lab, table_name, key)

    await nft_mitigator.withdraw(ports.key)
    assert delivered(tally, lambda: send(lab, victim)) == PACKETS  # the pre-filter no longer holds the victim
    await nft_mitigator.withdraw(many.key)
    assert table_name not in router_tables(lab)


async def test_port_keyed_targets_survive_restart_and_a_vanished_table_behind_their_pre_filter(
    lab: Lab, tally: VictimTally, table_name: str
):
    first = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)
    udp_port = (PortRange(FLOOD_PORT, FLOOD_PORT),)
    ports = MitigationScope("cuid-a/41", (host(lab.victim_v4[0]),), target_port_ranges=udp_port, target_protocols=(17,))
    await first.apply(ports)
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
    second = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)  # "restart"
    try:
        assert await second.restore([ports]) == {}
        assert "goto targets4" in router_ruleset(lab)
        assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
        assert (
            (await second.counters(ports.key)).pkts_dropped == 2 * PACKETS == nft_counter(lab, table_name, ports.key)[0]
        )

        lab.router.run(["nft", "delete", "table", "netdev", table_name])
        other = MitigationScope(
            "cuid-a/42", (host(lab.victim_v4[1]),), target_port_ranges=udp_port, target_protocols=(17,)
        )
        await second.apply(other)  # rebuilds everything, pre-filter included, in one batch
        assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
        assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == 0
        assert delivered(tally, lambda: send(lab, lab.victim_v4[1], OTHER_PORT), port=OTHER_PORT) == PACKETS
        assert (await second.counters(other.key)).pkts_dropped == PACKETS == nft_counter(lab, table_name, other.key)[0]
    finally:
        await second.cleanup()
    assert table_name not in router_tables(lab)


async def test_applying_the_same_scope_twice_changes_nothing(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    scope = MitigationScope("cuid-a/6", (host(lab.victim_v4[0]), host(lab.victim_v6[0])), target_protocols=(17, 6))
    await nft_mitigator.apply(scope)
    send(lab, lab.victim_v4[0])
    ruleset = router_ruleset(lab)
    await nft_mitigator.apply(scope)
    assert router_ruleset(lab) == ruleset  # the counter was not reset either: it is part of the listing
    assert (await nft_mitigator.counters(scope.key)).pkts_dropped == PACKETS


async def test_restore_after_restart_brings_enforcement_back_and_keeps_counters(
    lab: Lab, tally: VictimTally, table_name: str
):
    first = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)
    kept = MitigationScope("cuid-a/7", (host(lab.victim_v4[0]),))
    dropped_meanwhile = MitigationScope("cuid-a/8", (host(lab.victim_v4[1]),))
    await first.apply(kept)
    await first.apply(dropped_meanwhile)
    send(lab, lab.victim_v4[0])
    # "Restart": the first object is gone without cleanup; the store says only `kept` is still active.
    second = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name)
    try:
        invalid = MitigationScope("cuid-a/9", (host(lab.victim_v4[1]),), target_protocols=(999,))
        refused = await second.restore([kept, invalid])
        assert list(refused) == [invalid.key]
        assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
        assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == PACKETS
        assert (await second.counters(kept.key)).pkts_dropped == 2 * PACKETS
        assert second.active_keys == [kept.key]
        await second.restore([])
        assert table_name not in router_tables(lab)
    finally:
        await second.cleanup()


async def test_invalid_scopes_raise_and_leave_the_ruleset_unchanged(lab: Lab, nft_mitigator: NftablesMitigator):
    await nft_mitigator.apply(MitigationScope("cuid-a/9", (host(lab.victim_v4[0]),)))
    ruleset = router_ruleset(lab)
    invalid = [
        MitigationScope("cuid-a/10", ()),
        MitigationScope("cuid-a/10", (host(lab.victim_v4[1]),), target_port_ranges=(PortRange(10, 70000),)),
        MitigationScope("cuid-a/10", (host(lab.victim_v4[1]),), target_port_ranges=(PortRange(90, 80),)),
        MitigationScope("cuid-a/10", (host(lab.victim_v4[1]),), target_protocols=(256,)),
        MitigationScope("", (host(lab.victim_v4[1]),)),
        MitigationScope("cuid-a/10", (host(lab.victim_v6[1]),), source_prefixes=(host(lab.attacker_v4),)),
    ]
    for scope in invalid:
        with pytest.raises(MitigatorError):
            await nft_mitigator.apply(scope)
    assert router_ruleset(lab) == ruleset
    assert nft_mitigator.active_keys == ["cuid-a/9"]


async def test_a_batch_the_kernel_rejects_changes_nothing(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    """Someone else's element in our map makes the kernel refuse our batch: all of it, atomically."""
    await nft_mitigator.apply(MitigationScope("cuid-a/11", (host(lab.victim_v6[0]),)))
    await nft_mitigator.apply(
        MitigationScope("cuid-a/12", (host(lab.victim_v4[1]), ipaddress.ip_network("203.0.113.64/26")))
    )
    counter = counter_name("cuid-a/12")
    # The /26 above created the per-length map dst4_len26; the intruder claims 203.0.113.128/26 in it.
    lab.router.run(["nft", f"add element netdev {nft_mitigator.table.name} dst4_len26 {{ 203.0.113.128 : {counter} }}"])
    ruleset = router_ruleset(lab)
    with pytest.raises(MitigatorError, match=r"nft: .*(overlap|File exists)"):
        await nft_mitigator.apply(
            MitigationScope("cuid-a/13", (ipaddress.ip_network("203.0.113.128/26"), host(lab.victim_v4[0])))
        )
    assert router_ruleset(lab) == ruleset  # not even the new counter, which came first in the batch
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == PACKETS
    assert delivered(tally, lambda: send(lab, lab.victim_v4[1])) == 0
    assert nft_mitigator.active_keys == ["cuid-a/11", "cuid-a/12"]


async def test_table_deleted_behind_our_back_is_reported_and_rebuilt_by_the_next_change(
    lab: Lab, tally: VictimTally, nft_mitigator: NftablesMitigator
):
    scope = MitigationScope("cuid-a/14", (host(lab.victim_v4[0]),))
    await nft_mitigator.apply(scope)
    lab.router.run(["nft", "delete", "table", "netdev", nft_mitigator.table.name])
    assert not await nft_mitigator.health()
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == PACKETS  # really not enforced any more
    with pytest.raises(MitigatorError, match="nft: "):
        await nft_mitigator.counters(scope.key)
    await nft_mitigator.apply(MitigationScope("cuid-a/15", (host(lab.victim_v6[0]),)))
    assert await nft_mitigator.health()
    assert delivered(tally, lambda: send(lab, lab.victim_v4[0])) == 0
    assert delivered(tally, lambda: send(lab, lab.victim_v6[0])) == 0
    assert (await nft_mitigator.counters(scope.key)).pkts_dropped == PACKETS  # counting again from zero


async def test_missing_namespace_or_interface_is_unhealthy_and_errors(lab: Lab, table_name: str):
    nowhere = NftablesMitigator(lab.router_ingress, table=table_name, netns=f"{lab.router.name}-gone")
    assert not await nowhere.health()
    with pytest.raises(MitigatorError):
        await nowhere.apply(MitigationScope("cuid-a/15", (host(lab.victim_v4[0]),)))
    no_interface = NftablesMitigator("no-such-if0", table=table_name, netns=lab.router.name)
    assert not await no_interface.health()


def test_bad_table_or_interface_names_are_refused_up_front():
    for table, interface in [("bad name", "eth0"), ("x" * 65, "eth0"), ("ok", "much-too-long-ifname"), ("ok", 'a"b')]:
        with pytest.raises(ValueError):
            NftablesMitigator(interface, table=table)


def test_lab_namespaces_are_removed_even_when_the_body_fails(lab_reason: str | None):
    if lab_reason is not None:
        pytest.skip(lab_reason)
    with pytest.raises(ZeroDivisionError), Lab() as failing:
        names = [failing.attacker.path, failing.router.path, failing.victim.path]
        assert failing.namespaces_exist()
        _ = 1 / 0
    assert not failing.namespaces_exist(), names
