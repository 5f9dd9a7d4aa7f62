"""The shapes a request body must have before its entries are validated: module-qualified top-level members
(RFC 7951 §4), list entries with their keys, exactly the target resource of a PUT/PATCH (RFC 8040 §4.5)."""

from __future__ import annotations

from typing import Any

from opendots.data.core import tree
from opendots.data.core.errors import RestconfError
from opendots.data.core.paths import Step
from opendots.model.data_channel import MODULE


def members_of(body: Any, allowed: set[str] | None) -> dict[str, Any]:
    """The top-level members of a body, by local name; they must be qualified with the module (RFC 7951 §4)."""
    result = {}
    for member, value in body.items():
        module, _, local = member.rpartition(":")
        if module != MODULE:
            raise RestconfError("unknown-element", f"unexpected top-level member {member!r}", path=member)
        if allowed is not None and local not in allowed:
            raise RestconfError("unknown-element", f"{member!r} cannot be created here", path=member)
        result[local] = value
    if not result:
        raise RestconfError("missing-attribute", "the body has no data")
    return result


def entries_of(value: Any, list_name: str, *, wrapped: bool, container: bool = False) -> list[dict[str, Any]]:
    """List entries from a container value ({list_name: [...]}) or a bare list."""
    if value is None:
        return []
    if wrapped or container:
        if not isinstance(value, dict) or set(value) - {list_name}:
            raise RestconfError("unknown-element", f"expected {{{list_name!r}: [...]}}")
        value = value.get(list_name, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RestconfError("invalid-value", f"{list_name} must be a list of entries")
    for item in value:
        if "name" not in item:
            raise RestconfError("missing-attribute", f"every {list_name} needs a name")
    return value


def single_member(body: Any, name: str) -> Any:
    members = members_of(body, {name})
    return members[name]


def single_entry(body: Any, list_name: str, container: str | None, key_value: str | None, key: str = "name") -> Any:
    """The one entry of a PUT/PATCH on a list instance; RFC 8783 also wraps it in its container (Fig. 25)."""
    allowed = {list_name} | ({container} if container else set())
    members = members_of(body, allowed)
    if len(members) != 1:
        raise RestconfError("invalid-value", "the body must hold exactly the target resource")
    ((member, value),) = members.items()
    if member == container:
        if not isinstance(value, dict) or set(value) != {list_name}:
            raise RestconfError("unknown-element", f"expected {{{list_name!r}: [entry]}}")
        value = value[list_name]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise RestconfError("invalid-value", f"the body must hold exactly one {list_name}")
    entry = value[0]
    if entry.get(key) != key_value:
        raise RestconfError("invalid-value", f"the {key} in the body must equal the one in the URI (RFC 8040 §4.5)")
    return entry


def single_keyed(value: Any, node: Any, step: Step) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise RestconfError("invalid-value", f"the body must hold exactly one {step.name}")
        value = value[0]
    keys = tree.key_names(node)
    if keys and (not isinstance(value, dict) or tuple(str(value.get(k)) for k in keys) != step.keys):
        raise RestconfError("invalid-value", "the keys in the body must equal the ones in the URI (RFC 8040 §4.5)")
    if not keys and str(value) != (step.keys or ("",))[0]:
        raise RestconfError("invalid-value", "a leaf-list instance cannot change its value")
    return value
