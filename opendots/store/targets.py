"""The target prefixes a stored mitigation request names, and which stored mitigations they overlap: the search a
store offers to narrow candidates (the core still decides on each candidate exactly, opendots.signal.server.core.scope).

Both backends answer the same: SQLite by this module over the rows, PostgreSQL with `cidr` columns and a GiST index
(opendots.store.postgres_targets). Only the request's own 'target-prefix' entries count (an alias's prefixes live in
the data channel and are the core's business); a stored request whose prefixes cannot be read stands for every
address (0.0.0.0/0 and ::/0), so a narrowing search never leaves out a mitigation it should return.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from opendots.domain import IPNetwork

EVERYWHERE: tuple[IPNetwork, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def request_prefixes(request: Mapping[str, Any] | Any) -> tuple[IPNetwork, ...]:
    """The networks of REQUEST's 'target-prefix' (host bits cleared, as PostgreSQL's network()); EVERYWHERE when
    they cannot be read."""
    if not isinstance(request, Mapping):
        return EVERYWHERE
    prefixes = request.get("target-prefix", [])
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        return EVERYWHERE
    try:
        return tuple(dict.fromkeys(ipaddress.ip_network(p, strict=False) for p in prefixes))
    except ValueError:
        return EVERYWHERE


def overlap(first: IPNetwork, second: IPNetwork) -> bool:
    """PostgreSQL's `&&` on two cidr values: same family and one contains the other."""
    return first.version == second.version and first.overlaps(second)  # type: ignore[arg-type]


def overlapping_keys(
    rows: Iterable[tuple[str, int, Mapping[str, Any]]], prefixes: Iterable[IPNetwork]
) -> list[tuple[str, int]]:
    """The (cuid, mid) of ROWS (cuid, mid, request) naming a prefix that overlaps one of PREFIXES, sorted."""
    wanted = list(prefixes)
    return sorted(
        (cuid, mid)
        for cuid, mid, request in rows
        if any(overlap(held, query) for held in request_prefixes(request) for query in wanted)
    )
