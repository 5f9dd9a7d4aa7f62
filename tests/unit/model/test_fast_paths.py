"""The shortcuts of the model's hot path give the same answers as the full paths they skip:

- leaf types: the one-pass check of plain str/int values (compiled._plain_fast_path) against the yangson-driven
  check it short-cuts, on every leaf type of the signal and telemetry structures;
- member patterns: the verdict remembered by member names still rejects what it rejected;
- CBOR → JSON: the path-free conversion (convert._plain_map) against the full reader, on mutated CBOR bodies.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yangson.constraint import Intervals
from yangson.datatype import DataType
from yangson.schemanode import InternalNode, LeafListNode, LeafNode, SchemaNode

from opendots.model import ModelError, cbor_to_json, decode_signal, json_to_cbor, validate_signal
from opendots.model.compiled import Reject, _compile_type, _plain_fast_path, _schema_path, compile_type
from opendots.model.convert import _CborReader
from opendots.model.schema import signal_schema
from opendots.model.validate import _structure_of, _validate_with_yangson
from opendots.model.xpath import Defer
from tests.helpers import FIXTURES
from tests.helpers.body_mutations import mutate

DATA = FIXTURES
EXAMPLES = sorted(path for path in DATA.glob("rfc*/*.json") if "verbatim-invalid" not in path.stem)
REDIRECT = "ietf-dots-signal-channel:redirected-signal"
SCOPE = "ietf-dots-signal-channel:mitigation-scope"


def _leaf_types() -> list[tuple[str, DataType]]:
    """Every distinct leaf type of the two structures, with the first data path that uses it."""
    found: dict[int, tuple[str, DataType]] = {}

    def walk(node: SchemaNode) -> None:
        if isinstance(node, LeafNode | LeafListNode):
            found.setdefault(id(node.type), (_schema_path(node), node.type))
        if isinstance(node, InternalNode):
            for child in node.children:
                walk(child)

    schema = signal_schema()
    walk(schema.dots_signal)
    walk(schema.dots_telemetry)
    return sorted(found.values(), key=lambda item: item[0])


_RAW_VALUES = [
    0, 1, -1, -2, 80, 127, 128, 255, 256, 3600, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63, -(2**31) - 1,
    True, False, None, 1.5, [], {},
    "", "x", "80", "-1", "1.50", "a" * 300,
    "2001:db8::/32", "2001:db8::/129", "2001:db8::1/64", "2001:DB8::/48", "::/0", "192.0.2.0/24", "192.0.2.0/33",
    "192.0.02.0/24", "2001:db8::1", "192.0.2.1", "::ffff:192.0.2.1", "fe80::1%eth0", "example.com", "-bad-.com",
    "https://example.com/", "attack-stopped", "under-attack", "immediate", "megabit-ps", "bogus", "en-US",
    "ietf-access-control-list:ipv6-acl-type", "dz6pHjaADkaFTbjr0JGBpw", "AAEC",
]  # fmt: skip


def _outcome(check: Any, raw: Any) -> tuple[str, Any]:
    try:
        return "accepted", check(raw)
    except Reject as rejection:
        return "rejected", rejection.reason
    except Defer:
        return "deferred", None


LEAF_TYPES = _leaf_types()


@pytest.mark.parametrize(("where", "dtype"), LEAF_TYPES, ids=[where for where, _ in LEAF_TYPES])
def test_every_leaf_type_takes_and_refuses_what_yangson_does(where: str, dtype: DataType) -> None:
    fast = compile_type(dtype, where)
    reference = _compile_type(dtype, where)
    # Twice, in two orders: the union member tried first moves with the values seen.
    for raw in [*_RAW_VALUES, *reversed(_RAW_VALUES)]:
        got, expected = _outcome(fast, raw), _outcome(reference, raw)
        assert got == expected, (where, raw)
        if got[0] == "accepted":
            assert type(got[1]) is type(expected[1])


def test_the_corpus_reaches_the_fast_leaf_checks() -> None:
    """ip-prefix, ports and the lifetime union must be taken by the one-pass check, or the test above proves
    nothing about it."""
    by_where = dict(LEAF_TYPES)
    for where, raw in [("/dots-signal/scope/target-prefix", "2001:db8::/32"), ("/dots-signal/scope/lifetime", 3600)]:
        dtype = by_where[where]
        reference = _compile_type(dtype, where)
        assert _plain_fast_path(dtype, reference) is not reference
        assert _outcome(compile_type(dtype, where), raw) == ("accepted", raw)


def test_ip_prefix_families_may_alternate() -> None:
    dtype = dict(LEAF_TYPES)["/dots-signal/scope/target-prefix"]
    check = compile_type(dtype, "/x")
    for index in range(3000):  # more than the accepted-value memo holds
        assert check(f"2001:db8:{index:x}::/48") == f"2001:db8:{index:x}::/48"
        assert check(f"192.0.2.{index % 256}/32") == f"192.0.2.{index % 256}/32"
        with pytest.raises(Reject):
            check(f"192.0.2.{index % 256}/33")
        with pytest.raises(Reject):
            check(f"2001:db8:{index:x}::/129")


# ------------------------------------------------------------------------------------------- member patterns


def _refused(body: dict[str, Any]) -> str:
    with pytest.raises(ModelError) as caught:
        validate_signal(body)
    assert caught.value.code == "4.00"
    return caught.value.diagnostic


def test_a_remembered_pattern_verdict_still_refuses() -> None:
    good_redirect = {REDIRECT: {"alt-server": "alt.example", "alt-server-record": ["2001:db8::1"]}}
    missing_mandatory = {REDIRECT: {"alt-server-record": ["2001:db8::1"]}}
    two_cases = {SCOPE: {"scope": [{"target-prefix": ["2001:db8::/32"], "status": 2, "attack-status": 1}]}}
    for _ in range(3):
        validate_signal(good_redirect)
        assert "alt-server" in _refused(missing_mandatory)
        assert _refused(two_cases)
    for count in range(300):  # more member orders than the verdict memo keeps: it starts over, still right
        members = [f"target-{name}" for name in ("fqdn", "uri")] + ["alias-name", "lifetime"]
        entry = {name: (3600 + count if name == "lifetime" else [f"x{count}.example"]) for name in members}
        entry = dict(reversed(entry.items())) if count % 2 else entry
        entry["target-uri"] = [f"https://x{count}.example/"]
        validate_signal({SCOPE: {"scope": [entry]}})
    assert _refused(two_cases)


# ------------------------------------------------------------------------------------------------ CBOR → JSON


def _full_reader(obj: Any) -> tuple[str, Any]:
    reader = _CborReader()
    try:
        result = reader.map(None, obj, "", top_level=True)
    except ModelError as error:
        return "error", (error.code, error.diagnostic)
    if reader.unknown_required:
        # through ModelError: a long diagnostic is shortened there, the same for both readers
        unknown = ", ".join(reader.unknown_required)
        refused = ModelError("4.00", f"unknown comprehension-required CBOR key(s): {unknown}")
        return "error", (refused.code, refused.diagnostic)
    return "ok", (result, reader.ignored)


def _converted(obj: Any) -> tuple[str, Any]:
    try:
        return "ok", cbor_to_json(obj)
    except ModelError as error:
        return "error", (error.code, error.diagnostic)


def _cbor_example(path: Path) -> Any:
    return cbor2.loads(cbor2.dumps(json_to_cbor(json.loads(path.read_text(encoding="utf-8")))))


_CBOR_KEYS = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 22, 25, 26, 27, 28, 29, 30, 31, 32, 33,
              34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
              60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85,
              128, 200, 255, 256, 1000, 16384, 32768, 65535, 65536, 0, -1, True, False, 1.0, "1", b"\x01"]  # fmt: skip
_CBOR_SCALARS = st.sampled_from([0, 1, -1, 3600, 2**64, True, None, "x", "2001:db8::/32", b"\x00", 1.5])
_CBOR_VALUES = st.recursive(
    _CBOR_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_CBOR_KEYS), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_path_free_conversion_agrees_with_the_full_reader(data: st.DataObject) -> None:
    obj = _cbor_example(data.draw(st.sampled_from(EXAMPLES)))
    mutate(data, obj, st.sampled_from(_CBOR_KEYS), _CBOR_VALUES)
    expected = _full_reader(copy.deepcopy(obj))
    assert _converted(obj) == expected
    assert _converted(obj) == expected  # again, now that every key it has met has a plan


def test_a_diagnostic_listing_many_unknown_keys_is_shortened_alike_by_both_readers() -> None:
    """Found by the property test above: six unknown keys in an acl-list make a diagnostic long enough to be cut."""
    obj = _cbor_example(DATA / "rfc9133" / "fig11-activate-rate-limit-filter.json")
    obj[1][2][0][53] += [{54: 0, 55: 0, 56: 0}, {54: 0, 55: 0, 56: 0}]
    outcome = _converted(obj)
    assert outcome == _full_reader(copy.deepcopy(obj))
    assert outcome[0] == "error" and "..." in outcome[1][1]


def test_the_path_free_conversion_does_not_take_a_boolean_for_key_1() -> None:
    obj = _cbor_example(DATA / "rfc9132" / "fig07-mitigation-request.json")
    assert _converted(obj)[0] == "ok"
    obj[True] = obj.pop(1)  # the mitigation-scope key, written as a CBOR true
    assert _converted(obj) == _full_reader(obj)
    assert _converted(obj)[0] == "error"


def test_an_integer_range_of_several_intervals_is_checked_like_yangson() -> None:
    """No DOTS leaf has one today; a module revision may add one."""
    port_type = copy.copy(next(dtype for where, dtype in LEAF_TYPES if where.endswith("/lower-port")))
    port_type.range = Intervals([[1, 5], [10], [20, 30]])
    check = compile_type(port_type, "/x")
    for raw in [0, 1, 3, 5, 6, 9, 10, 11, 19, 20, 30, 31, 65535, True, "10"]:
        accepted = _outcome(check, raw)[0] == "accepted"
        assert accepted == (type(raw) is int and raw in port_type.range), raw


# ------------------------------------------------------------------------------------- through decode_signal


def _scope_cbor(**members: Any) -> bytes:
    entry = {"target-prefix": ["2001:db8::/32"], "lifetime": 3600, **members}
    return cbor2.dumps(json_to_cbor({SCOPE: {"scope": [entry]}}))


def _yangsons_diagnostic(payload: bytes) -> str:
    """yangson's own wording for the body, which the full reader converted."""
    status, (body, _) = _full_reader(cbor2.loads(payload))
    assert status == "ok"
    ((top_name, contents),) = body.items()
    with pytest.raises(ModelError) as caught:
        _validate_with_yangson(_structure_of(telemetry=False), contents, top_name)
    return caught.value.diagnostic


@pytest.mark.parametrize(
    "members",
    [
        {"target-prefix": ["2001:db8::/129"]},
        {"target-prefix": ["192.0.2.0/33"]},
        {"target-prefix": ["2001:db8::/32", "2001:db8::/32"]},
        {"target-port-range": [{"lower-port": 70000}]},
        {"target-port-range": [{"lower-port": 9, "upper-port": 8}]},
        {"target-port-range": [{"lower-port": 9}, {"lower-port": 9}]},
        {"target-protocol": [256]},
        {"lifetime": 2**32},
        {"lifetime": -2},
        {"attack-status": "under-attack", "status": "attack-stopped"},
    ],
    ids=lambda members: json.dumps(members),
)
def test_a_body_yangson_rejects_is_rejected_with_its_diagnostic_after_good_ones(members: dict[str, Any]) -> None:
    for index in range(3):  # warm every plan, memo and remembered verdict with accepted bodies of the same shape
        decode_signal(_scope_cbor(**{"target-prefix": [f"2001:db8:{index}::/48"]}))
    payload = _scope_cbor(**members)
    expected = _yangsons_diagnostic(payload)
    for _ in range(2):
        with pytest.raises(ModelError) as caught:
            decode_signal(payload)
        assert (caught.value.code, caught.value.diagnostic) == ("4.00", expected)
