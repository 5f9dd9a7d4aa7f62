"""Where new and moved entries go in ordered-by-user lists (RFC 8040 §4.8.5 `insert` and `point`): ACLs by a
stored sort key, list entries inside one ACL by index."""

from __future__ import annotations

from opendots.data.core.errors import RestconfError
from opendots.data.core.paths import parse_steps
from opendots.data.core.query import QueryParameters
from opendots.model.data_channel import MODULE

RESTCONF_DATA = "/restconf/data"


def insert_not_allowed() -> RestconfError:
    return RestconfError(
        "invalid-value", "insert/point apply only to ordered-by user lists (acl, ace)", error_type="protocol"
    )


def point_name(point: str | None, list_name: str) -> str:
    if point is None:
        raise RestconfError("invalid-value", "point is missing", error_type="protocol")
    # A target resource URI (with or without the API root), or just the entry's own segment ("acl=x").
    point = point.removeprefix(RESTCONF_DATA)
    steps = parse_steps(point if point.startswith("/") else f"/{MODULE}:{point}")
    last = steps[-1] if steps else None
    if last is None or last.name != list_name or not last.keys or len(last.keys) != 1:
        raise RestconfError("invalid-value", f"point must name a {list_name} entry", error_type="protocol")
    return last.keys[0]


def block_positions(ordered: list[tuple[str, float]], count: int, insert: str, point: str | None) -> list[float]:
    """Sort keys for COUNT new ACLs placed together, in body order, per RFC 8040 §4.8.5 `insert`/`point`.

    ORDERED: the client's stored (name, position), sorted by position; POINT: the name of the ACL `before`/`after`
    refers to. One pass over ORDERED whatever COUNT is (the ACLs of one request follow each other).
    """
    if count == 0:
        return []
    if not ordered:
        return [float(i) for i in range(count)]
    if insert == "first":
        return [ordered[0][1] - count + i for i in range(count)]
    if insert == "last":
        return [ordered[-1][1] + 1 + i for i in range(count)]
    index = next((i for i, (name, _) in enumerate(ordered) if name == point), None)
    if index is None:
        raise RestconfError("invalid-value", f"insertion point acl={point} does not exist", error_type="protocol")
    if insert == "before":
        low = ordered[index - 1][1] if index > 0 else ordered[index][1] - 2.0
        high = ordered[index][1]
    else:
        low = ordered[index][1]
        high = ordered[index + 1][1] if index + 1 < len(ordered) else ordered[index][1] + 2.0
    step = (high - low) / (count + 1)
    return [low + step * (i + 1) for i in range(count)]


def list_index(names: list[str], query: QueryParameters, list_name: str) -> int:
    """Index for a new entry of an ordered list inside one entry (e.g. an ACE), per `insert`/`point`."""
    if query.insert in (None, "last"):
        return len(names)
    if query.insert == "first":
        return 0
    point = point_name(query.point, list_name)
    if point not in names:
        raise RestconfError(
            "invalid-value", f"insertion point {list_name}={point} does not exist", error_type="protocol"
        )
    return names.index(point) + (1 if query.insert == "after" else 0)
