"""The compiled validator (opendots/model/compiled.py) against yangson, the reference: on every RFC example body and
on mutated versions of them, the compiled check must never call "valid" what yangson rejects nor "invalid" what
yangson accepts. It may defer (XPath, metadata), in which case yangson alone decides."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from yangson.schemanode import DataNode, InternalNode, LeafListNode, LeafNode, SchemaNode

from opendots.model import ModelError, encode_signal, key_table, validate_signal, validate_telemetry
from opendots.model.codec import validate_every_encoding
from opendots.model.schema import signal_schema
from opendots.model.validate import compiled_verdict, yangson_verdict
from opendots.model.xpath import LEAF, MEMBER, OBJECT, compile_condition
from tests.helpers import FIXTURES

DATA = FIXTURES
EXAMPLES = sorted(DATA.glob("rfc*/*.json"))


def _contents(path: Path) -> tuple[Any, bool]:
    ((top_name, contents),) = json.loads(path.read_text(encoding="utf-8")).items()
    return contents, top_name.startswith("ietf-dots-telemetry:")


def _assert_same_verdict(contents: Any, telemetry: bool) -> str:
    compiled = compiled_verdict(contents, telemetry)
    if compiled != "deferred":
        assert compiled == yangson_verdict(contents, telemetry), json.dumps(contents, default=str)[:2000]
    return compiled


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_examples_get_yangsons_verdict_without_yangson(path: Path) -> None:
    contents, telemetry = _contents(path)
    expected = "invalid" if "verbatim-invalid" in path.stem else "valid"
    assert _assert_same_verdict(contents, telemetry) == expected


# ------------------------------------------------------------------------------------------------ mutated bodies

_NAMES = [
    *sorted({entry.name for entry in key_table().entries}),
    "ietf-dots-signal-channel:scope",
    "ietf-dots-signal-channel:lower-port",
    "ietf-dots-telemetry:unit",
    "no-such-member",
    "bogus:lower-port",
]
_SCALARS = [
    0, 1, -1, 80, 255, 256, 443, 65535, 65536, 2**31, 2**32 - 1, 2**32, 2**63, 2**64, -(2**63) - 1,
    True, False, None, 1.5,
    "", "x", "80", "-1", "1.50", "1.505", "99.99", "100.00", "18446744073709551615", "18446744073709551616",
    "2001:db8::/32", "2001:db8::/129", "192.0.2.0/24", "192.0.2.0/33", "2001:db8::1", "192.0.2.1", "example.com",
    "attack-stopped", "immediate", "megabit-ps", "hour", "bogus", "en-US", "english!",
    "ietf-access-control-list:ipv6-acl-type", "ietf-access-control-list:eth-acl-type", "overlapping-targets",
    "conflict-with-acceptlist", "dz6pHjaADkaFTbjr0JGBpw", "AAEC", "!!",
]  # fmt: skip
_VALUES = st.recursive(
    st.sampled_from(_SCALARS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_NAMES), inner, max_size=3),
    max_leaves=6,
)


def _positions(item: Any) -> list[tuple[Any, Any]]:
    """Every (parent, key-or-index) in the body, parents first."""
    found: list[tuple[Any, Any]] = []
    if isinstance(item, dict):
        for key, value in item.items():
            found.append((item, key))
            found.extend(_positions(value))
    elif isinstance(item, list):
        for index, value in enumerate(item):
            found.append((item, index))
            found.extend(_positions(value))
    return found


def _containers(item: Any) -> list[Any]:
    found = [item] if isinstance(item, dict | list) else []
    children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else []
    for child in children:
        found.extend(_containers(child))
    return found


def _mutate(data: st.DataObject, contents: Any) -> None:
    kind = data.draw(st.sampled_from(["delete", "replace", "insert", "duplicate", "swap-value"]))
    if kind in ("delete", "replace", "duplicate", "swap-value"):
        positions = _positions(contents)
        if not positions:
            return
        parent, key = data.draw(st.sampled_from(positions))
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = data.draw(_VALUES)
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:  # another value already in the body, of another member: right shape, maybe wrong type or range
            _, other_key = other = data.draw(st.sampled_from(positions))
            parent[key] = copy.deepcopy(other[0][other_key])
    else:
        target = data.draw(st.sampled_from(_containers(contents)))
        value = data.draw(_VALUES)
        if isinstance(target, dict):
            target[data.draw(st.sampled_from(_NAMES))] = value
        else:
            target.append(value)


def _names_a_member_twice(item: Any) -> bool:
    """Whether an object names one member twice, simple and namespace-qualified (RFC 7951 §4), e.g. 'telemetry' and
    'ietf-dots-telemetry:telemetry': yangson keeps whichever comes last, so its verdict is no reference there."""
    if isinstance(item, dict):
        local = [str(key).rpartition(":")[2] for key in item]
        return len(set(local)) < len(local) or any(_names_a_member_twice(value) for value in item.values())
    return isinstance(item, list) and any(_names_a_member_twice(value) for value in item)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_examples_get_the_same_verdict_as_yangson(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(EXAMPLES))
    contents, telemetry = _contents(path)
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(data, contents)
    assume(not _names_a_member_twice(contents))
    _assert_same_verdict(contents, telemetry)


def test_a_member_named_twice_simple_and_qualified_is_invalid() -> None:
    """RFC 7951 §4: one data node, one member. yangson would keep the last of the two (found by the test above)."""
    body = {
        "telemetry": [{"current-config": {"low-percentile": "5.00", "mid-percentile": "65.00"}}],
        "ietf-dots-telemetry:telemetry": [],
    }
    assert compiled_verdict(body, True) == "invalid"


def test_the_corpus_exercises_both_verdicts() -> None:
    """A differential test is only worth something if the compiled check itself decides most bodies."""
    verdicts = []
    for path in EXAMPLES:
        contents, telemetry = _contents(path)
        scope_contents = copy.deepcopy(contents)
        verdicts.append(_assert_same_verdict(scope_contents, telemetry))
        if isinstance(scope_contents, dict) and scope_contents:
            scope_contents[next(iter(scope_contents))] = 7
            verdicts.append(_assert_same_verdict(scope_contents, telemetry))
    assert verdicts.count("valid") >= 30
    assert verdicts.count("invalid") >= 30


# ------------------------------------------------------------------------------------- what the caller then does


def test_must_is_evaluated_and_the_diagnostic_is_yangsons() -> None:
    ports = {"lower-port": 443, "upper-port": 80}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"target-port-range": [ports]}]}}
    assert compiled_verdict(body["ietf-dots-signal-channel:mitigation-scope"]) == "invalid"
    with pytest.raises(ModelError, match="upper-port: must-violation"):
        validate_signal(body)
    ports["upper-port"] = 443
    assert compiled_verdict(body["ietf-dots-signal-channel:mitigation-scope"]) == "valid"
    validate_signal(body)


def test_a_path_to_a_defaulted_leaf_defers_to_yangson() -> None:
    # mid-percentile must be >= ../low-percentile, whose default (10.00) yangson supplies when it is absent.
    config = {"mid-percentile": "5.00"}
    body = {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"current-config": config}]}}
    assert compiled_verdict(body["ietf-dots-telemetry:telemetry-setup"], telemetry=True) == "deferred"
    with pytest.raises(ModelError, match="must-violation"):
        validate_telemetry(body)
    config["mid-percentile"] = "15.00"
    validate_telemetry(body)


# ---------------------------------------------------------------------------- bodies built around must and when

_CAUSES = ["overlapping-targets", "conflict-with-acceptlist", "cuid-collision"]
# Mostly valid values, so that the outcome turns on the must/when conditions; now and then an invalid one.
_SMALL = st.sampled_from([0, 1, 2, 80, 80, 443, 443, 8080, 65535] * 4 + [70000, -1, "80"])
_PERCENTILE = st.sampled_from(
    ["0.00", "5.00", "10.00", "10.00", "49.99", "50.00", "50.00", "90.00", "99.99", "100.00"] * 3 + ["1.555", 7]
)


@st.composite
def _range_entries(draw: st.DrawFn, lower: str, upper: str) -> list[dict[str, Any]]:
    entries = []
    for _ in range(draw(st.integers(1, 3))):
        entry = {lower: draw(_SMALL)} if draw(st.integers(0, 9)) else {}  # lower: the list key
        if draw(st.booleans()):
            entry[upper] = draw(_SMALL)
        entries.append(entry)
    return entries


@st.composite
def _xpath_scope(draw: st.DrawFn) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if draw(st.booleans()):
        scope["target-port-range"] = draw(_range_entries("lower-port", "upper-port"))
    if draw(st.booleans()):
        scope["ietf-dots-call-home:source-port-range"] = draw(_range_entries("lower-port", "upper-port"))
    if draw(st.booleans()):
        scope["ietf-dots-call-home:source-icmp-type-range"] = draw(_range_entries("lower-type", "upper-type"))
    if draw(st.booleans()):
        conflict: dict[str, Any] = {"conflict-cause": draw(st.sampled_from(_CAUSES))}
        members = {
            "target-prefix": ["2001:db8::/32"],
            "alias-name": ["an-alias"],
            "acl-list": [{"acl-name": "a", "acl-type": "ietf-access-control-list:ipv6-acl-type"}],
            "mid": 7,
        }
        conflict["conflict-scope"] = {name: value for name, value in members.items() if draw(st.integers(0, 2)) == 0}
        if draw(st.integers(0, 5)) == 0:
            del conflict["conflict-cause"]
        scope["conflict-information"] = conflict
    return scope


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_xpath_scope(), min_size=1, max_size=3))
def test_must_and_when_get_the_same_verdict_as_yangson(scopes: list[dict[str, Any]]) -> None:
    # Several scopes: the conflict-scope 'when' of RFC 9132 is an absolute path over every scope of the message.
    assert _assert_same_verdict({"scope": scopes}, telemetry=False) != "deferred"


@st.composite
def _percentiles(draw: st.DrawFn) -> dict[str, Any]:
    names = ("low-percentile", "mid-percentile", "high-percentile")
    return {name: draw(_PERCENTILE) for name in names if draw(st.integers(0, 3))}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_percentiles(), _percentiles(), _percentiles(), st.lists(st.sampled_from([1, 5, 5, 3600, 3600, 0]), max_size=2))
def test_telemetry_musts_get_the_same_verdict_as_yangson(
    current: dict[str, Any], maximum: dict[str, Any], minimum: dict[str, Any], intervals: list[int]
) -> None:
    setup: dict[str, Any] = {"telemetry": [{"current-config": current}]}
    if maximum or intervals:
        setup["max-config-values"] = {**maximum, **({"telemetry-notify-interval": intervals[0]} if intervals else {})}
    if minimum or len(intervals) > 1:
        interval = {"telemetry-notify-interval": intervals[1]} if len(intervals) > 1 else {}
        setup["min-config-values"] = {**minimum, **interval}
    _assert_same_verdict(setup, telemetry=True)


def test_a_member_given_bare_and_module_qualified_is_rejected() -> None:
    # yangson merges the two spellings silently (the last one wins); two values for one leaf is an error to us.
    port_range = {"lower-port": 80, "ietf-dots-signal-channel:lower-port": 81}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"target-port-range": [port_range]}]}}
    with pytest.raises(ModelError, match="lower-port: given twice"):
        validate_signal(body)


@pytest.mark.parametrize("annotation", [{"@": {}}, {"@": [0]}, {"@scope": {}}])
def test_metadata_annotations_are_rejected_without_asking_yangson(annotation: dict[str, Any]) -> None:
    # No DOTS module defines an annotation; yangson would take an empty one and crash on some others.
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [], **annotation}}
    with pytest.raises(ModelError, match="metadata annotations are not used in DOTS"):
        validate_signal(body)


def _conflicting_scopes(count: int) -> list[dict[str, Any]]:
    information = {"conflict-cause": "overlapping-targets", "conflict-scope": {"target-prefix": ["2001:db8::/32"]}}
    return [{"mid": mid, "conflict-information": copy.deepcopy(information)} for mid in range(count)]


def test_many_conflict_scopes_are_checked_without_yangson() -> None:
    # Each conflict-scope's 'when' looks at every scope: evaluated once per body, not once per scope.
    contents = {"scope": _conflicting_scopes(1000)}
    assert compiled_verdict(contents) == "valid"
    contents["scope"][999]["conflict-information"]["conflict-cause"] = "cuid-collision"
    assert compiled_verdict(contents) == "valid"  # RFC 9132's path is absolute: some scope has overlapping-targets
    for scope in contents["scope"]:
        scope["conflict-information"]["conflict-cause"] = "cuid-collision"
    assert compiled_verdict(contents) == "invalid"  # no scope has: target-prefix is not allowed in any


def test_a_large_rejected_body_gets_the_compiled_diagnostic() -> None:
    # yangson would take seconds on it; the compiled check's own words name the schema node.
    scopes = _conflicting_scopes(200)
    scopes[150]["conflict-information"]["conflict-scope"]["target-prefix"] = ["2001:db8::/129"]
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": scopes}}
    with pytest.raises(ModelError) as caught:
        validate_signal(body)
    assert caught.value.diagnostic == (
        "/ietf-dots-signal-channel:mitigation-scope/scope/conflict-information/conflict-scope/target-prefix: "
        "invalid value (expected ip-prefix value)"
    )


def test_rejections_keep_yangsons_diagnostics() -> None:
    body = {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"tsid": "seven"}]}}
    assert compiled_verdict(body["ietf-dots-telemetry:telemetry-setup"], telemetry=True) == "invalid"
    with pytest.raises(ModelError) as caught:
        validate_telemetry(body)
    assert (
        caught.value.diagnostic
        == "/ietf-dots-telemetry:telemetry-setup/telemetry/tsid: invalid value (expected uint32 value)"
    )


def test_test_mode_validates_bodies_encoded_without_validation(production_encoding: None) -> None:
    wrong = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"target-port-range": [{"lower-port": 70000}]}]}}
    assert encode_signal(wrong, validate=False)  # production: the server trusts its own bodies
    validate_every_encoding()
    try:
        with pytest.raises(ModelError, match="lower-port"):
            encode_signal(wrong, validate=False)
    finally:
        validate_every_encoding(False)


def _conditions(node: SchemaNode) -> list[tuple[str, SchemaNode, Any, SchemaNode, str]]:
    """Every must/when below ``node``: (kind, node, expression, start node, start) as compiled.py evaluates it."""
    found = []
    for must in node.must:
        start = LEAF if isinstance(node, LeafNode | LeafListNode) else OBJECT
        found.append(("must", node, must.expression, node, start))
    if node.when is not None:
        if isinstance(node, DataNode):
            found.append(("when", node, node.when, node, MEMBER))
            if isinstance(node, InternalNode):
                found.append(("when", node, node.when, node, OBJECT))
        else:
            found.append(("when", node, node.when, node.data_parent(), OBJECT))
    for child in node.children if isinstance(node, InternalNode) else []:
        found.extend(_conditions(child))
    return found


def test_every_must_and_when_of_the_dots_structures_is_compiled() -> None:
    """A new module revision with an XPath shape xpath.py does not know would still be checked (by yangson), but
    slowly: this says so."""
    schema = signal_schema()
    conditions = _conditions(schema.dots_signal) + _conditions(schema.dots_telemetry)
    assert len(conditions) >= 20
    for kind, node, expression, start_node, start in conditions:
        assert compile_condition(expression, start_node, start) is not None, (kind, node.name, str(expression))
