"""The CBOR key table against the shipped TSV and against the YANG modules of the signal channel."""

from __future__ import annotations

import csv

import pytest
from yangson.datatype import (
    BooleanType,
    DataType,
    Decimal64Type,
    EnumerationType,
    Int64Type,
    IntegralType,
    LeafrefType,
    Uint64Type,
    UnionType,
)
from yangson.schemanode import DataNode, InternalNode, LeafListNode, LeafNode, SchemaNode

from opendots.model import Comprehension, key_table
from opendots.model.convert import SIGNAL_TOP_LEVEL, TELEMETRY_TOP_LEVEL
from opendots.model.keys import comprehension_of_unknown_key
from opendots.model.schema import derive_module_text, official_module_text, signal_schema
from tests.helpers import REPOSITORY

TSV = REPOSITORY / "opendots" / "model" / "cbor-keys.tsv"


def _tsv_rows() -> list[dict[str, str]]:
    with TSV.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_every_tsv_row_is_in_the_table_and_nothing_else() -> None:
    rows = _tsv_rows()
    table = key_table()
    assert len(rows) == 150
    assert sorted(int(row["cbor_key"]) for row in rows) == [entry.key for entry in table.entries]
    for row in rows:
        entry = table.by_key[int(row["cbor_key"])]
        assert entry.name == row["parameter_name"]
        assert entry.yang_type == row["yang_type"]
        assert entry.cbor_major_type == row["cbor_major_type"]
        assert entry.json_type == row["json_type"]
        assert entry.comprehension.value == row["comprehension"]
        assert table.by_name[row["parameter_name"]] is entry


@pytest.mark.parametrize(
    ("key", "module"),
    [
        (1, "ietf-dots-signal-channel"),
        (51, "ietf-dots-signal-channel"),
        (52, "ietf-dots-signal-control"),
        (53, "ietf-dots-signal-control"),
        (128, "ietf-dots-telemetry"),
        (210, "ietf-dots-telemetry"),
        (32768, "ietf-dots-call-home"),
        (32775, "ietf-dots-call-home"),
        (32776, "ietf-dots-robust-trans"),
        (32781, "ietf-dots-robust-trans"),
    ],
)
def test_owning_module_follows_the_source_table(key: int, module: str) -> None:
    assert key_table().by_key[key].module == module


def test_prefixed_names_belong_to_their_owning_module() -> None:
    for entry in key_table().entries:
        assert entry.prefix in (None, entry.module), entry


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (1, Comprehension.REQUIRED),
        (127, Comprehension.REQUIRED),
        (128, Comprehension.OPTIONAL),
        (255, Comprehension.OPTIONAL),
        (256, Comprehension.REQUIRED),
        (16383, Comprehension.REQUIRED),
        (16384, Comprehension.OPTIONAL),
        (49151, Comprehension.OPTIONAL),
        (49152, Comprehension.OPTIONAL),
        (65535, Comprehension.OPTIONAL),
    ],
)
def test_unknown_key_comprehension_follows_rfc9132_table8(key: int, expected: Comprehension) -> None:
    assert comprehension_of_unknown_key(key) is expected


def _member_names(node: InternalNode, parent_ns: str, found: dict[str, SchemaNode]) -> None:
    """Every RFC 7951 member name used below ``node`` (prefixed where the namespace changes)."""
    for child in node.children:
        if isinstance(child, DataNode):
            name = child.name if child.ns == parent_ns else f"{child.ns}:{child.name}"
            found[name] = child
            if isinstance(child, InternalNode):
                _member_names(child, child.ns, found)
        elif isinstance(child, InternalNode):  # choice, case, uses-with-when: transparent in instances
            _member_names(child, parent_ns, found)


def _schema_member_names() -> dict[str, SchemaNode]:
    schema = signal_schema()
    found: dict[str, SchemaNode] = {}
    for structure in (schema.dots_signal, schema.dots_telemetry):
        _member_names(structure, structure.ns, found)
    for name in SIGNAL_TOP_LEVEL + TELEMETRY_TOP_LEVEL:
        found[name] = schema.dots_signal
    return found


def test_every_schema_member_has_a_key_and_every_key_is_in_the_schema() -> None:
    schema_names = set(_schema_member_names())
    table_names = {entry.name for entry in key_table().entries if entry.in_yang_structure}
    assert schema_names - table_names == set()
    assert table_names - schema_names == set()
    # The Uri-Path parameters have keys (RFC 9132 Table 5) but no YANG node.
    assert {entry.name for entry in key_table().entries if not entry.in_yang_structure} == {"cuid", "cdid", "sid"}


def _json_type(dtype: DataType) -> str:
    if isinstance(dtype, LeafrefType):
        return _json_type(dtype.ref_type)
    if isinstance(dtype, UnionType):
        kinds = {_json_type(member) for member in dtype.types}
        assert len(kinds) == 1, kinds
        return kinds.pop()
    if isinstance(dtype, BooleanType):
        return "False / True"
    if isinstance(dtype, IntegralType) and not isinstance(dtype, Int64Type | Uint64Type):
        return "Number"
    assert isinstance(dtype, Decimal64Type | EnumerationType | IntegralType) or type(dtype).__name__ in {
        "StringType",
        "IdentityrefType",
    }, dtype
    return "String"


# RFC 9132 Table 5 prints "String" as the JSON type of retry-timer, a uint32; RFC 7951 §6.1 (and yangson) make a
# uint32 a JSON number, and the converter follows the YANG module.
_TABLE_JSON_TYPE_DISAGREES_WITH_RFC7951 = {"retry-timer"}


def test_json_types_of_the_table_match_the_yang_types() -> None:
    for name, node in _schema_member_names().items():
        entry = key_table().by_name[name]
        if isinstance(node, LeafNode) and entry.yang_type == "union":  # the table gives one sub-row per member
            expected = " / ".join(_json_type(member) for member in node.type.types)
        elif isinstance(node, LeafNode):
            expected = _json_type(node.type)
        elif isinstance(node, LeafListNode):
            expected = f"Array / {_json_type(node.type)}"
        else:
            continue
        if name in _TABLE_JSON_TYPE_DISAGREES_WITH_RFC7951:
            assert (entry.json_type, expected) == ("String", "Number")
        else:
            assert entry.json_type == expected, name


def test_enumeration_values_come_from_the_modules() -> None:
    scope = signal_schema().dots_signal.get_data_child("scope")
    status = scope.get_data_child("status").type
    # RFC 9132 Table 3 and Table 4 (hand-checked).
    assert status.enum["attack-mitigation-in-progress"] == 1
    assert status.enum["attack-successfully-mitigated"] == 2
    assert status.enum["attack-mitigation-signal-loss"] == 8
    attack_status = scope.get_data_child("attack-status").type
    assert attack_status.enum == {"under-attack": 1, "attack-successfully-mitigated": 2}


def test_derived_view_rewrites_structures_and_leaves_the_shipped_file_alone() -> None:
    original = official_module_text("ietf-dots-call-home", "2021-12-09")
    derived = derive_module_text("ietf-dots-call-home", original)
    assert "sx:augment-structure" in original
    assert "sx:augment-structure" not in derived
    assert derived.count('augment "/dots-signal:dots-signal"') == 2
    assert official_module_text("ietf-dots-call-home", "2021-12-09") == original
    signal_text = official_module_text("ietf-dots-signal-channel", "2021-09-02")
    signal = derive_module_text("ietf-dots-signal-channel", signal_text)
    assert "container dots-signal {" in signal
    assert signal.count("require-instance false;") == 2
