"""Gateway chains across network namespaces the test creates (issue #17, RFC 8811 §2.3, RFC 9132 §4.4.1):

    client (agent) ── gateway (`opendots gateway`) ── router (`opendots server` + nftables) ── victim
                                                        └── attacker (the flood)

Each process runs in its own namespace and reaches the next hop by a routed address on a veth (no loopback
between them); the server's nftables mitigator acts in its own namespace, the router, on the attacker-facing
interface. Every claim is a packet count at the victim or on the router's nft counter, never a duration.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab, Namespace
from opendots.lab.processes import ProcessStack, wait_for
from opendots.mitigate.nftables_ruleset import counter_name
from tests.helpers.gateway import (
    GatewayProcess,
    chain_running,
    in_front_of,
    point_agent_at,
    server_admin,
    stack_with_admin,
)
from tests.helpers.nft import counter_values, table_listing
from tests.helpers.signal_harness import SCOPE

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

# Documentation addresses (RFC 5737): client ── 192.0.2.0/30 ── gateway ── 192.0.2.4/30 ── router.
CLIENT_SIDE = "192.0.2.2"
GATEWAY_DOWNSTREAM = "192.0.2.1"
GATEWAY_UPSTREAM = "192.0.2.6"
ROUTER_SIDE = "192.0.2.5"
PORT = 5006
PACKETS = 300
PPS = 5_000
WITHDRAWN = "dots-client-withdrawn-mitigation"


@dataclass
class ChainLab:
    lab: Lab
    client: Namespace
    gateway: Namespace


@pytest.fixture(scope="module")
def chain_lab(lab: Lab) -> ChainLab:
    """The module's lab (attacker → router → victim) with a client and a gateway namespace in front of the router."""
    client = lab.add_namespace("cli")
    gateway = lab.add_namespace("gw")
    lab.connect(client, ("c-gw", f"{CLIENT_SIDE}/30"), gateway, ("g-cli", f"{GATEWAY_DOWNSTREAM}/30"))
    lab.connect(gateway, ("g-rtr", f"{GATEWAY_UPSTREAM}/30"), lab.router, ("r-gw", f"{ROUTER_SIDE}/30"))
    return ChainLab(lab, client, gateway)


@pytest.fixture
def tally(chain_lab: ChainLab, table_name: str) -> Iterator[VictimTally]:
    victim = chain_lab.lab.victim
    counted = VictimTally(victim, [PORT], table=f"tally{table_name[-4:]}")
    yield counted
    victim.run(["nft", "delete", "table", "inet", counted.table], check=False)


@pytest.fixture
def stack(chain_lab: ChainLab, table_name: str, tmp_path: Path) -> Iterator[ProcessStack]:
    """Server in the router namespace (nftables there, on the attacker-facing interface), agent in the client's."""
    lab = chain_lab.lab
    mitigator = {"type": "nftables", "interface": lab.router_ingress, "table": table_name}
    with stack_with_admin(tmp_path / "stack", mitigators=[mitigator]) as running:
        running.server_config.listen = [ROUTER_SIDE]
        running.server_config.save(running.server_config_path)
        running.namespaces = {"server": lab.router, "agent": chain_lab.client}
        try:
            yield running
        finally:
            running.close()
            lab.router.run(["nft", "delete", "table", "netdev", table_name], check=False)


def across(chain_lab: ChainLab, stack: ProcessStack, kind: str, name: str, **options) -> GatewayProcess:
    """A gateway of KIND in the gateway namespace, between the client namespace's agent and the router's server."""
    gateway = in_front_of(stack, kind, name, **options)
    gateway.namespace = chain_lab.gateway
    gateway.listen = GATEWAY_DOWNSTREAM
    gateway.upstream_address = ROUTER_SIDE
    point_agent_at(stack, gateway.port, GATEWAY_DOWNSTREAM)
    return gateway


def delivered(lab: Lab, tally: VictimTally) -> int:
    """Flood the first victim address from the attacker; how many of the packets reached the victim."""
    before = tally.count(PORT)
    sent = flood(lab.attacker, str(lab.victim_v4[0]), PORT, count=PACKETS, duration=10.0, pps=PPS)
    assert sent.sent == PACKETS
    return tally.count(PORT) - before


def mitigate(stack: ProcessStack, lab: Lab, mid: int) -> dict:
    """`opendots client mitigate` through the agent (its control socket), for the first victim address."""
    target = f"{lab.victim_v4[0]}/32"
    result = stack.cli("client", "mitigate", "--target-prefix", target, "--mid", str(mid), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer[SCOPE]["scope"][0]["mid"] == mid
    return answer


def held(stack: ProcessStack) -> list[dict]:
    """What the server holds, not withdrawn (its admin socket: a Unix socket, shared across network namespaces)."""
    return [m for m in server_admin(stack, "mitigations")["mitigations"] if m["status"] != WITHDRAWN]


def wait_enforced(lab: Lab, table: str, present: bool = True) -> None:
    victim = str(lab.victim_v4[0])

    def enforced() -> bool:
        listing = table_listing(lab, table)
        return (listing is not None and victim in listing) == present

    wait_for(enforced, 30, f"the router's table {'with' if present else 'without'} {victim}", interval=0.1)


def test_a_client_domain_gateway_in_its_own_namespace_relays_a_mitigation_the_router_enforces_and_withdraws(
    chain_lab: ChainLab, stack: ProcessStack, tally: VictimTally, table_name: str
) -> None:
    """RFC 9132 §4.4.1: the agent's request crosses the gateway namespace; the server holds it under the gateway's
    cuid and drops the flood on the router; withdrawn through the chain (§4.4.4), the flood passes again."""
    lab = chain_lab.lab
    assert delivered(lab, tally) == PACKETS  # the lab forwards the flood unmitigated
    gateway = across(chain_lab, stack, "client-domain", "gw1")
    with chain_running(stack, gateway):
        mitigate(stack, lab, 40)
        (mitigation,) = held(stack)
        assert (mitigation["client"], mitigation["cuid"]) == ("gw1", gateway.cuid)
        wait_enforced(lab, table_name)
        assert delivered(lab, tally) == 0
        counter = counter_name(f"{gateway.cuid}/{mitigation['mid']}")
        assert counter_values(lab, table_name, counter)[0] == PACKETS

        withdrawn = stack.cli("client", "withdraw", "--mid", "40")
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert "2.02" in withdrawn.stdout, withdrawn.stdout
        # Enforced for the server's active-but-terminating period (1 s in the lab), then removed from the router.
        wait_enforced(lab, table_name, present=False)
        assert held(stack) == []
        assert delivered(lab, tally) == PACKETS


def test_a_server_domain_gateway_in_its_own_namespace_carries_the_clients_cdid_to_the_server(
    chain_lab: ChainLab, stack: ProcessStack, tally: VictimTally, table_name: str
) -> None:
    """RFC 9132 §4.4.1.2: the server, which knows only the gateway, holds the mitigation under the client's cuid with
    its 'cdid' (the SPKI hash of the client's certificate, seen by the gateway only), and enforces it."""
    lab = chain_lab.lab
    gateway = across(chain_lab, stack, "server-domain", "sgw", only_gateway=True)
    with chain_running(stack, gateway):
        mitigate(stack, lab, 12)
        assert [(m["client"], m["cuid"], m["mid"], m.get("cdid")) for m in held(stack)] == [
            ("sgw", stack.cuid, 12, stack.cuid)
        ]
        wait_enforced(lab, table_name)
        assert delivered(lab, tally) == 0


def test_after_an_upstream_server_restart_the_gateway_re_establishes_the_mitigation_and_the_router_drops_again(
    chain_lab: ChainLab, stack: ProcessStack, tally: VictimTally, table_name: str
) -> None:
    """RFC 9132 §4.7: the server is killed in its namespace and comes back with nothing (no database, no nft
    table); the gateway's upstream leg finds a new session and PUTs the accepted mitigation again, so the router
    drops the flood again, while the agent's own session with the gateway never broke."""
    lab = chain_lab.lab
    gateway = across(chain_lab, stack, "client-domain", "gw1")
    with chain_running(stack, gateway):
        gateway.fast_heartbeats()
        mitigate(stack, lab, 5)
        ((upstream_mid, _),) = [(m["mid"], m["client"]) for m in held(stack)]
        wait_enforced(lab, table_name)
        assert delivered(lab, tally) == 0

        stack.kill_server()
        for stale in stack.directory.glob("opendots.db*"):
            stale.unlink()
        lab.router.run(["nft", "delete", "table", "netdev", table_name])
        assert delivered(lab, tally) == PACKETS  # nothing enforces it any more
        stack.start_server()

        wait_for(lambda: [(m["client"], m["mid"]) for m in held(stack)] == [("gw1", upstream_mid)], 60,
                 "the gateway's mitigation re-established on the restarted server", interval=0.2)  # fmt: skip
        wait_enforced(lab, table_name)
        assert delivered(lab, tally) == 0
        counter = counter_name(f"{gateway.cuid}/{upstream_mid}")
        assert counter_values(lab, table_name, counter)[0] == PACKETS
        wait_for(lambda: (s := gateway.status()) and s["counters"].get("reestablished") == 1, 20,
                 "the re-establishment counted by the gateway")  # fmt: skip
        assert [entry["mid"] for entry in stack.status_entries()] == [5]
