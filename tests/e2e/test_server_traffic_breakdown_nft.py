"""RFC 9244 §8.3 'total-traffic-protocol' and 'total-traffic-port' from real nftables counters: a mitigation of UDP
and TCP to two ports of the victim, an nftables mitigator with `count_breakdown`; floods of UDP to one port, TCP to
the other (both dropped) and UDP to a third port the mitigation does not name (passed) cross the router; the
breakdown table, hooked before the drop, counts each packet once, and the server's /tm answer read back over the
signal channel gives per protocol and per port the rates of those counts, and nothing for what was not counted
(skips without root/netns/nft)."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.domain import MitigationScope, PortRange
from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.nftables import NftablesMitigator
from opendots.mitigate.nftables_breakdown import port_counter_name, protocol_counter_name
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
TM = "ietf-dots-telemetry:telemetry"
UDP_PORT, TCP_PORT, OTHER_PORT = 5005, 5006, 5007
UDP_FLOOD, TCP_FLOOD, PASSED = 1500, 700, 300


def per(entries: list[dict], member: str) -> dict[int, str]:
    return {entry[member]: entry["current-g"] for entry in entries if entry["unit"] == "packet-ps"}


async def test_the_traffic_per_protocol_and_port_read_back_over_the_signal_channel_is_what_nftables_counted(
    lab: Lab, table_name: str, pki_dir: Path, tmp_path: Path
):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.signal = {**config.signal, "telemetry_server_originated": True, "counters_interval": 3600}
    config.mitigators = [{
        "type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name,
        "count_breakdown": True,
    }]  # fmt: skip
    clock = Clock()
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], clock=clock)
    client = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    host, port = running.endpoint.dtls_addresses[0][:2]
    uri, cuid = f"coaps://{host}:{port}{BASE}", cuid_of(config, "client")
    victim = lab.victim_v4[0]
    tally = VictimTally(lab.victim, [UDP_PORT, TCP_PORT, OTHER_PORT], (6, 17), table=f"tally{secrets.token_hex(3)}")
    try:
        setup = encode_telemetry(SERVER_ORIGINATED_SETUP)
        assert (await request(client, aiocoap.PUT, f"{uri}/tm-setup/cuid={cuid}/tsid=1", setup)).code.is_successful()
        entry = {
            "target-prefix": [f"{victim}/32"],
            "target-protocol": [6, 17],
            "target-port-range": [{"lower-port": UDP_PORT, "upper-port": TCP_PORT}],
            "lifetime": 3600,
        }
        put = await request(client, aiocoap.PUT, f"{uri}/mitigate/cuid={cuid}/mid=1", encode_signal({SCOPE: {
            "scope": [entry]}}))  # fmt: skip
        assert put.code == aiocoap.CREATED
        tm = {TM: {"pre-or-ongoing-mitigation": [{"target": {"target-prefix": [f"{victim}/32"]}}]}}
        answer = await request(client, aiocoap.PUT, f"{uri}/tm/cuid={cuid}/tmid=7", encode_telemetry(tm))
        assert answer.code.is_successful()
        await running.service.idle()

        key = f"{cuid}/1"
        names = {
            ("protocol", 17): protocol_counter_name(key, 17),
            ("protocol", 6): protocol_counter_name(key, 6),
            ("port", UDP_PORT): port_counter_name(key, UDP_PORT),
            ("port", TCP_PORT): port_counter_name(key, TCP_PORT),
        }
        await running.service.refresh_counters()  # the baseline reading
        before = {what: counter_values(lab, f"{table_name}_bd", name)[0] for what, name in names.items()}
        options = {"duration": 10.0, "pps": 15_000}
        sent = [
            await asyncio.to_thread(
                flood, lab.attacker, str(victim), UDP_PORT, count=UDP_FLOOD, protocol=17, **options
            ),
            await asyncio.to_thread(
                flood, lab.attacker, str(victim), TCP_PORT, count=TCP_FLOOD, protocol=6, tcp_flags=0x02, **options
            ),
            await asyncio.to_thread(flood, lab.attacker, str(victim), OTHER_PORT, count=PASSED, protocol=17, **options),
        ]
        assert [result.sent for result in sent] == [UDP_FLOOD, TCP_FLOOD, PASSED]
        clock.now += 10
        await running.service.refresh_counters()
        after = {what: counter_values(lab, f"{table_name}_bd", name)[0] for what, name in names.items()}
        counted = {what: after[what] - before[what] for what in names}
        # Exact: the router counted every packet once, before the drop (the dropped ones never reach the victim).
        assert counted == {
            ("protocol", 17): UDP_FLOOD + PASSED,
            ("protocol", 6): TCP_FLOOD,
            ("port", UDP_PORT): UDP_FLOOD,
            ("port", TCP_PORT): TCP_FLOOD,
        }
        assert tally.counts().get((17, OTHER_PORT)) == PASSED and not tally.counts().get((17, UDP_PORT))

        got = await request(client, aiocoap.GET, f"{uri}/tm/cuid={cuid}")
        (report,) = decode_telemetry(got.payload)[TM]["pre-or-ongoing-mitigation"]  # validated against the YANG
        assert per(report["total-traffic-protocol"], "protocol") == {17: "180", 6: "70"}  # packets per second
        assert per(report["total-traffic-port"], "port") == {UDP_PORT: "150", TCP_PORT: "70"}  # 5007: not counted
        assert "attack-detail" not in report  # nothing measured says which attack that was

        status = await request(client, aiocoap.GET, f"{uri}/mitigate/cuid={cuid}/mid=1")
        (shown,) = decode_signal(status.payload)[SCOPE]["scope"]
        assert "ietf-dots-telemetry:total-traffic" in shown  # §9.2 has the total, not the per-protocol/port lists
        assert not [name for name in shown if name.startswith("ietf-dots-telemetry:total-traffic-")]
    finally:
        await client.shutdown()
        await running.stop()


async def test_a_mitigation_sharing_its_addresses_gets_no_breakdown_and_a_restart_keeps_the_counts(
    lab: Lab, table_name: str
):
    """A /24 with a host inside it under another mitigation: the host's traffic counts for the host only, so the
    /24 would get a partial figure and gets none; its own counting starts once the host's mitigation is withdrawn.
    A restarted mitigator (restore) keeps counting from where the counters were; a breakdown table deleted by hand
    is built again by the next change."""
    host = lab.victim_v4[0]
    wide = MitigationScope("c/24", (ipaddress.ip_network(f"{host}/24", strict=False),), (PortRange(9, 9),), (17,))
    narrow = MitigationScope("c/32", (ipaddress.ip_network(f"{host}/32"),), (PortRange(9, 9),), (17,))
    options = {"duration": 10.0, "pps": 15_000, "protocol": 17}
    mitigator = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name, count_breakdown=True)
    try:
        await mitigator.apply(wide)
        await mitigator.apply(narrow)
        assert (await asyncio.to_thread(flood, lab.attacker, str(host), 9, count=200, **options)).sent == 200
        found = await mitigator.counters_many(["c/24", "c/32"])
        assert found["c/32"].by_protocol == ((17, 200, found["c/32"].by_protocol[0][2]),)
        assert [port for port, _, _ in found["c/32"].by_port or ()] == [9]
        assert found["c/24"].by_protocol is None and found["c/24"].by_port is None
        await mitigator.withdraw("c/32")
        assert (await asyncio.to_thread(flood, lab.attacker, str(host), 9, count=100, **options)).sent == 100
        assert (await mitigator.counters("c/24")).by_protocol[0][:2] == (17, 100)  # type: ignore[index]

        restarted = NftablesMitigator(lab.router_ingress, table=table_name, netns=lab.router.name, count_breakdown=True)
        assert await restarted.restore([wide]) == {}
        assert (await asyncio.to_thread(flood, lab.attacker, str(host), 9, count=50, **options)).sent == 50
        assert (await restarted.counters("c/24")).by_port[0][:2] == (9, 150)  # type: ignore[index]
        # Deleted by hand: the next change builds it again (counting from there), the drops never stopped.
        lab.router.run(["nft", "delete", "table", "netdev", f"{table_name}_bd"])
        await restarted.apply(narrow)
        assert (await asyncio.to_thread(flood, lab.attacker, str(host), 9, count=40, **options)).sent == 40
        assert (await restarted.counters("c/32")).by_protocol[0][:2] == (17, 40)  # type: ignore[index]
        assert (await restarted.counters("c/24")).by_protocol is None
    finally:
        await mitigator.cleanup()
    assert f"{table_name}_bd" not in lab.router.run(["nft", "list", "tables"]).stdout
