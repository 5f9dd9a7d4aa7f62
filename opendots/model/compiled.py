"""A fast validator for signal channel bodies, compiled once from yangson's schema tree.

yangson validates a body by building an instance tree (``from_raw``) and checking every container's members against
a schema pattern by repeated derivation; for a two-scope mitigation response that costs 1.5-2 ms. This module walks
the same schema nodes once at load time and turns them into closures that check a raw YANG-JSON value directly:

- member names resolve exactly as ``InternalNode.from_raw`` resolves them (``get_data_child``);
- leaf values go through the node's own yangson type: ``from_raw`` then ``in`` (ranges, lengths, patterns, enums,
  identities, union members), as ``TerminalNode._validate`` does;
- mandatory nodes, choices (one case at most), list keys (present and unique), leaf-list repeats and element counts
  follow yangson's rules (``_check_schema_pattern``, ``_check_keys``, ``_check_cardinality``);
- ``must`` and ``when`` expressions of the shapes the DOTS modules use are evaluated by xpath.py over the cooked
  values once the whole body is cooked (a 'when' may look at any part of the body).

Anything else (other XPath, ``unique``, referential integrity, defaults an XPath path would need) is not
re-implemented: the check raises ``Defer`` and the caller hands the whole body to yangson, whose verdict is final.
A rejection raises ``Reject``; the caller then also asks yangson, for the exact diagnostic. So yangson stays the
reference for every error message, and tests/unit/model/test_compiled.py holds the two to the same verdicts on every
example body and a generated corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yangson.constraint import Must
from yangson.datatype import (
    DataType,
    Int8Type,
    Int16Type,
    Int32Type,
    IntegralType,
    LinkType,
    StringType,
    Uint8Type,
    Uint16Type,
    Uint32Type,
    UnionType,
)
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
from yangson.xpathast import Expr

from .xpath import LEAF, MEMBER, OBJECT, Context, Defer, compile_condition

__all__ = ["CompiledSchema", "Context", "Defer", "Reject", "compile_structure", "compile_type"]


class Reject(Exception):
    """The body is invalid; ``reason`` is a short plain-text note (yangson words the peer's diagnostic where it can).

    ``final`` marks rejections stricter than yangson, where asking it is pointless: a member given twice (bare and
    module-qualified; yangson keeps the last) and RFC 7952 metadata (no DOTS module defines an annotation)."""

    def __init__(self, reason: str, final: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final


TypeCheck = Callable[..., Any]
"""(raw JSON scalar, optional ignored Context) → its cooked value (yangson's), or Reject/Defer. The optional context
lets a leaf without 'must' use its type check as its Check, one call less per leaf."""

Check = Callable[[Any, Context], Any]
"""Checks the raw JSON value of one member of the object ``Context``; returns its cooked value (a dict for a
container, a list of dicts for a list, a list of values for a leaf-list)."""


def _schema_path(node: SchemaNode) -> str:
    """``/dots-signal/scope/target-prefix``: the data nodes from the structure down (choices, cases, uses left out)."""
    parts = []
    current: SchemaNode | None = node
    while current is not None:
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
_UNKNOWN = object()


def _memoized(check: TypeCheck) -> TypeCheck:
    memo: dict[str, Any] = {}

    def remembered(raw: Any, context: Context | None = None) -> Any:
        if type(raw) is not str:
            return check(raw)
        value = memo.get(raw, _UNKNOWN)  # not memo[raw]: a miss, the common case with many peers, raises KeyError
        if value is not _UNKNOWN:
            return value
        value = check(raw)  # raises for a rejected value, which is never remembered
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[raw] = value
        return value

    return remembered


def compile_type(dtype: DataType, where: str) -> TypeCheck:
    """raw → cooked value of ``dtype``, rejecting what ``from_raw`` or ``in`` refuses."""
    check = _plain_fast_path(dtype, _compile_type(dtype, where))
    if isinstance(dtype, UnionType) or (isinstance(dtype, StringType) and dtype.patterns):
        return _memoized(check)
    return check


# Integer types whose JSON form is a number (RFC 7951 §6.1); yangson's from_raw gives such an int back unchanged.
_JSON_NUMBER_INTEGRALS = (Int8Type, Int16Type, Int32Type, Uint8Type, Uint16Type, Uint32Type)


def _integral_bounds(dtype: IntegralType) -> list[tuple[int, int]]:
    """The range statement's intervals as (first, last) pairs (Intervals.__contains__ without its loop setup), or the
    type's own bounds."""
    if dtype.range is None:
        return [(dtype._range[0], dtype._range[1])]
    return [(interval[0], interval[-1]) for interval in dtype.range.intervals]


def _plain_acceptance(dtype: DataType) -> Callable[[Any], bool] | None:
    """Whether ``dtype`` takes a raw value as it is, for the types whose ``from_raw`` gives a plain str or int back
    unchanged (string; integers written as JSON numbers): ``in`` from the type's own length, patterns and range.
    None for any other type."""
    if type(dtype) is StringType:
        length = dtype.length
        patterns = [(pattern.regex.match, pattern.invert_match) for pattern in dtype.patterns]

        def text(raw: Any) -> bool:
            if type(raw) is not str or (length and len(raw) not in length):
                return False
            for match, invert in patterns:  # noqa: SIM110 (a loop: no generator object per value)
                if (match(raw) is not None) == invert:
                    return False
            return True

        return text
    if type(dtype) in _JSON_NUMBER_INTEGRALS:
        assert isinstance(dtype, IntegralType)
        bounds = _integral_bounds(dtype)
        if len(bounds) == 1:
            ((lowest, highest),) = bounds

            def integral(raw: Any) -> bool:
                return type(raw) is int and lowest <= raw <= highest

            return integral

        def integral_intervals(raw: Any) -> bool:
            if type(raw) is int:
                for lowest, highest in bounds:
                    if lowest <= raw <= highest:
                        return True
            return False

        return integral_intervals
    return None


def _plain_fast_path(dtype: DataType, check: TypeCheck) -> TypeCheck:
    """Accept a plain str or int that the type (or one member of a union of such types) takes, as it is, in one
    pass: yangson's union ``from_raw`` tries the members in turn and ``in`` tries them again, for the same value
    back (inet:ip-prefix: the IPv4 pattern, then the two long IPv6 ones, twice). The member that took the last value
    is tried first (prefixes of one family tend to come together); the order changes the cost, never the verdict.
    Every other value, and every rejection, still goes through ``check``."""
    members = dtype.types if isinstance(dtype, UnionType) else [dtype]
    order = [_plain_acceptance(member) for member in members]
    if None in order:
        return check
    bounds = _integral_bounds(dtype) if isinstance(dtype, _JSON_NUMBER_INTEGRALS) else []
    if len(bounds) == 1:
        ((lowest, highest),) = bounds  # inet:port-number's 0..65535: one chained comparison, in one call

        def plain_integral(raw: Any, context: Context | None = None) -> Any:
            return raw if type(raw) is int and lowest <= raw <= highest else check(raw)

        return plain_integral
    if len(order) == 1:
        accepts = order[0]
        assert accepts is not None

        def plain_single(raw: Any, context: Context | None = None) -> Any:
            return raw if accepts(raw) else check(raw)

        return plain_single

    first = [0]  # the member that took the last value; only ever rebound, so safe to share between threads

    def plain(raw: Any, context: Context | None = None) -> Any:
        tried = first[0]
        if order[tried](raw):  # type: ignore[misc]
            return raw
        for index, accepts in enumerate(order):
            if index != tried and accepts(raw):  # type: ignore[misc]
                first[0] = index
                return raw
        return check(raw)

    return plain


def _compile_type(dtype: DataType, where: str) -> TypeCheck:
    from_raw = dtype.from_raw
    if _requires_instance(dtype):

        def deferred(raw: Any, context: Context | None = None) -> Any:
            raise Defer

        return deferred
    if isinstance(dtype, UnionType):

        def union(raw: Any, context: Context | None = None) -> Any:
            value = from_raw(raw)
            if value is None:
                raise Reject(f"{where}: invalid value (expected {dtype.name or dtype.yang_type()} value)")
            try:
                accepted = _union_contains(dtype, value)
            except TypeError:
                raise Defer from None
            if not accepted:
                raise Reject(f"{where}: no matching union member")
            return value

        return union
    contains = dtype.__contains__

    def scalar(raw: Any, context: Context | None = None) -> Any:
        value = from_raw(raw)
        if value is None:
            raise Reject(f"{where}: invalid value (expected {dtype.name or dtype.yang_type()} value)")
        try:
            accepted = contains(value)
        except TypeError:
            raise Defer from None
        if not accepted:
            message = f" ({dtype.error_message})" if dtype.error_message else ""
            raise Reject(f"{where}: {dtype.error_tag or 'invalid-type'}{message}")
        return value

    return scalar


# ------------------------------------------------------------------------------------------------ member pattern

When = Callable[[Context], bool]
"""A compiled 'when' of a pattern entry, evaluated for the object being checked."""


def _deferred_when(context: Context) -> bool:
    raise Defer


def _compile_when(expr: Expr, node: SchemaNode, start: str) -> When:
    condition = compile_condition(expr, node, start)
    if condition is None:
        return _deferred_when
    return lambda context: condition(None, context)


@dataclass
class _Pattern:
    """One entry of yangson's schema pattern: a member, a group of entries (case/uses/children) or a choice."""

    kind: str  # "member", "group" or "choice"
    name: str = ""  # member: its instance name
    required: bool = False  # member: mandatory; choice: mandatory
    when: When | None = None  # its 'when', if it has one
    entries: list[_Pattern] = field(default_factory=list)  # group: interleaved entries; choice: one group per case
    names: frozenset[str] = frozenset()  # every member name below
    has_required: bool = False  # something below is mandatory
    has_when: bool = False  # something here or below is conditional
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
        self.has_when = self.when is not None or any(entry.has_when for entry in self.entries)
        if self.kind == "group" and all(entry.kind == "member" and entry.when is None for entry in self.entries):
            self.plain_required = frozenset(entry.name for entry in self.entries if entry.required)
        return self

    def match(self, present: dict[str, Any], context: Context) -> bool:
        """Whether the members ``present`` are allowed here (raises Reject if not); returns whether what is left is
        nullable (nothing mandatory is missing). yangson's derivative semantics for a set of distinct names: a
        member needs its 'when' true, a conditional group or choice with a false 'when' admits nothing and needs
        nothing, a choice admits members of one case only."""
        when = self.when
        if when is not None and (self.has_required or not self.names.isdisjoint(present)) and not when(context):
            if not self.names.isdisjoint(present):
                raise Reject(f"{sorted(self.names & present.keys())[0]}: member not allowed ('when' is false)")
            return True
        if self.kind == "member":
            return self.name in present or not self.required
        if self.kind == "group":
            if self.plain_required is not None:  # the common case, without recursion
                return present.keys() >= self.plain_required
            nullable = True
            for entry in self.entries:
                if not entry.match(present, context):
                    nullable = False
            return nullable
        touched = [case for case in self.entries if not case.names.isdisjoint(present)]
        if len(touched) > 1:
            raise Reject("members of two cases of one choice")
        if touched:
            return touched[0].match(present, context)
        return not self.required


def _group_pattern(node: InternalNode, owner: InternalNode) -> _Pattern:
    """``InternalNode._schema_pattern``: the interleaved entries of the node's children; its 'when' is evaluated at
    the object being checked (``owner``, a container, list or structure)."""
    entries = [
        _entry_pattern(child, owner)
        for child in node.children
        if not isinstance(child, RpcActionNode | NotificationNode) and child._status != NodeStatus.obsolete
    ]
    when = _compile_when(node.when, owner, OBJECT) if node.when is not None else None
    return _Pattern("group", when=when, entries=entries).finish()


def _entry_pattern(node: SchemaNode, owner: InternalNode) -> _Pattern:
    """``_pattern_entry`` of one child."""
    if isinstance(node, DataNode):
        # ContainerNode/DataNode._pattern_entry: with ContentType.all, "optional in configuration" (EmptyConfig) is
        # not nullable, so a mandatory container is as required as any mandatory data node.
        required = node.mandatory and node._status != NodeStatus.deprecated
        when = _compile_when(node.when, node, MEMBER) if node.when is not None else None
        return _Pattern("member", name=node.iname(), required=required, when=when).finish()
    if isinstance(node, ChoiceNode):
        cases = [_group_pattern(case, owner) for case in node.children]  # CaseNode._pattern_entry
        when = _compile_when(node.when, owner, OBJECT) if node.when is not None else None
        return _Pattern("choice", required=node.mandatory, when=when, entries=cases).finish()
    if isinstance(node, CaseNode | GroupNode):
        return _group_pattern(node, owner)
    raise TypeError(f"unexpected schema node {node!r}")


def _check_pattern(pattern: _Pattern, cooked: dict[str, Any], context: Context, where: str) -> None:
    if not pattern.match(cooked, context):
        raise Reject(f"{where}: missing mandatory data")


# ------------------------------------------------------------------------------------------------------- 'must'


def _compile_musts(node: SchemaNode, start: str) -> list[Callable[[Any, Context], bool]] | None:
    """The node's 'must' conditions, or None if one of them is beyond xpath.py (then any instance defers)."""
    conditions = []
    for must in node.must:
        assert isinstance(must, Must)
        condition = compile_condition(must.expression, node, start)
        if condition is None:
            return None
        conditions.append(condition)
    return conditions


def _check_musts(conditions: list[Callable[[Any, Context], bool]], value: Any, context: Context, where: str) -> None:
    for condition in conditions:
        if not condition(value, context):
            raise Reject(f"{where}: must-violation")


# ----------------------------------------------------------------------------------------------------- the nodes


# Bounds the pattern verdicts remembered per object node: peers choose which members they send and in which order.
_VERDICT_MEMO_LIMIT = 256


class CompiledSchema:
    """Compiles the schema nodes below a structure and keeps one check per node."""

    def __init__(self) -> None:
        self._checks: dict[SchemaNode, Check] = {}

    def check(self, node: SchemaNode) -> Check:
        check = self._checks.get(node)
        if check is None:
            check = self._compile(node)
            self._checks[node] = check
        return check

    def _compile(self, node: SchemaNode) -> Check:
        where = _schema_path(node)
        if isinstance(node, LeafNode):
            return self._leaf(node, where)
        if isinstance(node, LeafListNode):
            return self._leaf_list(node, where)
        if isinstance(node, ListNode):
            return self._list(node, where)
        if isinstance(node, ContainerNode):
            return self.object_check(node)

        def unsupported(raw: Any, context: Context) -> Any:  # anydata, anyxml: leave them to yangson
            raise Defer

        return unsupported

    def object_check(self, node: InternalNode) -> Check:
        """The members of a container, list entry or structure object; returns them cooked, by instance name."""
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
        pattern = _group_pattern(node, node)  # with the node's own 'when', as InternalNode._schema_pattern has it
        conditional = pattern.has_when
        # Members from_raw resolves but the pattern leaves out (obsolete nodes) are not allowed.
        outside_pattern = {iname for iname, _ in members.values()} - pattern.names
        musts = _compile_musts(node, OBJECT) if node.must else []
        verdicts: dict[tuple[str, ...], bool] = {}  # pattern verdict by the member names present, in their order

        def object_members(raw: Any, parent: Context) -> dict[str, Any]:
            if not isinstance(raw, dict):
                raise Reject(f"{where}: expected an object")
            cooked: dict[str, Any] = {}
            context = Context(cooked, parent, parent.pending)
            for name, value in raw.items():
                member = members.get(name)
                if member is None:
                    if isinstance(name, str) and name.startswith("@"):
                        raise Reject(f"{where}/{name[:80]}: metadata annotations are not used in DOTS", final=True)
                    raise Reject(f"{where}/{str(name)[:80]}: member not allowed here")
                iname, check = member
                if iname in cooked:
                    raise Reject(f"{where}/{iname}: given twice", final=True)
                if iname in outside_pattern:
                    raise Reject(f"{where}/{iname}: member not allowed")
                cooked[iname] = check(value, context)
            if conditional:  # a 'when' may look anywhere in the body: wait until it is all cooked
                context.pending.append((_check_pattern, pattern, cooked, context, where))
            else:  # without a 'when', the verdict depends on the member names alone
                names = tuple(cooked)
                allowed = verdicts.get(names)
                if allowed is None:
                    allowed = pattern.match(cooked, context)  # raises Reject for two cases of one choice
                    if len(verdicts) >= _VERDICT_MEMO_LIMIT:
                        verdicts.clear()
                    verdicts[names] = allowed
                if not allowed:
                    raise Reject(f"{where}: missing mandatory data")
            if musts is None:
                raise Defer
            if musts:
                context.pending.append((_check_musts, musts, None, context, where))
            return cooked

        return object_members

    def _list(self, node: ListNode, where: str) -> Check:
        entry = self.object_check(node)
        key_names = tuple(node._key_members)
        single_key = key_names[0] if len(key_names) == 1 else None
        minimum, maximum = node.min_elements, node.max_elements
        has_unique = bool(node.unique)

        def list_entries(raw: Any, context: Context) -> list[dict[str, Any]]:
            if not isinstance(raw, list):
                raise Reject(f"{where}: expected an array")
            if has_unique and len(raw) > 1:
                raise Defer
            entries = [entry(item, context) for item in raw]
            if key_names:
                seen: set[tuple[Any, ...]] = set()
                for cooked in entries:
                    try:
                        # One key member (target-port-range's lower-port) without a generator per entry.
                        key = (cooked[single_key],) if single_key else tuple(cooked[name] for name in key_names)
                    except KeyError:
                        raise Reject(f"{where}: list key missing") from None
                    if key in seen:
                        raise Reject(f"{where}: non-unique key {key!r}")
                    seen.add(key)
            if len(entries) < minimum or (maximum is not None and len(entries) > maximum):
                raise Reject(f"{where}: {len(entries)} entries")
            return entries

        return list_entries

    def _leaf(self, node: LeafNode, where: str) -> Check:
        type_check = compile_type(node.type, where)
        if not node.must:
            return type_check
        musts = _compile_musts(node, LEAF)

        def leaf_with_must(raw: Any, context: Context) -> Any:
            value = type_check(raw)
            if musts is None:
                raise Defer
            context.pending.append((_check_musts, musts, value, context, where))
            return value

        return leaf_with_must

    def _leaf_list(self, node: LeafListNode, where: str) -> Check:
        entry = compile_type(node.type, where)
        minimum, maximum = node.min_elements, node.max_elements
        no_repeats = node.content_type() == ContentType.config  # LeafListNode._check_list_props
        musts = _compile_musts(node, LEAF) if node.must else []

        def leaf_list(raw: Any, context: Context) -> list[Any]:
            if not isinstance(raw, list):
                raise Reject(f"{where}: expected an array")
            values = [entry(item) for item in raw]
            if no_repeats and len(set(values)) < len(values):
                raise Reject(f"{where}: repeated value")
            if len(values) < minimum or (maximum is not None and len(values) > maximum):
                raise Reject(f"{where}: {len(values)} entries")
            if musts is None:
                raise Defer
            for value in values if musts else ():
                context.pending.append((_check_musts, musts, value, context, where))
            return values

        return leaf_list


def compile_structure(structure: ContainerNode) -> Callable[[Any], None]:
    """The check of a structure's contents (the object under ``<module>:<structure>``)."""
    if structure.must or structure.when is not None or not isinstance(structure.parent, SchemaTreeNode):
        raise ValueError("a structure container is a top-level node without must/when")
    members = CompiledSchema().object_check(structure)
    structure_name = structure.iname()
    # yangson also checks the root object {structure: contents} against every top-level node of every implemented
    # module; should one of them ever be mandatory or conditional, leave every body to yangson.
    root_pattern = _group_pattern(structure.parent, structure.parent)
    root_is_plain = root_pattern.plain_required == frozenset() and structure_name in root_pattern.names

    def check(contents: Any) -> None:
        if not root_is_plain:
            raise Defer
        pending: list[tuple[Any, ...]] = []
        root = Context({}, None, pending, results={})
        try:
            root.cooked[structure_name] = members(contents, root)
            for function, *arguments in pending:  # the XPath checks, now that every value they may read is cooked
                function(*arguments)
        finally:
            pending.clear()  # its entries refer back to the contexts that hold it: no cycles left for the GC

    return check
