"""RFC 9244 total-traffic from real nftables counters (§9.2 mitigation status, §8.3 /tm): a mitigation of one UDP
port of the victim drops that port's flood while a flood to another port of the same victim passes; the passed one
reaches the victim, the counting table behind the drop counts it toward the target, and the server reports
total-traffic (dropped + passed) and total-attack-traffic (dropped) equal to those counters over the read interval
(skips without root/netns/nft)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.domain import MitigationScope, PortRange
from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.nftables import NftablesMitigator
from opendots.mitigate.nftables_ruleset import counter_name
from opendots.mitigate.nftables_watch import target_counter_name
from opendots.model import decode_signal, decode_telemetry, encode_signal, encode_telemetry
from opendots.signal.server.shell.run import start_signal_server
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import tls_files as files
from tests.helpers.nft import counter_values
from tests.helpers.server_telemetry import SERVER_ORIGINATED_SETUP, Clock
from tests.helpers.signal_server import BASE, cuid_of, request

pytestmark = pytest.mark.lab

SCOPE = "ietf-dots-signal-channel:mitigation-scope"
TT = "ietf-dots-telemetry:total-traffic"
TAT = "ietf-dots-telemetry:total-attack-traffic"
TM = "ietf-dots-telemetry:telemetry"
DROPPED_PORT, PASSED_PORT = 5005, 5006
ATTACK, LEGIT = 1500, 700
SETUP = SERVER_ORIGINATED_SETUP


def rates(entries: list[dict]) -> dict[str, str]:
    return {entry["unit"]: entry["current-g"] for entry in entries}


async def test_total_traffic_is_the_dropped_plus_the_passed_nftables_counts_and_attack_traffic_the_dropped(
    lab: Lab, table_name: str, pki_dir: Path, tmp_path: Path
):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.signal = {**config.signal, "telemetry_server_originated": True, "counters_interval": 3600}
    config.mitigators = [
        {"type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name}
    ]
    clock = Clock()
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], clock=clock)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri, cuid = f"coaps://{host}:{port}{BASE}", cuid_of(config, "client")
    victim = lab.victim_v4[0]
    tally = VictimTally(lab.victim, [DROPPED_PORT, PASSED_PORT], table=f"tally{secrets.token_hex(3)}")
    try:
        setup = encode_telemetry(SETUP)
        assert (await request(client, aiocoap.PUT, f"{uri}/tm-setup/cuid={cuid}/tsid=1", setup)).code.is_successful()
        body = {
            SCOPE: {
                "scope": [
                    {
                        "target-prefix": [f"{victim}/32"],
                        "target-protocol": [17],
                        "target-port-range": [{"lower-port": DROPPED_PORT}],
                        "lifetime": 3600,
                    }
                ]
            }
        }
        put = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=1", encode_signal(body))
        assert put.code == aiocoap.CREATED
        # §8.3: a target-only pre-or-ongoing-mitigation entry asks for the server's view of the target.
        tm = {TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": [f"{victim}/32"]}}]}}
        assert (
            await request(client, aiocoap.PUT, f"{uri}/tm/cuid={cuid}/tmid=7", encode_telemetry(tm))
        ).code.is_successful()
        await running.service.idle()

        key = f"{cuid}/1"
        await running.service.refresh_counters()  # the baseline reading
        dropped_before = counter_values(lab, table_name, counter_name(key))
        passed_before = counter_values(lab, f"{table_name}_tt", target_counter_name(key))
        options = {"duration": 10.0, "pps": 15_000, "protocol": 17}
        attack = await asyncio.to_thread(flood, lab.attacker, str(victim), DROPPED_PORT, count=ATTACK, **options)
        legit = await asyncio.to_thread(flood, lab.attacker, str(victim), PASSED_PORT, count=LEGIT, **options)
        assert (attack.sent, legit.sent) == (ATTACK, LEGIT)
        clock.now += 10
        await running.service.refresh_counters()
        dropped_after = counter_values(lab, table_name, counter_name(key))
        passed_after = counter_values(lab, f"{table_name}_tt", target_counter_name(key))
        dropped = [after - before for after, before in zip(dropped_after, dropped_before, strict=True)]
        passed = [after - before for after, before in zip(passed_after, passed_before, strict=True)]
        assert dropped[0] == ATTACK and passed[0] == LEGIT  # exact: the router counted every packet, once
        assert (tally.count(DROPPED_PORT), tally.count(PASSED_PORT)) == (0, LEGIT)  # what passed reached the victim

        expected_total = {
            "packet-ps": str(round((dropped[0] + passed[0]) / 10)),
            "bit-ps": str(round((dropped[1] + passed[1]) * 8 / 10)),
            "byte-ps": str(round((dropped[1] + passed[1]) / 10)),
        }
        expected_attack = {
            "packet-ps": str(round(dropped[0] / 10)),
            "bit-ps": str(round(dropped[1] * 8 / 10)),
            "byte-ps": str(round(dropped[1] / 10)),
        }
        assert expected_total["packet-ps"] == "220" and expected_attack["packet-ps"] == "150"

        status = await request(client, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}/mid=1")
        (entry,) = decode_signal(status.payload)[SCOPE]["scope"]  # validated against the YANG modules
        assert rates(entry[TT]) == expected_total
        assert rates(entry[TAT]) == expected_attack
        assert entry["pkts-dropped"] == str(dropped_after[0])

        got = await request(client, aiocoap.GET, f"{uri}/tm/cuid={cuid}")
        (report,) = decode_telemetry(got.payload)[TM]["pre-or-ongoing-mitigation"]
        assert rates(report["total-traffic"]) == expected_total
        assert rates(report["total-attack-traffic"]) == expected_attack
    finally:
        await client.shutdown()
        await running.stop()


async def test_nested_targets_count_what_passes_once_for_the_most_specific_mitigation_and_a_withdraw_keeps_the_rest(
    lab: Lab, nft_mitigator: NftablesMitigator, table_name: str
):
    """The counting table's interval map: a /24 and a host inside it; traffic to the host counts for the host's
    mitigation only, traffic to another host of the /24 for the /24's; once the host's mitigation is withdrawn the
    /24 counts its traffic again."""
    host, other = lab.victim_v4[0], lab.victim_v4[1]
    wide = MitigationScope(
        "c/24", (ipaddress.ip_network(f"{host}/24", strict=False),), target_port_ranges=(PortRange(9, 9),)
    )
    narrow = MitigationScope("c/32", (ipaddress.ip_network(f"{host}/32"),), target_port_ranges=(PortRange(9, 9),))
    await nft_mitigator.apply(wide)
    await nft_mitigator.apply(narrow)
    options = {"duration": 10.0, "pps": 15_000, "protocol": 17}
    assert (await asyncio.to_thread(flood, lab.attacker, str(host), PASSED_PORT, count=300, **options)).sent == 300
    assert (await asyncio.to_thread(flood, lab.attacker, str(other), PASSED_PORT, count=200, **options)).sent == 200
    found = await nft_mitigator.counters_many(["c/24", "c/32"])
    assert (found["c/32"].pkts_passed, found["c/24"].pkts_passed) == (300, 200)
    assert (found["c/32"].pkts_dropped, found["c/24"].pkts_dropped) == (0, 0)
    await nft_mitigator.withdraw("c/32")
    assert (await asyncio.to_thread(flood, lab.attacker, str(host), PASSED_PORT, count=100, **options)).sent == 100
    assert (await nft_mitigator.counters("c/24")).pkts_passed == 300
    assert target_counter_name("c/32") not in json.dumps(
        json.loads(lab.router.run(["nft", "-j", "list", "table", "netdev", f"{table_name}_tt"]).stdout)
    )
