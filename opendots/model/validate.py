"""Schema validation of signal channel and telemetry bodies with yangson (no hand-written checks).

A body on the wire is ``{"<module>:<case>": <contents>}`` where ``<case>`` names a case of the structure's
message-type choice; yangson sees ``{"<module>:<structure>": <contents>}`` in the derived view (schema.py). We also
check that every member of ``<contents>`` belongs to the case the body names, which the choice alone cannot say.
"""

from __future__ import annotations

from typing import Any

from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import RawMemberError, RawTypeError, ValidationError, YangsonException
from yangson.schemanode import CaseNode, ChoiceNode, InternalNode, SchemaNode

from .convert import SIGNAL_TOP_LEVEL, TELEMETRY_TOP_LEVEL
from .errors import ModelError
from .schema import SIGNAL_MODULE, SIGNAL_STRUCTURE, TELEMETRY_MODULE, TELEMETRY_STRUCTURE, signal_schema


def _message_case(structure: InternalNode, case_name: str) -> CaseNode:
    choice = next(child for child in structure.children if isinstance(child, ChoiceNode))
    case = choice.get_child(case_name, structure.ns)
    assert isinstance(case, CaseNode), case_name
    return case


def _case_of(structure: InternalNode, member: SchemaNode) -> CaseNode | None:
    """The message-type case a top-level member of the structure's contents lives in."""
    node: SchemaNode | None = member
    while node is not None and node.parent is not structure:
        if isinstance(node, CaseNode) and isinstance(node.parent, ChoiceNode) and node.parent.parent is structure:
            return node
        node = node.parent
    return None


def _validate(body: Any, module: str, structure_name: str, top_level_names: tuple[str, ...]) -> None:
    if not isinstance(body, dict) or len(body) != 1:
        raise ModelError("4.00", f"the body must be an object with exactly one member, one of {list(top_level_names)}")
    ((top_name, contents),) = body.items()
    if top_name not in top_level_names:
        raise ModelError("4.00", f"unexpected top-level member {str(top_name)[:80]!r}")
    if not isinstance(contents, dict):
        raise ModelError("4.00", f"{top_name} must be an object")
    schema = signal_schema()
    structure = schema.dots_signal if structure_name == SIGNAL_STRUCTURE else schema.dots_telemetry
    case_name = top_name.partition(":")[2]
    case = _message_case(structure, case_name)
    for name in contents:
        prefix, _, local = name.rpartition(":")
        member = structure.get_data_child(local, prefix or module)
        if member is not None and _case_of(structure, member) is not case:
            raise ModelError("4.00", f"/{top_name}/{name}: not part of a {case_name} message")
    if not contents and case.mandatory:
        raise ModelError("4.00", f"/{top_name}: empty {case_name} message")
    try:
        instance = schema.data_model.from_raw({f"{module}:{structure_name}": contents})
        instance.validate(ValidationScope.all, ContentType.all)
    except YangsonException as error:
        raise ModelError("4.00", _diagnostic(error, f"/{module}:{structure_name}", f"/{top_name}")) from None


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
