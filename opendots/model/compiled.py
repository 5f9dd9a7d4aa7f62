"""A fast validator for signal channel bodies, compiled once from yangson's schema tree.

yangson validates a body by building an instance tree (``from_raw``) and checking every container's members against
a schema pattern by repeated derivation; for a two-scope mitigation response that costs 1.5-2 ms. This module walks
the same schema nodes once at load time and turns them into closures that check a raw YANG-JSON value directly:

- member names resolve exactly as ``InternalNode.from_raw`` resolves them (``get_data_child``);
- leaf values go through the node's own yangson type: ``from_raw`` then ``in`` (ranges, lengths, patterns, enums,
  identities, union members), as ``TerminalNode._validate`` does;
- mandatory nodes, choices (one case at most), list keys (present and unique), leaf-list repeats and element counts
  follow yangson's rules (``_check_schema_pattern``, ``_check_keys``, ``_check_cardinality``).

Anything that needs XPath (``must``, ``when``, ``unique``, referential integrity) or metadata is not re-implemented:
the check raises ``Defer`` and the caller hands the whole body to yangson, whose verdict is final. A rejection raises
``Reject``; the caller then also asks yangson, for the exact diagnostic. So yangson stays the reference for every
error message and every XPath rule, and the compiled closures only ever say "valid" for bodies without them.
tests/unit/test_model_compiled.py holds both to the same verdicts on every example body and a generated corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yangson.datatype import DataType, LinkType, StringType, UnionType
from yangson.enumerations import ContentType, NodeStatus
from yangson.schemanode import (
    CaseNode,
    ChoiceNode,
    ContainerNode,
    DataNode,
    GroupNode,
    InternalNode,
    LeafListNode,
    LeafNode,
    ListNode,
    NotificationNode,
    RpcActionNode,
    SchemaNode,
    SchemaTreeNode,
)


class Reject(Exception):
    """The body is invalid; ``reason`` is a short plain-text note (yangson supplies the peer's diagnostic)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Defer(Exception):
    """The body uses a part of the schema only yangson checks (XPath, metadata): let yangson decide."""


Check = Callable[[Any], Any]
"""Checks one raw JSON value against a schema node; returns the cooked value (leaves) or None."""


def _schema_path(node: SchemaNode) -> str:
    parts = []
    current: SchemaNode | None = node
    while current is not None and current.name is not None:
        if isinstance(current, DataNode):
            parts.append(current.name)
        current = current.parent
    return "/" + "/".join(reversed(parts))


# --------------------------------------------------------------------------------------------------------- types


def _union_contains(utype: UnionType, value: Any) -> bool:
    """``TerminalNode._validate_union``: the cooked value must be in some (non-union) member type."""
    for member in utype.types:
        if isinstance(member, UnionType):
            if _union_contains(member, value):
                return True
        elif value in member:
            return True
    return False


def _requires_instance(dtype: DataType) -> bool:
    if isinstance(dtype, LinkType) and dtype.require_instance:
        return True
    return isinstance(dtype, UnionType) and any(_requires_instance(member) for member in dtype.types)


# Accepted text values remembered per type: prefixes and names recur across messages, and a pattern check (ip-prefix
# is a union of two long regexes) costs more than the rest of a leaf. Bounded so that a stream of distinct values
# costs a clear() now and then, not memory.
_MEMO_LIMIT = 1024


def _memoized(check: Check) -> Check:
    memo: dict[str, Any] = {}

    def remembered(raw: Any) -> Any:
        if type(raw) is not str:
            return check(raw)
        try:
            return memo[raw]
        except KeyError:
            pass
        value = check(raw)  # raises for a rejected value, which is never remembered
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[raw] = value
        return value

    return remembered


def compile_type(dtype: DataType, where: str) -> Check:
    """raw → cooked value of ``dtype``, rejecting what ``from_raw`` or ``in`` refuses."""
    check = _compile_type(dtype, where)
    if isinstance(dtype, UnionType) or (isinstance(dtype, StringType) and dtype.patterns):
        return _memoized(check)
    return check


def _compile_type(dtype: DataType, where: str) -> Check:
    from_raw = dtype.from_raw
    if _requires_instance(dtype):

        def deferred(raw: Any) -> Any:
            raise Defer

        return deferred
    if isinstance(dtype, UnionType):

        def union(raw: Any) -> Any:
            value = from_raw(raw)
            if value is None:
                raise Reject(f"{where}: not a {dtype} value")
            try:
                accepted = _union_contains(dtype, value)
            except TypeError:
                raise Defer from None
            if not accepted:
                raise Reject(f"{where}: no matching union member")
            return value

        return union
    contains = dtype.__contains__

    def scalar(raw: Any) -> Any:
        value = from_raw(raw)
        if value is None:
            raise Reject(f"{where}: not a {dtype} value")
        try:
            accepted = contains(value)
        except TypeError:
            raise Defer from None
        if not accepted:
            raise Reject(f"{where}: {dtype.error_tag or 'invalid value'}")
        return value

    return scalar


# ------------------------------------------------------------------------------------------------ member pattern


@dataclass
class _Pattern:
    """One entry of yangson's schema pattern: a member, a group of entries (case/uses/children) or a choice."""

    kind: str  # "member", "group" or "choice"
    name: str = ""  # member: its instance name
    required: bool = False  # member: mandatory; choice: mandatory
    conditional: bool = False  # has a 'when'
    entries: list[_Pattern] = field(default_factory=list)  # group: interleaved entries; choice: one group per case
    names: frozenset[str] = frozenset()  # every member name below
    has_required: bool = False  # something below is mandatory
    plain_required: frozenset[str] | None = None  # group of unconditional members only: the mandatory ones

    def finish(self) -> _Pattern:
        if self.kind == "member":
            self.names = frozenset({self.name})
            self.has_required = self.required
        else:
            self.names = frozenset().union(*(entry.names for entry in self.entries))
            self.has_required = (self.kind == "choice" and self.required) or any(
                entry.has_required for entry in self.entries
            )
            if self.kind == "group" and all(entry.kind == "member" and not entry.conditional for entry in self.entries):
                self.plain_required = frozenset(entry.name for entry in self.entries if entry.required)
        return self

    def match(self, present: dict[str, Any]) -> bool:
        """Whether the members ``present`` are allowed here; returns whether what is left is nullable (nothing
        mandatory is missing). Raises Reject for a member that is not allowed, Defer where a 'when' decides."""
        if self.kind == "member":
            if self.name in present:
                if self.conditional:
                    raise Defer
                return True
            if self.required and self.conditional:
                raise Defer
            return not self.required
        if self.conditional and (self.has_required or not self.names.isdisjoint(present)):
            raise Defer
        if self.kind == "group":
            if self.plain_required is not None:  # the common case, without recursion
                return present.keys() >= self.plain_required
            nullable = True
            for entry in self.entries:
                if not entry.match(present):
                    nullable = False
            return nullable
        touched = [case for case in self.entries if not case.names.isdisjoint(present)]
        if len(touched) > 1:
            raise Reject("members of two cases of one choice")
        if touched:
            return touched[0].match(present)
        return not self.required


def _group_pattern(node: InternalNode) -> _Pattern:
    """``InternalNode._schema_pattern``: the interleaved entries of the node's children."""
    entries = [
        _entry_pattern(child)
        for child in node.children
        if not isinstance(child, RpcActionNode | NotificationNode) and child._status != NodeStatus.obsolete
    ]
    return _Pattern("group", conditional=node.when is not None, entries=entries).finish()


def _entry_pattern(node: SchemaNode) -> _Pattern:
    """``_pattern_entry`` of one child."""
    if isinstance(node, DataNode):
        # ContainerNode/DataNode._pattern_entry: with ContentType.all, "optional in configuration" (EmptyConfig) is
        # not nullable, so a mandatory container is as required as any mandatory data node.
        required = node.mandatory and node._status != NodeStatus.deprecated
        return _Pattern("member", name=node.iname(), required=required, conditional=node.when is not None).finish()
    if isinstance(node, ChoiceNode):
        cases = [_group_pattern(case) for case in node.children]  # CaseNode._pattern_entry
        return _Pattern("choice", required=node.mandatory, conditional=node.when is not None, entries=cases).finish()
    if isinstance(node, CaseNode | GroupNode):
        return _group_pattern(node)
    raise TypeError(f"unexpected schema node {node!r}")


# ----------------------------------------------------------------------------------------------------- the nodes


class CompiledSchema:
    """Compiles schema nodes on demand (the schema is recursive only through groupings, so this terminates) and
    caches one checker per node."""

    def __init__(self) -> None:
        self._checks: dict[SchemaNode, Check] = {}

    def check(self, node: SchemaNode) -> Check:
        check = self._checks.get(node)
        if check is None:
            check = self._compile(node)
            self._checks[node] = check
        return check

    def object_check(self, node: InternalNode) -> Callable[[Any], dict[str, Any]]:
        """The members of a container (or list entry) object; returns cooked leaf values by instance name."""
        return self._object(node)

    def _compile(self, node: SchemaNode) -> Check:
        where = _schema_path(node)
        if node.must:

            def with_must(raw: Any) -> Any:  # XPath: yangson's job
                raise Defer

            return with_must
        if isinstance(node, LeafNode):
            return compile_type(node.type, where)
        if isinstance(node, LeafListNode):
            return self._leaf_list(node, where)
        if isinstance(node, ListNode):
            return self._list(node, where)
        if isinstance(node, ContainerNode):
            members = self._object(node)

            def container(raw: Any) -> None:
                members(raw)

            return container

        def unsupported(raw: Any) -> Any:  # anydata, anyxml: leave them to yangson
            raise Defer

        return unsupported

    def _object(self, node: InternalNode) -> Callable[[Any], dict[str, Any]]:
        where = _schema_path(node)
        resolved: dict[str, tuple[str, SchemaNode]] = {}
        for child in node.data_children():
            # The names InternalNode.from_raw resolves: always "module:name", bare "name" in the parent's namespace.
            raw_names = [f"{child.ns}:{child.name}"] + ([child.name] if child.ns == node.ns else [])
            for raw_name in raw_names:
                prefix, colon, local = raw_name.partition(":")
                target = node.get_data_child(local, prefix) if colon else node.get_data_child(raw_name, node.ns)
                if target is not None:
                    resolved[raw_name] = (target.iname(), target)
        members = {raw_name: (iname, self.check(target)) for raw_name, (iname, target) in resolved.items()}
        pattern = _group_pattern(node)  # with the node's own 'when', as InternalNode._schema_pattern has it
        # Members from_raw resolves but the pattern leaves out (obsolete nodes) are not allowed.
        outside_pattern = {iname for iname, _ in members.values()} - pattern.names

        def object_members(raw: Any) -> dict[str, Any]:
            if not isinstance(raw, dict):
                raise Reject(f"{where}: expected an object")
            cooked: dict[str, Any] = {}
            for name, value in raw.items():
                member = members.get(name)
                if member is None:
                    if isinstance(name, str) and name.startswith("@"):
                        raise Defer  # metadata annotations
                    raise Reject(f"{where}/{str(name)[:80]}: member not allowed here")
                iname, check = member
                if iname in cooked:
                    raise Reject(f"{where}/{iname}: given twice")
                if iname in outside_pattern:
                    raise Reject(f"{where}/{iname}: member not allowed")
                cooked[iname] = check(value)
            if not pattern.match(cooked):
                raise Reject(f"{where}: missing mandatory data")
            return cooked

        return object_members

    def _list(self, node: ListNode, where: str) -> Check:
        entry = self._object(node)
        key_names = tuple(node._key_members)
        minimum, maximum = node.min_elements, node.max_elements
        has_unique = bool(node.unique)

        def list_entries(raw: Any) -> None:
            if not isinstance(raw, list):
                raise Reject(f"{where}: expected an array")
            if has_unique and len(raw) > 1:
                raise Defer
            seen: set[tuple[Any, ...]] = set()
            for item in raw:
                cooked = entry(item)
                if key_names:
                    try:
                        key = tuple(cooked[name] for name in key_names)
                    except KeyError:
                        raise Reject(f"{where}: list key missing") from None
                    if key in seen:
                        raise Reject(f"{where}: non-unique key {key!r}")
                    seen.add(key)
            if len(raw) < minimum or (maximum is not None and len(raw) > maximum):
                raise Reject(f"{where}: {len(raw)} entries")

        return list_entries

    def _leaf_list(self, node: LeafListNode, where: str) -> Check:
        entry = compile_type(node.type, where)
        minimum, maximum = node.min_elements, node.max_elements
        no_repeats = node.content_type() == ContentType.config  # LeafListNode._check_list_props

        def leaf_list(raw: Any) -> None:
            if not isinstance(raw, list):
                raise Reject(f"{where}: expected an array")
            values = [entry(item) for item in raw]
            if no_repeats and len(set(values)) < len(values):
                raise Reject(f"{where}: repeated value")
            if len(values) < minimum or (maximum is not None and len(values) > maximum):
                raise Reject(f"{where}: {len(values)} entries")

        return leaf_list


def compile_structure(structure: ContainerNode) -> Callable[[Any], None]:
    """The check of a structure's contents (the object under ``<module>:<structure>``)."""
    if structure.must or structure.when is not None or not isinstance(structure.parent, SchemaTreeNode):
        raise ValueError("a structure container is a top-level node without must/when")
    members = CompiledSchema().object_check(structure)

    def check(contents: Any) -> None:
        members(contents)

    return check
