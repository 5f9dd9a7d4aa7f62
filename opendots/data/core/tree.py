"""Editing RFC 7951 JSON below an alias or ACL entry, guided by the schema (list keys, node kinds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yangson.schemanode import InternalNode, LeafListNode, ListNode, SchemaNode

from opendots.data.core.errors import RestconfError, not_found
from opendots.data.core.paths import Step
from opendots.model.data_channel import MODULE


def key_names(node: SchemaNode) -> tuple[str, ...]:
    return tuple(key[0] for key in getattr(node, "keys", None) or ())


def child_node(node: SchemaNode, name: str) -> SchemaNode:
    child = node.get_data_child(name.split(":", 1)[-1], MODULE) if isinstance(node, InternalNode) else None
    if child is None:
        raise RestconfError("unknown-element", f"no data node {name!r} here", error_type="protocol")
    return child


@dataclass
class Location:
    """Where a step path points inside a JSON object: the member of PARENT, and the list index if any."""

    parent: dict[str, Any]
    member: str
    node: SchemaNode
    index: int | None
    keys: tuple[str, ...] | None

    def exists(self) -> bool:
        if self.member not in self.parent:
            return False
        return self.keys is None or self.index is not None

    def value(self) -> Any:
        if self.keys is None:
            return self.parent[self.member]
        return self.parent[self.member][self.index]


def _matches(node: SchemaNode, item: Any, keys: tuple[str, ...]) -> bool:
    if isinstance(node, LeafListNode):
        return str(item) == keys[0]
    return all(str(item.get(name)) == value for name, value in zip(key_names(node), keys, strict=True))


def locate(root: dict[str, Any], root_node: SchemaNode, steps: tuple[Step, ...]) -> Location:
    """Follow STEPS from ROOT (an entry of ROOT_NODE); every step but the last must exist."""
    current, node = root, root_node
    location: Location | None = None
    for position, step in enumerate(steps):
        child = child_node(node, step.name)
        is_list = isinstance(child, ListNode | LeafListNode)
        if (step.keys is not None) != (is_list and isinstance(child, ListNode | LeafListNode)) or (
            step.keys is not None and isinstance(child, ListNode) and len(step.keys) != len(key_names(child))
        ):
            raise RestconfError("invalid-value", f"{step}: keys do not match the schema", error_type="protocol")
        index = None
        if step.keys is not None:
            items = current.get(step.name, [])
            index = next((i for i, item in enumerate(items) if _matches(child, item, step.keys)), None)
        location = Location(current, step.name, child, index, step.keys)
        if position < len(steps) - 1:
            if not location.exists():
                raise not_found(str(step))
            value = location.value()
            if not isinstance(value, dict):
                raise RestconfError("invalid-value", f"{step} has no children", error_type="protocol")
            current, node = value, child
    assert location is not None
    return location


def delete(location: Location) -> None:
    if not location.exists():
        raise not_found(location.member)
    if location.keys is None:
        del location.parent[location.member]
        return
    items = location.parent[location.member]
    del items[location.index]
    if not items:
        del location.parent[location.member]


def replace(location: Location, value: Any) -> bool:
    """Put VALUE at LOCATION; True if it created the node."""
    created = not location.exists()
    if location.keys is None:
        location.parent[location.member] = value
    elif created:
        location.parent.setdefault(location.member, []).append(value)
    else:
        location.parent[location.member][location.index] = value
    return created


def merge(node: SchemaNode, old: Any, new: Any) -> Any:
    """RFC 8040 plain patch: NEW merged into OLD (containers and list entries by key, leaf-lists united)."""
    if isinstance(node, ListNode) and isinstance(old, list) and isinstance(new, list):
        result = list(old)
        keys = key_names(node)
        for entry in new:
            index = next(
                (i for i, item in enumerate(result) if all(item.get(k) == entry.get(k) for k in keys)),
                None,
            )
            if index is None:
                result.append(entry)
            else:
                result[index] = merge_entry(node, result[index], entry)
        return result
    if isinstance(node, LeafListNode) and isinstance(old, list) and isinstance(new, list):
        return old + [item for item in new if item not in old]
    if isinstance(node, InternalNode) and isinstance(old, dict) and isinstance(new, dict):
        return merge_entry(node, old, new)
    return new


def merge_entry(node: SchemaNode, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    result = dict(old)
    for member, value in new.items():
        child = node.get_data_child(member.split(":", 1)[-1], MODULE) if isinstance(node, InternalNode) else None
        result[member] = merge(child, old[member], value) if child is not None and member in old else value
    return result
