"""CBOR (integer keys) ⇄ YANG-JSON (RFC 7951 member names) for signal channel bodies, driven by the YANG schema.

Member names map to keys through the key table alone (see keys.py); the schema decides how each value is written:
enumerations are unsigned integers in CBOR and names in JSON, decimal64 is a CBOR tag 4 decimal fraction and a JSON
string, 64-bit integers are JSON strings, binary is a CBOR byte string and base64 in JSON (RFC 9132 §6, Table 5;
RFC 7951 §6). No validation happens here beyond what a conversion needs; see validate.py for that.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import functools
import re
from collections.abc import Callable
from typing import Any

from yangson.datatype import (
    BinaryType,
    BooleanType,
    DataType,
    Decimal64Type,
    EmptyType,
    EnumerationType,
    Int64Type,
    IntegralType,
    LeafrefType,
    Uint64Type,
    UnionType,
)
from yangson.schemanode import ContainerNode, InternalNode, LeafListNode, LeafNode, ListNode, SchemaNode

from .errors import ModelError
from .keys import MAX_KEY, MIN_KEY, Comprehension, KeyEntry, comprehension_of_unknown_key, key_table
from .schema import SIGNAL_MODULE, TELEMETRY_MODULE, signal_schema

SIGNAL_CASES = ("mitigation-scope", "signal-config", "redirected-signal", "heartbeat")
TELEMETRY_CASES = ("telemetry-setup", "telemetry")
# The top-level member of a body names a case of the structure's message-type choice.
SIGNAL_TOP_LEVEL = tuple(f"{SIGNAL_MODULE}:{case}" for case in SIGNAL_CASES)
TELEMETRY_TOP_LEVEL = tuple(f"{TELEMETRY_MODULE}:{case}" for case in TELEMETRY_CASES)

_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_MAX_DECIMAL_MAGNITUDE = 20  # decimal64 never exceeds 2**63 ≈ 9.2e18; larger exponents are rejected before use
# The deepest body the modules allow nests about a dozen maps and arrays; CBOR shared references (tags 28/29) can
# even build cycles, so conversion stops well before Python's recursion limit.
MAX_NESTING = 32


def _bad(where: str, message: str) -> ModelError:
    return ModelError("4.00", f"{where or '/'}: {message}")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {
        int: "an integer",
        str: "a text string",
        bytes: "a byte string",
        list: "an array",
        dict: "a map",
        float: "a floating-point number",
        decimal.Decimal: "a decimal fraction",
        type(None): "null",
    }.get(type(value), f"an unexpected item ({type(value).__name__})")


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _top_level_schema(name: str) -> InternalNode | None:
    if name in SIGNAL_TOP_LEVEL:
        return signal_schema().dots_signal
    if name in TELEMETRY_TOP_LEVEL:
        return signal_schema().dots_telemetry
    return None


_child_cache: dict[tuple[InternalNode, str], SchemaNode | None] = {}


def _schema_child(parent: InternalNode | None, name: str) -> SchemaNode | None:
    """The data node a JSON member ``name`` designates under ``parent`` (RFC 7951 §4: prefix = namespace change)."""
    if parent is None:
        return None
    cache_key = (parent, name)
    try:
        return _child_cache[cache_key]
    except KeyError:
        pass
    prefix, _, local = name.rpartition(":")
    child = parent.get_data_child(local, prefix or parent.ns)
    _child_cache[cache_key] = child
    return child


# ----------------------------------------------------------------------------------------------------- CBOR → JSON

# How to read the value of one CBOR key at one place of the schema, worked out once per (place, key): the key table
# entry, the kind of schema node, the node, and for leaves the compiled leaf converter. Bounded by the schema: only
# registered keys get a plan.
_TOP_LEVEL = "top level"
_MAP, _LIST, _LEAF_LIST, _LEAF, _SCHEMALESS = "map", "list", "leaf-list", "leaf", "schemaless"
_MemberPlan = tuple[KeyEntry, str, Any, "LeafConverter | None"]
_member_plans: dict[tuple[Any, int], _MemberPlan] = {}


def _member_plan(place: InternalNode | str | None, entry: KeyEntry) -> _MemberPlan:
    if place is _TOP_LEVEL:
        structure = _top_level_schema(entry.name)
        return (entry, _MAP, structure, None) if structure is not None else (entry, _SCHEMALESS, None, None)
    child = _schema_child(place, entry.name)  # type: ignore[arg-type]
    if isinstance(child, ContainerNode):
        return entry, _MAP, child, None
    if isinstance(child, ListNode):
        return entry, _LIST, child, None
    if isinstance(child, LeafListNode):
        return entry, _LEAF_LIST, child, _leaf_converter(child.type)
    if isinstance(child, LeafNode):
        return entry, _LEAF, child, _leaf_converter(child.type)
    return entry, _SCHEMALESS, None, None


class _CborReader:
    def __init__(self) -> None:
        self.ignored: list[str] = []
        self.unknown_required: list[str] = []
        self.depth = 0

    def map(self, schema: InternalNode | None, value: Any, where: str, top_level: bool = False) -> dict[str, Any]:
        self.depth += 1
        try:
            return self._map(schema, value, where, top_level)
        finally:
            self.depth -= 1

    def _map(self, schema: InternalNode | None, value: Any, where: str, top_level: bool) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _bad(where, f"expected a map, got {_describe(value)}")
        if self.depth > MAX_NESTING:
            raise _bad(where, "nested too deeply")
        place = _TOP_LEVEL if top_level else schema
        result: dict[str, Any] = {}
        for key, item in value.items():
            plan = _member_plans.get((place, key)) if type(key) is int else None
            if plan is None:
                if not _is_integer(key):
                    raise _bad(where, f"map keys must be integers, got {_describe(key)}")
                if not MIN_KEY <= key <= MAX_KEY:
                    raise _bad(where, f"CBOR key {key} is outside 1-65535")
                entry = key_table().by_key.get(key)
                if entry is None:
                    if comprehension_of_unknown_key(key) is Comprehension.OPTIONAL:
                        self.ignored.append(f"{where}/{key}")
                    else:
                        self.unknown_required.append(f"{where}/{key}")
                    continue
                plan = _member_plans[(place, key)] = _member_plan(place, entry)
            entry, kind, child, convert = plan
            child_where = f"{where}/{entry.name}"
            if kind is _LEAF:
                result[entry.name] = convert(item, child_where)
            elif kind is _MAP:
                result[entry.name] = self.map(child, item, child_where)
            elif kind is _LIST:
                items = enumerate(_array(item, child_where))
                result[entry.name] = [self.map(child, element, f"{child_where}[{index}]") for index, element in items]
            elif kind is _LEAF_LIST:
                items = enumerate(_array(item, child_where))
                result[entry.name] = [convert(element, f"{child_where}[{index}]") for index, element in items]
            else:
                result[entry.name] = self.schemaless(entry, item, child_where)
        return result

    def schemaless(self, entry: KeyEntry, value: Any, where: str) -> Any:
        """A known key with no schema node here (Uri-Path parameters, misplaced members): keep its shape so that
        validation can name it; convert what the key table says about its type."""
        if isinstance(value, dict):
            return self.map(None, value, where)
        if isinstance(value, list):
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    raise _bad(where, "nested too deeply")
                return [self.schemaless(entry, item, f"{where}[{index}]") for index, item in enumerate(value)]
            finally:
                self.depth -= 1
        if isinstance(value, str | bool) or value is None:
            return value
        if _is_integer(value):
            if value.bit_length() > 64:
                raise _bad(where, "integer out of range")
            return str(value) if entry.json_type.endswith("String") else value
        raise _bad(where, f"unexpected {_describe(value)}")


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(where, f"expected an array, got {_describe(value)}")
    return value


LeafConverter = Callable[[Any, str], Any]
"""(value, where) → the converted value; raises ModelError naming ``where``."""


def leaf_from_cbor(dtype: DataType, value: Any, where: str) -> Any:
    """One CBOR scalar → its RFC 7951 JSON value, as ``dtype`` wants it."""
    return _leaf_converter(dtype)(value, where)


def _int_from_cbor(value: Any, where: str) -> Any:
    if type(value) is int and value.bit_length() <= 64:
        return value
    if not _is_integer(value):
        raise _bad(where, f"expected an integer, got {_describe(value)}")
    if value.bit_length() > 64:
        raise _bad(where, "integer out of range")
    return value


def _int64_from_cbor(value: Any, where: str) -> Any:
    return str(_int_from_cbor(value, where))


def _bool_passthrough(value: Any, where: str) -> Any:
    if not isinstance(value, bool):
        raise _bad(where, f"expected a boolean, got {_describe(value)}")
    return value


def _binary_from_cbor(value: Any, where: str) -> Any:
    if not isinstance(value, bytes):
        raise _bad(where, f"expected a byte string, got {_describe(value)}")
    return base64.b64encode(value).decode("ascii")


def _empty_from_cbor(value: Any, where: str) -> Any:
    if value is not None:
        raise _bad(where, f"expected null (empty type), got {_describe(value)}")
    return [None]


def _text_from_cbor(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        raise _bad(where, f"expected a text string, got {_describe(value)}")
    return value


def _compile_from_cbor(dtype: DataType) -> LeafConverter:
    if isinstance(dtype, LeafrefType):
        return _compile_from_cbor(dtype.ref_type)
    if isinstance(dtype, UnionType):
        members = [(member, _compile_from_cbor(member)) for member in dtype.types]
        return _union_converter(members, lambda member, value, converted: converted)
    if isinstance(dtype, EnumerationType):
        names = {number: name for name, number in dtype.enum.items()}

        def enumeration(value: Any, where: str) -> Any:
            if not _is_integer(value):
                raise _bad(where, f"expected an unsigned integer (enumeration), got {_describe(value)}")
            name = names.get(value)
            if name is None:
                raise _bad(where, f"{value} is not a defined value of {dtype}")
            return name

        return enumeration
    if isinstance(dtype, BooleanType):
        return _bool_passthrough
    if isinstance(dtype, Decimal64Type):
        return lambda value, where: _decimal_to_text(dtype, value, where)
    if isinstance(dtype, IntegralType):
        return _int64_from_cbor if isinstance(dtype, Int64Type | Uint64Type) else _int_from_cbor
    if isinstance(dtype, BinaryType):
        return _binary_from_cbor
    if isinstance(dtype, EmptyType):
        return _empty_from_cbor
    return _text_from_cbor


def _decimal_to_text(dtype: Decimal64Type, value: Any, where: str) -> str:
    if not isinstance(value, decimal.Decimal):
        raise _bad(where, f"expected a decimal fraction (CBOR tag 4), got {_describe(value)}")
    return format(_exact_decimal(dtype, value, where), "f")


def _exact_decimal(dtype: Decimal64Type, number: decimal.Decimal, where: str) -> decimal.Decimal:
    """``number`` with exactly fraction-digits decimals (so "1.5", [-1, 15] and [-2, 150] all become 1.50)."""
    if not number.is_finite() or abs(number.adjusted()) > _MAX_DECIMAL_MAGNITUDE:
        raise _bad(where, "decimal value out of range")
    try:
        exact = number.quantize(decimal.Decimal(1).scaleb(-dtype.fraction_digits))
    except decimal.InvalidOperation:
        raise _bad(where, "decimal value out of range") from None
    if exact != number:
        raise _bad(where, f"more than {dtype.fraction_digits} fraction digits")
    return exact


# Converters that behave alike for every type they serve: a union whose members all use one of them converts every
# value the same way whichever member takes it, so it needs no member-by-member trial.
_SHARED_CONVERTERS: set[LeafConverter] = set()


def _union_converter(
    members: list[tuple[DataType, LeafConverter]], raw_of: Callable[[DataType, Any, Any], Any]
) -> LeafConverter:
    """The first member type that takes the value (RFC 7950 §9.12); if none takes it, the first conversion that
    worked, so that validation reports the range or pattern error."""
    converters = {converter for _, converter in members}
    if len(converters) == 1 and converters <= _SHARED_CONVERTERS:
        return converters.pop()

    def union(value: Any, where: str) -> Any:
        fallback: tuple[Any] | None = None
        first_error: ModelError | None = None
        for member, convert in members:
            try:
                converted = convert(value, where)
            except ModelError as error:
                first_error = first_error or error
                continue
            cooked = member.from_raw(raw_of(member, value, converted))
            if cooked is not None and cooked in member:
                return converted
            fallback = fallback or (converted,)
        if fallback is not None:
            return fallback[0]
        assert first_error is not None
        raise first_error

    return union


class _NotPlain(Exception):
    """The body needs the full reader: a key without a plan yet, a schemaless member, or a value it refuses."""


def _plain_map(place: Any, value: Any) -> dict[str, Any]:
    """The common case of _CborReader.map, without building the ``where`` of every member: every key already has a
    plan with a schema node, and every value converts. Anything else raises _NotPlain and the full reader, which
    words the diagnostics and lists the ignored keys, starts over. Nesting follows the schema, so it is bounded."""
    if type(value) is not dict:
        raise _NotPlain
    result: dict[str, Any] = {}
    plans = _member_plans
    try:
        for key, item in value.items():
            if type(key) is not int:  # True or 1.0 would find the plan of key 1
                raise _NotPlain
            entry, kind, child, convert = plans[(place, key)]
            if kind is _LEAF:
                result[entry.name] = convert(item, "")
            elif kind is _MAP:
                result[entry.name] = _plain_map(child, item)
            elif kind is _LIST:
                if type(item) is not list:
                    raise _NotPlain
                result[entry.name] = [_plain_map(child, element) for element in item]
            elif kind is _LEAF_LIST:
                if type(item) is not list:
                    raise _NotPlain
                result[entry.name] = [convert(element, "") for element in item]
            else:
                raise _NotPlain
    except (KeyError, TypeError, ModelError):  # no plan (or an unhashable key), or a value the converter refuses
        raise _NotPlain from None
    return result


def cbor_to_json(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """A decoded CBOR body (integer keys) → YANG-JSON, without validation.

    Returns the JSON object and the comprehension-optional keys that were dropped because nobody registered them
    (as ``/path/key`` strings, for logging). Raises ModelError("4.00") for unknown comprehension-required keys
    (all of them are listed in the diagnostic) and for values whose CBOR type the schema does not allow.
    """
    try:
        return _plain_map(_TOP_LEVEL, obj), []
    except _NotPlain:
        pass
    reader = _CborReader()
    result = reader.map(None, obj, "", top_level=True)
    if reader.unknown_required:
        raise ModelError("4.00", "unknown comprehension-required CBOR key(s): " + ", ".join(reader.unknown_required))
    return result, reader.ignored


# ----------------------------------------------------------------------------------------------------- JSON → CBOR


def _json_map(
    schema: InternalNode | None, value: Any, where: str, top_level: bool = False, depth: int = 1
) -> dict[int, Any]:
    if not isinstance(value, dict):
        raise _bad(where, f"expected an object, got {_describe(value)}")
    if depth > MAX_NESTING:
        raise _bad(where, "nested too deeply")
    place = _TOP_LEVEL if top_level else schema
    result: dict[int, Any] = {}
    for name, item in value.items():
        plan = _name_plans.get((place, name)) if type(name) is str else None
        if plan is None:
            entry = key_table().by_name.get(name) if isinstance(name, str) else None
            if entry is None:
                raise _bad(f"{where}/{name}", "member has no DOTS CBOR key")
            plan = _name_plans[(place, name)] = _json_member_plan(place, entry)
        key, kind, child, convert = plan
        child_where = f"{where}/{name}"
        if kind is _LEAF:
            result[key] = convert(item, child_where)
        elif kind is _MAP:
            result[key] = _json_map(child, item, child_where, depth=depth + 1)
        elif kind is _LIST:
            items = enumerate(_array(item, child_where))
            result[key] = [
                _json_map(child, element, f"{child_where}[{index}]", depth=depth + 1) for index, element in items
            ]
        elif kind is _LEAF_LIST:
            items = enumerate(_array(item, child_where))
            result[key] = [convert(element, f"{child_where}[{index}]") for index, element in items]
        else:
            result[key] = _json_schemaless(item, child_where, depth + 1)
    return result


# The JSON → CBOR counterpart of _member_plans, per (place, member name); only names in the key table get one.
_JsonMemberPlan = tuple[int, str, Any, "LeafConverter | None"]
_name_plans: dict[tuple[Any, str], _JsonMemberPlan] = {}


def _json_member_plan(place: InternalNode | str | None, entry: KeyEntry) -> _JsonMemberPlan:
    if place is _TOP_LEVEL:
        structure = _top_level_schema(entry.name)
        return (entry.key, _MAP, structure, None) if structure is not None else (entry.key, _SCHEMALESS, None, None)
    child = _schema_child(place, entry.name)  # type: ignore[arg-type]
    if isinstance(child, ContainerNode):
        return entry.key, _MAP, child, None
    if isinstance(child, ListNode):
        return entry.key, _LIST, child, None
    if isinstance(child, LeafListNode):
        return entry.key, _LEAF_LIST, child, _to_cbor_converter(child.type)
    if isinstance(child, LeafNode):
        return entry.key, _LEAF, child, _to_cbor_converter(child.type)
    return entry.key, _SCHEMALESS, None, None


def _json_schemaless(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_NESTING:
        raise _bad(where, "nested too deeply")
    if isinstance(value, dict):
        return _json_map(None, value, where, depth=depth)
    if isinstance(value, list):
        return [_json_schemaless(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
    if isinstance(value, str | bool | int) or value is None:
        return value
    raise _bad(where, f"unexpected {_describe(value)}")


def leaf_to_cbor(dtype: DataType, value: Any, where: str) -> Any:
    """One RFC 7951 JSON scalar → the CBOR item RFC 9132 Table 5 wants for ``dtype``."""
    return _to_cbor_converter(dtype)(value, where)


def _int64_to_cbor(value: Any, where: str) -> Any:
    if not isinstance(value, str) or not _INTEGER_TEXT.fullmatch(value) or len(value) > 21:
        raise _bad(where, f"expected a 64-bit integer as a decimal string, got {_describe(value)}")
    return int(value)


def _int_to_cbor(value: Any, where: str) -> Any:
    if not _is_integer(value):
        raise _bad(where, f"expected an integer, got {_describe(value)}")
    return value


def _binary_to_cbor(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        raise _bad(where, f"expected base64 text, got {_describe(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _bad(where, "invalid base64") from None


def _empty_to_cbor(value: Any, where: str) -> Any:
    if value != [None]:
        raise _bad(where, "expected [null] (empty type)")
    return None


def _text_to_cbor(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        raise _bad(where, f"expected a string, got {_describe(value)}")
    return value


def _compile_to_cbor(dtype: DataType) -> LeafConverter:
    if isinstance(dtype, LeafrefType):
        return _compile_to_cbor(dtype.ref_type)
    if isinstance(dtype, UnionType):
        members = [(member, _compile_to_cbor(member)) for member in dtype.types]
        return _union_converter(members, lambda member, value, converted: value)
    if isinstance(dtype, EnumerationType):
        numbers = dtype.enum

        def enumeration(value: Any, where: str) -> Any:
            if not isinstance(value, str):
                raise _bad(where, f"expected an enumeration name, got {_describe(value)}")
            number = numbers.get(value)
            if number is None:
                raise _bad(where, f"{value!r} is not a defined name of {dtype}")
            return number

        return enumeration
    if isinstance(dtype, BooleanType):
        return _bool_passthrough
    if isinstance(dtype, Decimal64Type):
        return lambda value, where: _text_to_decimal(dtype, value, where)
    if isinstance(dtype, Int64Type | Uint64Type):
        return _int64_to_cbor
    if isinstance(dtype, IntegralType):
        return _int_to_cbor
    if isinstance(dtype, BinaryType):
        return _binary_to_cbor
    if isinstance(dtype, EmptyType):
        return _empty_to_cbor
    return _text_to_cbor


_SHARED_CONVERTERS.update(
    {
        _int_from_cbor,
        _int64_from_cbor,
        _bool_passthrough,
        _binary_from_cbor,
        _empty_from_cbor,
        _text_from_cbor,
        _int64_to_cbor,
        _int_to_cbor,
        _binary_to_cbor,
        _empty_to_cbor,
        _text_to_cbor,
    }
)


def _text_to_decimal(dtype: Decimal64Type, value: Any, where: str) -> decimal.Decimal:
    if not isinstance(value, str):
        raise _bad(where, f"expected a decimal64 as a string, got {_describe(value)}")
    try:
        number = decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise _bad(where, f"{value[:40]!r} is not a decimal number") from None
    # cbor2 writes a Decimal as tag 4 [exponent, mantissa]; exponent -fraction-digits is RFC 9132 Table 5's [-2, n].
    return _exact_decimal(dtype, number, where)


def json_to_cbor(obj: dict[str, Any]) -> dict[int, Any]:
    """A YANG-JSON body → the CBOR data model with integer keys (encode it with cbor2). No validation.

    Raises ModelError("4.00") for a member without a CBOR key or a value that cannot take the schema's CBOR form.
    """
    try:
        return _plain_json_map(_TOP_LEVEL, obj)
    except _NotPlain:
        return _json_map(None, obj, "", top_level=True)


def _plain_json_map(place: Any, value: Any) -> dict[int, Any]:
    """The common case of _json_map (every member already has a plan, every value converts), without building the
    ``where`` of every member: most of the encoding's cost for the small bodies the server answers with. Anything
    else raises _NotPlain and _json_map, which words the diagnostics, starts over. Nesting follows the schema."""
    if type(value) is not dict:
        raise _NotPlain
    result: dict[int, Any] = {}
    plans = _name_plans
    try:
        for name, item in value.items():
            key, kind, child, convert = plans[(place, name)]
            if kind is _LEAF:
                result[key] = convert(item, "")
            elif kind is _MAP:
                result[key] = _plain_json_map(child, item)
            elif kind is _LIST:
                if type(item) is not list:
                    raise _NotPlain
                result[key] = [_plain_json_map(child, element) for element in item]
            elif kind is _LEAF_LIST:
                if type(item) is not list:
                    raise _NotPlain
                result[key] = [convert(element, "") for element in item]
            else:
                raise _NotPlain
    except (KeyError, TypeError, ModelError):  # no plan yet (or an unhashable name), or a value the converter refuses
        raise _NotPlain from None
    return result


# One converter per schema type, compiled on first use (the schema's types live as long as the process).
_leaf_converter: Callable[[DataType], LeafConverter] = functools.cache(_compile_from_cbor)
_to_cbor_converter: Callable[[DataType], LeafConverter] = functools.cache(_compile_to_cbor)
