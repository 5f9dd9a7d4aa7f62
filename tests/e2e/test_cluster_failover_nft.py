"""Two `opendots server` processes on one PostgreSQL driving nftables on a router namespace the test creates
(issue #18): a mitigation enforced by the lease holder A keeps dropping the flood after A is killed with SIGKILL (the
kernel keeps A's table), B takes the mitigator lease and re-applies what the database holds (a new table in the
namespace, its drop counter carried over), the flood is still dropped and counted, and nothing acknowledged is
lost (RFC 9132 §4.4.2: B answers for the mitigation)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import aiocoap
import pytest

from opendots.config import ServerConfig
from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.nftables_ruleset import counter_name
from tests.conftest import free_port
from tests.helpers.cluster import DotsClient, Node, drain, start_server_process
from tests.helpers.nft import counter_values, table_listing
from tests.helpers.polling import until
from tests.helpers.postgres import Cluster, throwaway_cluster

pytestmark = [pytest.mark.lab, pytest.mark.timeout(240)]

PORT = 5005
PACKETS = 400
PPS = 10_000


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    yield from throwaway_cluster()


async def _node(pki: Path, name: str, url: str, lab: Lab, table: str) -> Node:
    """A node whose mitigator is nftables on the lab router's attacker-facing interface (the same for both nodes:
    whichever holds the lease drives it)."""
    admin = Path("/tmp") / f"od-{name}-{table}.sock"
    text = (
        (pki / "server.toml").read_text().replace('admin_socket = "opendots-server.sock"', f'admin_socket = "{admin}"')
    )
    text += (
        f'\n[[mitigators]]\ntype = "nftables"\ninterface = "{lab.router_ingress}"\ntable = "{table}"\n'
        f'netns = "{lab.router.name}"\n'
    )
    config = pki / f"server-{name}.toml"
    config.write_text(text)
    port = free_port()
    process = await start_server_process(config, port, url)
    assert process.stderr is not None
    asyncio.get_running_loop().create_task(drain(process.stderr))
    return Node(name, process, port, admin)


def _table_handle(lab: Lab, table: str) -> int | None:
    """The kernel's handle of netdev TABLE in the router namespace (a table created again gets a new one)."""
    result = lab.router.run(["nft", "-a", "list", "table", "netdev", table], check=False)
    found = re.search(r"# handle (\d+)", result.stdout) if result.returncode == 0 else None
    return int(found.group(1)) if found else None


def _delivered(lab: Lab, tally: VictimTally, destination: str) -> int:
    before = tally.count(PORT)
    sent = flood(lab.attacker, destination, PORT, count=PACKETS, duration=10.0, pps=PPS)
    assert sent.sent == PACKETS
    return tally.count(PORT) - before


async def test_a_mitigation_enforced_by_a_killed_node_stays_dropped_and_its_successor_reapplies_it(
    lab: Lab, table_name: str, pki_dir: Path, postgres: Cluster
):
    url = await asyncio.to_thread(postgres.fresh_database)
    cuid = next(c.cuid for c in ServerConfig.load(pki_dir / "server.toml").clients if c.name == "client")
    victim = str(lab.victim_v4[0])
    tally = VictimTally(lab.victim, [PORT], table=f"tally{table_name[-4:]}")
    a = await _node(pki_dir, "a", url, lab, table_name)
    b = await _node(pki_dir, "b", url, lab, table_name)
    client = await DotsClient.open(pki_dir, "client", cuid)
    counter = counter_name(f"{cuid}/1")
    try:
        assert _delivered(lab, tally, victim) == PACKETS  # the lab forwards the flood unmitigated
        assert (await a.status())["cluster"]["lease"] and not (await b.status())["cluster"]["lease"]

        # Enforced by A, the lease holder; acknowledged (2.01) only once stored in PostgreSQL.
        assert (await client.put(a, 1, f"{victim}/32")).code == aiocoap.CREATED

        async def enforced() -> bool:
            listing = table_listing(lab, table_name)
            return listing is not None and victim in listing

        await until(enforced, "A installs the mitigation in the router namespace")
        assert _delivered(lab, tally, victim) == 0
        assert counter_values(lab, table_name, counter)[0] == PACKETS
        handle_a = _table_handle(lab, table_name)
        assert handle_a is not None

        a.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(a.process.wait(), 20)
        # The kernel keeps what A installed: the flood is still dropped while nobody holds the lease.
        assert _delivered(lab, tally, victim) == 0

        async def b_holds_the_lease() -> bool:
            return (await b.status())["cluster"]["lease"]

        await until(b_holds_the_lease, "B takes the mitigator lease after A is killed")

        async def reapplied() -> bool:
            return _table_handle(lab, table_name) not in (None, handle_a)

        await until(reapplied, "B re-applies what the database holds (a new table in the namespace)")
        listing = table_listing(lab, table_name)
        assert listing is not None and victim in listing
        dropped_before = counter_values(lab, table_name, counter)[0]
        assert dropped_before == 2 * PACKETS  # A's count, carried into B's table
        assert _delivered(lab, tally, victim) == 0
        assert counter_values(lab, table_name, counter)[0] == 3 * PACKETS  # B's rule counts the drops

        # Nothing acknowledged is lost: B answers for the mitigation, active.
        [entry] = await client.entries(b, 1)
        assert entry["status"] == "attack-mitigation-in-progress"
        status = await b.status()
        assert status["drives-mitigators"] and status["cluster"]["leases-taken"] == 1
    finally:
        await client.close()
        for node in (a, b):
            await node.stop()
        if table_listing(lab, table_name) is not None:
            lab.router.run(["nft", "delete", "table", "netdev", table_name])
        lab.victim.run(["nft", "delete", "table", "inet", tally.table], check=False)
