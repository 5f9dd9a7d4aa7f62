"""The configured router drives a real nftables actuator: apply installs, restore replaces, withdraw removes."""

from __future__ import annotations

import ipaddress

import pytest

from opendots.config import ServerConfig
from opendots.lab.netns import Lab
from opendots.mitigate.base import MitigationScope
from opendots.mitigate.router import build_router

pytestmark = pytest.mark.lab


def table_exists(lab: Lab, table: str) -> bool:
    return lab.router.run(["nft", "list", "table", "netdev", table], check=False).returncode == 0


async def test_router_from_config_enforces_through_nftables(lab: Lab, table_name: str, server_config: ServerConfig):
    server_config.mitigators = [
        {"type": "nftables", "interface": lab.router_ingress, "table": table_name, "netns": lab.router.name}
    ]
    cuid = server_config.clients[0].cuid
    victim = ipaddress.ip_network(f"{lab.victim_v4[0]}/32")
    first = MitigationScope(key=f"{cuid}/1", target_prefixes=(victim,))
    stale = MitigationScope(key=f"{cuid}/2", target_prefixes=(ipaddress.ip_network("203.0.113.200/32"),))
    router = build_router(server_config)
    try:
        await router.apply(first)
        await router.apply(stale)
        assert table_exists(lab, table_name)

        # A restarted server restores only what is still active: the stale mitigation disappears.
        restarted = build_router(server_config)
        assert await restarted.restore([first]) == {}
        listing = lab.router.run(["nft", "list", "table", "netdev", table_name]).stdout
        assert str(lab.victim_v4[0]) in listing and "203.0.113.200" not in listing
        counters = await restarted.counters(first.key)
        assert counters.pkts_dropped == 0 and counters.bytes_dropped == 0

        await restarted.withdraw(first.key)
        assert not table_exists(lab, table_name)
    finally:
        if table_exists(lab, table_name):
            lab.router.run(["nft", "delete", "table", "netdev", table_name])
