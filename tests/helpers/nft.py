"""Reading the lab router's nftables state straight from the kernel, for the e2e tests' assertions."""

from __future__ import annotations

import json

from opendots.lab import Lab


def table_listing(lab: Lab, table: str) -> str | None:
    """`nft list table netdev TABLE` on the router, None when there is no such table."""
    result = lab.router.run(["nft", "list", "table", "netdev", table], check=False)
    return result.stdout if result.returncode == 0 else None


def named_counters(lab: Lab, table: str) -> dict[str, int]:
    """Packets of every named counter of netdev TABLE on the router ({} when the table is gone)."""
    result = lab.router.run(["nft", "-j", "list", "counters", "table", "netdev", table], check=False)
    if result.returncode != 0:
        return {}
    items = json.loads(result.stdout)["nftables"]
    return {item["counter"]["name"]: item["counter"]["packets"] for item in items if "counter" in item}


def counter_values(lab: Lab, table: str, name: str) -> tuple[int, int]:
    """(packets, bytes) of the named counter NAME of netdev TABLE on the router."""
    listing = lab.router.run(["nft", "-j", "list", "counter", "netdev", table, name]).stdout
    counter = next(item["counter"] for item in json.loads(listing)["nftables"] if "counter" in item)
    return counter["packets"], counter["bytes"]
