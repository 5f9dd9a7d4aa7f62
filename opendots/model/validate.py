"""Schema validation of signal channel and telemetry bodies, driven by the YANG modules (no hand-written checks).

A body on the wire is ``{"<module>:<case>": <contents>}`` where ``<case>`` names a case of the structure's
message-type choice; yangson sees ``{"<module>:<structure>": <contents>}`` in the derived view (schema.py). We also
check that every member of ``<contents>`` belongs to the case the body names, which the choice alone cannot say.

The contents go first through the validator compiled from yangson's schema tree (compiled.py, 10-20x faster). What
it accepts is valid. What it leaves to yangson (a path to a defaulted leaf, XPath beyond the DOTS shapes) goes through
yangson, whose verdict is final. What it rejects goes through yangson too, which words the diagnostic, except for
bodies too large for yangson to be quick and for the few rules where the compiled check is stricter (Reject.final).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import RawMemberError, RawTypeError, ValidationError, YangsonException
from yangson.schemanode import CaseNode, ChoiceNode, ContainerNode, InternalNode, SchemaNode

from .compiled import Defer, Reject, compile_structure
from .convert import SIGNAL_TOP_LEVEL, TELEMETRY_TOP_LEVEL
from .errors import ModelError
from .schema import SIGNAL_MODULE, SIGNAL_STRUCTURE, TELEMETRY_MODULE, TELEMETRY_STRUCTURE, signal_schema


@dataclass(frozen=True)
class _Structure:
    """What validation needs of one structure, derived once from the schema."""

    node: ContainerNode
    module: str
    name: str
    cases: dict[str, CaseNode]
    """message-type case by name"""
    case_of_member: dict[str, CaseNode | None]
    """for every member name the contents may use (bare or module-qualified): the case it belongs to"""
    check: Callable[[Any], None]
    """the compiled check of the contents (compiled.py)"""


def _case_of(structure: InternalNode, member: SchemaNode) -> CaseNode | None:
    """The message-type case a top-level member of the structure's contents lives in."""
    node: SchemaNode | None = member
    while node is not None and node.parent is not structure:
        if isinstance(node, CaseNode) and isinstance(node.parent, ChoiceNode) and node.parent.parent is structure:
            return node
        node = node.parent
    return None


@functools.cache
def _structure(module: str, name: str) -> _Structure:
    schema = signal_schema()
    node = schema.dots_signal if name == SIGNAL_STRUCTURE else schema.dots_telemetry
    choice = next(child for child in node.children if isinstance(child, ChoiceNode))
    cases = {case.name: case for case in choice.children if isinstance(case, CaseNode)}
    case_of_member: dict[str, CaseNode | None] = {}
    for child in node.data_children():
        for member_name in (child.name, f"{child.ns}:{child.name}"):
            prefix, _, local = member_name.rpartition(":")
            member = node.get_data_child(local, prefix or module)
            if member is not None:
                case_of_member[member_name] = _case_of(node, member)
    return _Structure(node, module, name, cases, case_of_member, compile_structure(node))


def _validate(body: Any, module: str, structure_name: str, top_level_names: tuple[str, ...]) -> None:
    if not isinstance(body, dict) or len(body) != 1:
        raise ModelError("4.00", f"the body must be an object with exactly one member, one of {list(top_level_names)}")
    ((top_name, contents),) = body.items()
    if top_name not in top_level_names:
        raise ModelError("4.00", f"unexpected top-level member {str(top_name)[:80]!r}")
    if not isinstance(contents, dict):
        raise ModelError("4.00", f"{top_name} must be an object")
    structure = _structure(module, structure_name)
    case_name = top_name.partition(":")[2]
    case = structure.cases[case_name]
    for name in contents:
        member_case = structure.case_of_member.get(name, case)  # unknown names: the schema check names them
        if member_case is not case:
            raise ModelError("4.00", f"/{top_name}/{name}: not part of a {case_name} message")
    if not contents and case.mandatory:
        raise ModelError("4.00", f"/{top_name}: empty {case_name} message")
    try:
        structure.check(contents)
        return
    except Reject as rejection:
        reason = rejection.reason.replace(f"/{structure_name}", f"/{top_name}", 1)
        if rejection.final or _has_more_nodes(contents, YANGSON_DIAGNOSTIC_NODES):
            raise ModelError("4.00", reason) from None
    except Defer:
        reason = None
    # yangson decides what the compiled check leaves to it, and words the rejections of ordinary-sized bodies.
    _validate_with_yangson(structure, contents, top_name)
    if reason is not None:  # the compiled check is stricter here: keep its verdict
        raise ModelError("4.00", reason)


# yangson's cost grows faster than the body (every conflict-scope evaluates an absolute 'when' over all scopes: 200
# scopes take seconds), so bigger rejected bodies get the compiled check's own diagnostic. The largest RFC example
# has 52 nodes.
YANGSON_DIAGNOSTIC_NODES = 128


def _has_more_nodes(value: Any, limit: int) -> bool:
    """Whether the JSON value has more than ``limit`` nodes (objects, arrays, scalars); stops counting there."""
    stack = [value]
    count = 0
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _validate_with_yangson(structure: _Structure, contents: dict[str, Any], top_name: str) -> None:
    structure_path = f"{structure.module}:{structure.name}"
    try:
        instance = signal_schema().data_model.from_raw({structure_path: contents})
        instance.validate(ValidationScope.all, ContentType.all)
    except YangsonException as error:
        raise ModelError("4.00", _diagnostic(error, f"/{structure_path}", f"/{top_name}")) from None
    except TypeError:  # a yangson type compared with a value of another Python type
        raise ModelError("4.00", f"/{top_name}: invalid value") from None


def _structure_of(telemetry: bool) -> _Structure:
    if telemetry:
        return _structure(TELEMETRY_MODULE, TELEMETRY_STRUCTURE)
    return _structure(SIGNAL_MODULE, SIGNAL_STRUCTURE)


def compiled_verdict(contents: Any, telemetry: bool = False) -> str:
    """``"valid"``, ``"invalid"`` or ``"deferred"`` (to yangson): the compiled check alone, for differential tests."""
    structure = _structure_of(telemetry)
    try:
        structure.check(contents)
    except Reject:
        return "invalid"
    except Defer:
        return "deferred"
    return "valid"


def yangson_verdict(contents: Any, telemetry: bool = False) -> str:
    """``"valid"`` or ``"invalid"``: yangson alone on a structure's contents, for differential tests."""
    structure = _structure_of(telemetry)
    try:
        _validate_with_yangson(structure, contents, "contents")
    except ModelError:
        return "invalid"
    return "valid"


def _diagnostic(error: YangsonException, structure_path: str, top_path: str) -> str:
    """yangson's message in plain words, naming the member the peer sent instead of the derived container."""
    if isinstance(error, RawMemberError):
        text = f"{error.path.replace('=/', '/')}: member not allowed here"
    elif isinstance(error, RawTypeError):
        text = f"{error.path.replace('=/', '/')}: invalid value ({error.message})"
    elif isinstance(error, ValidationError):
        message = f": {' '.join(error.message.split())}" if error.message else ""
        text = f"{error.instance.json_pointer()}: {error.tag or 'invalid value'}{message}"
    else:
        text = str(error)
    return text.replace(structure_path, top_path, 1)


def validate_signal(body: dict[str, Any]) -> None:
    """Check a YANG-JSON signal channel body against ietf-dots-signal-channel and every augmenting module
    (call home, signal control, telemetry, robust transmission). Raises ModelError("4.00", diagnostic)."""
    _validate(body, SIGNAL_MODULE, SIGNAL_STRUCTURE, SIGNAL_TOP_LEVEL)


def validate_telemetry(body: dict[str, Any]) -> None:
    """Check a YANG-JSON telemetry body (RFC 9244 dots-telemetry: telemetry-setup or telemetry)."""
    _validate(body, TELEMETRY_MODULE, TELEMETRY_STRUCTURE, TELEMETRY_TOP_LEVEL)
