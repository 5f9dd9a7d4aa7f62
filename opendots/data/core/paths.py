"""RESTCONF data resource identifiers (RFC 8040 §3.5.3) for the data channel's resources."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from opendots.data.core.errors import RestconfError
from opendots.model.data_channel import MODULE

MAPPING_MODULE = "ietf-dots-mapping"  # RFC 9244 §8.1.6: its 'vendor-mapping' augments dots-data and dots-client

_IDENTIFIER = re.compile(r"^(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)$")


@dataclass(frozen=True)
class Step:
    """One path segment: a node name and, for a list or leaf-list instance, its key values."""

    name: str
    keys: tuple[str, ...] | None = None

    def __str__(self) -> str:
        return self.name if self.keys is None else f"{self.name}={','.join(self.keys)}"


@dataclass(frozen=True)
class DataPath:
    """A request path below `{+restconf}/data`, in the terms of `ietf-dots-data-channel`.

    kind: datastore | dots-data | capabilities | client | aliases | alias | acls | acl | server-mapping |
    client-mapping (RFC 9244 §8.1.6; `inner`: an optional vendor=<id>)
    `inner` holds the steps below an alias or ACL entry (e.g. aces/ace=r1/matches), or below the client or
    capabilities for leaves.
    """

    kind: str
    cuid: str | None = None
    name: str | None = None
    inner: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()

    def with_inner(self) -> bool:
        return bool(self.inner)


def bad_path(message: str) -> RestconfError:
    return RestconfError("invalid-value", message, status=400, error_type="protocol")


def parse_steps(raw_path: str) -> tuple[Step, ...]:
    """Split a percent-encoded path into steps; key values are decoded after splitting on ',' (§3.5.3)."""
    steps = []
    modules = []
    for segment in filter(None, raw_path.split("/")):
        identifier, has_keys, raw_keys = segment.partition("=")
        match = _IDENTIFIER.match(unquote(identifier))
        if not match:
            raise bad_path(f"not a data node identifier: {identifier!r}")
        module, name = match.groups()
        if not steps and module is None:
            raise bad_path(f"top-level node {name!r} needs its module name (RFC 8040 §3.5.3)")
        modules.append(module)
        if module not in (None, MODULE, MAPPING_MODULE):
            raise bad_path(f"unknown module {module!r}")
        keys = tuple(unquote(key) for key in raw_keys.split(",")) if has_keys else None
        steps.append(Step(name, keys))
    return tuple(steps)


def classify(steps: tuple[Step, ...]) -> DataPath:
    """Map STEPS onto the data channel's resources, rejecting paths the schema does not have."""
    if not steps:
        return DataPath("datastore", steps=steps)
    first, *rest = steps
    if first != Step("dots-data"):
        raise RestconfError("invalid-value", f"no such resource: {first}", status=404, error_type="protocol")
    if not rest:
        return DataPath("dots-data", steps=steps)
    head, *rest = rest
    if head == Step("vendor-mapping"):
        return DataPath("server-mapping", inner=tuple(rest), steps=steps)
    if head.name == "capabilities" and head.keys is None:
        return DataPath("capabilities", inner=tuple(rest), steps=steps)
    if head.name != "dots-client" or head.keys is None or len(head.keys) != 1:
        raise bad_path(f"expected capabilities or dots-client=<cuid>, not {head}")
    cuid = head.keys[0]
    if not rest:
        return DataPath("client", cuid, steps=steps)
    container, *rest = rest
    if container == Step("vendor-mapping"):
        return DataPath("client-mapping", cuid, inner=tuple(rest), steps=steps)
    lists = {"aliases": "alias", "acls": "acl"}
    if container.name not in lists or container.keys is not None:
        if container.name in ("cuid", "cdid") and container.keys is None and not rest:
            return DataPath("client", cuid, inner=(container,), steps=steps)
        raise bad_path(f"no such node below dots-client: {container}")
    if not rest:
        return DataPath(container.name, cuid, steps=steps)
    entry, *inner = rest
    if entry.name != lists[container.name] or entry.keys is None or len(entry.keys) != 1:
        raise bad_path(f"expected {lists[container.name]}=<name>, not {entry}")
    return DataPath(entry.name, cuid, entry.keys[0], tuple(inner), steps=steps)


def parse_data_path(raw_path: str) -> DataPath:
    return classify(parse_steps(raw_path))
