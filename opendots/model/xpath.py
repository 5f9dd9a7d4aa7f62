"""The XPath of 'must' and 'when' statements, evaluated over the cooked values the compiled validator builds.

Only the shapes the DOTS modules use are compiled, from yangson's own parsed expression: comparisons (``=``, ``!=``,
``<``, ``<=``, ``>``, ``>=``), ``and``/``or``, literals, numbers and location paths made of ``/``, ``.``, ``..`` and
child steps without predicates. Each path is resolved against the schema once, so at run time a step is a dict
lookup. Comparisons go through yangson's ``NodeSet`` operators, so their XPath semantics (node-set against string,
number or node-set; canonical strings; float conversion) are yangson's. A missing node that yangson would replace
by a default instance cannot be modelled here and makes the evaluation defer to yangson. Any other expression
compiles to ``None`` and the caller defers as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yangson.enumerations import Axis
from yangson.nodeset import NodeSet
from yangson.schemanode import (
    CaseNode,
    ContainerNode,
    InternalNode,
    LeafListNode,
    LeafNode,
    ListNode,
    SchemaNode,
    SchemaTreeNode,
    TerminalNode,
)
from yangson.xpathast import (
    AndExpr,
    EqualityExpr,
    Expr,
    Literal,
    LocationPath,
    Number,
    OrExpr,
    RelationalExpr,
    Root,
    Step,
)


class Defer(Exception):
    """The body uses a part of the schema only yangson checks (XPath beyond the shapes here, defaults, ``unique``,
    referential integrity): let yangson decide."""


class Context:
    """One object instance (container, list entry, structure contents or the root) during one check: its cooked
    members by instance name, its parent, and the XPath checks that wait until the whole body is cooked."""

    __slots__ = ("cooked", "parent", "pending", "results")

    def __init__(
        self,
        cooked: dict[str, Any],
        parent: Context | None,
        pending: list[tuple[Any, ...]],
        results: dict[Any, bool] | None = None,
    ) -> None:
        self.cooked = cooked
        self.parent = parent
        self.pending = pending
        self.results = results
        """at the root only: the value of each absolute condition, computed once per body"""


class _LeafView:
    """What yangson's NodeSet comparisons read of a leaf instance: value, canonical string, not internal."""

    __slots__ = ("node", "value")

    def __init__(self, value: Any, node: TerminalNode) -> None:
        self.value = value
        self.node = node

    def is_internal(self) -> bool:
        return False

    def __str__(self) -> str:
        text = self.node.type.canonical_string(self.value)
        if text is None:  # yangson raises YangTypeError here
            raise Defer
        return text


Evaluation = Callable[[Any, Context], Any]
"""(value of the context node if it is a leaf, the object context) → XPath value."""

_MISSING = object()

# How an evaluation starts: at a leaf (must on a leaf or leaf-list entry), at an object (must on a container or
# list entry, 'when' of a case/choice/uses evaluated at the object being checked), or at a member being placed
# (a data node's own 'when': yangson evaluates it at a stand-in member whose value is unknown here).
LEAF, OBJECT, MEMBER = "leaf", "object", "member"


def compile_condition(expr: Expr, start_node: SchemaNode, start: str) -> Callable[[Any, Context], bool] | None:
    """A must/when expression as a function of (leaf value, object context) → bool, or None if not supported."""
    evaluation = _compile(expr, start_node, start)
    if evaluation is None:
        return None
    if not _is_absolute(expr):
        return lambda value, context: bool(evaluation(value, context))

    def absolute(value: Any, context: Context) -> bool:
        # Same value wherever it is evaluated: once per body, not once per node (RFC 9132's conflict-scope 'when'
        # looks at every scope, for every scope: quadratic otherwise).
        top = context
        while top.parent is not None:
            top = top.parent
        results = top.results
        if results is None:
            return bool(evaluation(value, context))
        result = results.get(absolute)
        if result is None:
            result = results[absolute] = bool(evaluation(value, context))
        return result

    return absolute


def _is_absolute(expr: Expr) -> bool:
    """Whether every path in the expression starts at the root (so the context node does not matter)."""
    if isinstance(expr, Literal | Number):
        return True
    if isinstance(expr, LocationPath | Step | Root):
        return isinstance(_flatten(expr)[0], Root)
    if isinstance(expr, EqualityExpr | RelationalExpr | AndExpr | OrExpr):
        return _is_absolute(expr.left) and _is_absolute(expr.right)
    return False


def _compile(expr: Expr, start_node: SchemaNode, start: str) -> Evaluation | None:
    if isinstance(expr, Literal):
        text = expr.value
        return lambda value, context: text
    if isinstance(expr, Number):
        number = float(expr.value)
        return lambda value, context: number
    if isinstance(expr, EqualityExpr | RelationalExpr | AndExpr | OrExpr):
        left = _compile(expr.left, start_node, start)
        right = _compile(expr.right, start_node, start)
        if left is None or right is None:
            return None
        return _binary(expr, left, right)
    if isinstance(expr, LocationPath | Step | Root):
        return _compile_path(expr, start_node, start)
    return None


def _binary(expr: Expr, left: Evaluation, right: Evaluation) -> Evaluation:
    # The operators yangson's *Expr._eval apply, on the same operand types, so NodeSet decides the semantics.
    if isinstance(expr, EqualityExpr):
        if expr.negate:
            return lambda value, context: left(value, context) != right(value, context)
        return lambda value, context: left(value, context) == right(value, context)
    if isinstance(expr, RelationalExpr):
        if expr.less:
            if expr.equal:
                return lambda value, context: left(value, context) <= right(value, context)
            return lambda value, context: left(value, context) < right(value, context)
        if expr.equal:
            return lambda value, context: left(value, context) >= right(value, context)
        return lambda value, context: left(value, context) > right(value, context)
    if isinstance(expr, AndExpr):
        return lambda value, context: left(value, context) and right(value, context)
    return lambda value, context: left(value, context) or right(value, context)


def _flatten(expr: Expr) -> list[Expr]:
    if isinstance(expr, LocationPath):
        return _flatten(expr.left) + _flatten(expr.right)
    return [expr]


def _root_schema(node: SchemaNode) -> SchemaTreeNode:
    while node.parent is not None:
        node = node.parent
    assert isinstance(node, SchemaTreeNode)
    return node


def _object_parent(node: SchemaNode) -> SchemaNode:
    """The schema node of the object an instance of ``node`` sits in (the root for top-level nodes)."""
    return node.data_parent() or _root_schema(node)


def _absent_is_empty(child: SchemaNode, parent: SchemaNode) -> bool | None:
    """What yangson's ``_children`` yields for a child that is not in the instance: True for nothing; None where it
    would build a default instance (or evaluate a 'when' to decide), which we do not model."""
    if isinstance(child, ListNode) or (isinstance(child, ContainerNode) and child.presence):
        return True
    if isinstance(child, LeafNode | LeafListNode):
        if child.default is None:
            return True
    elif not isinstance(child, ContainerNode):
        return None
    if child.when is not None:
        return None
    node: SchemaNode = child
    while True:
        node = node.parent
        if node is parent or node is None:
            return None
        if node.when is not None:
            return None
        if isinstance(node, CaseNode) and node.qual_name != node.parent.default_case:
            return True


def _compile_path(expr: Expr, start_node: SchemaNode, start: str) -> Evaluation | None:
    """A location path, resolved against the schema now; at run time a list of positions (leaf values or object
    contexts) moves step by step."""
    operations: list[Callable[[list[Any], Context], list[Any]]] = []
    # The static position: its schema node, whether it is still the starting node, whether it is a leaf value, and
    # whether it may hold several nodes (going up from there could give duplicates, which NodeSet would merge).
    node, at_start, at_leaf, several = start_node, True, start == LEAF, False
    for step in _flatten(expr):
        if isinstance(step, Root):
            node, at_start, at_leaf, several = _root_schema(start_node), False, False, False
            operations.append(_to_root)
        elif not isinstance(step, Step) or step.predicates or (step.qname is None and step.axis == Axis.child):
            return None
        elif step.axis == Axis.self and step.qname is None:
            continue
        elif step.axis == Axis.parent and step.qname is None:
            if several or isinstance(node, SchemaTreeNode) or (at_leaf and not at_start):
                return None
            # From a leaf or a member being placed, the parent is the object holding it.
            operations.append(_to_holder if at_start and start != OBJECT else _to_parent)
            node, at_start, at_leaf = _object_parent(node), False, False
        elif step.axis == Axis.child and not at_leaf and not (at_start and start == MEMBER):
            assert isinstance(node, InternalNode)
            child = node.get_data_child(*step.qname)
            if child is None or (start == MEMBER and child is start_node):
                return None  # an unknown name, or the stand-in member itself (its value is yangson's placeholder)
            operations.append(_child_operation(child.iname(), child, _absent_is_empty(child, node)))
            node, at_start, at_leaf = child, False, isinstance(child, TerminalNode)
            several = several or isinstance(child, ListNode | LeafListNode)
        else:
            return None
    if not at_leaf or (at_start and start != LEAF):
        return None  # node-sets of internal nodes (or of the stand-in member): not used by the DOTS modules
    leaf = node
    assert isinstance(leaf, TerminalNode)

    def evaluate(value: Any, context: Context) -> NodeSet:
        positions: list[Any] = [value] if start == LEAF else [context]
        for operation in operations:
            positions = operation(positions, context)
        return NodeSet(_LeafView(position, leaf) for position in positions)

    return evaluate


def _to_root(positions: list[Any], context: Context) -> list[Any]:
    top = context
    while top.parent is not None:
        top = top.parent
    return [top]


def _to_holder(positions: list[Any], context: Context) -> list[Any]:
    return [context]


def _to_parent(positions: list[Any], context: Context) -> list[Any]:
    return [position.parent for position in positions]


def _child_operation(
    iname: str, child: SchemaNode, absent_is_empty: bool | None
) -> Callable[[list[Any], Context], list[Any]]:
    is_list = isinstance(child, ListNode)
    is_object = isinstance(child, ContainerNode)
    is_leaf_list = isinstance(child, LeafListNode)

    def children(positions: list[Any], context: Context) -> list[Any]:
        found: list[Any] = []
        for position in positions:
            member = position.cooked.get(iname, _MISSING)
            if member is _MISSING:
                if absent_is_empty is None:
                    raise Defer
                continue
            if is_list:
                found.extend(Context(entry, position, position.pending) for entry in member)
            elif is_object:
                found.append(Context(member, position, position.pending))
            elif is_leaf_list:
                found.extend(member)
            else:
                found.append(member)
        return found

    return children
