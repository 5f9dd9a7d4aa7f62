"""The compiled validator (opendots/model/compiled.py) against yangson, the reference: on every RFC example body and
on mutated versions of them, the compiled check must never call "valid" what yangson rejects nor "invalid" what
yangson accepts. It may defer (XPath, metadata), in which case yangson alone decides."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opendots.model import ModelError, key_table, validate_signal, validate_telemetry
from opendots.model.validate import compiled_verdict, yangson_verdict

DATA = Path(__file__).parent / "data"
EXAMPLES = sorted(DATA.glob("rfc*/*.json"))
# Bodies whose members carry 'must' or 'when' (percentile order, baseline id, conflict-scope members, port ranges
# with an upper bound): the compiled check leaves them to yangson.
XPATH_EXAMPLES = {
    "fig06-mitigation-request-schema-filled",
    "fig04-telemetry-configuration",
    "fig05-disable-low-mid-percentiles",
    "fig19-baseline",
    "fig20-baseline",
}


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
    expected = "deferred" if path.stem in XPATH_EXAMPLES else "valid"
    if "verbatim-invalid" in path.stem:
        expected = "invalid"
    assert _assert_same_verdict(contents, telemetry) == expected


# ------------------------------------------------------------------------------------------------ mutated bodies

_NAMES = [
    *sorted({entry.name for entry in key_table().entries}),
    "ietf-dots-signal-channel:scope",
    "ietf-dots-signal-channel:lower-port",
    "ietf-dots-telemetry:unit",
    "no-such-member",
    "bogus:lower-port",
    "@",
    "@lower-port",
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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_examples_get_the_same_verdict_as_yangson(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(EXAMPLES))
    contents, telemetry = _contents(path)
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(data, contents)
    _assert_same_verdict(contents, telemetry)


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


def test_xpath_constraints_are_still_enforced_through_yangson() -> None:
    ports = {"lower-port": 443, "upper-port": 80}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"target-port-range": [ports]}]}}
    assert compiled_verdict(body["ietf-dots-signal-channel:mitigation-scope"]) == "deferred"
    with pytest.raises(ModelError, match="must-violation"):
        validate_signal(body)
    ports["upper-port"] = 8080
    validate_signal(body)


def test_a_member_given_bare_and_module_qualified_is_rejected() -> None:
    # yangson merges the two spellings silently (the last one wins); two values for one leaf is an error to us.
    port_range = {"lower-port": 80, "ietf-dots-signal-channel:lower-port": 81}
    body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"target-port-range": [port_range]}]}}
    with pytest.raises(ModelError, match="lower-port: given twice"):
        validate_signal(body)


def test_rejections_keep_yangsons_diagnostics() -> None:
    body = {"ietf-dots-telemetry:telemetry-setup": {"telemetry": [{"tsid": "seven"}]}}
    assert compiled_verdict(body["ietf-dots-telemetry:telemetry-setup"], telemetry=True) == "invalid"
    with pytest.raises(ModelError) as caught:
        validate_telemetry(body)
    assert (
        caught.value.diagnostic
        == "/ietf-dots-telemetry:telemetry-setup/telemetry/tsid: invalid value (expected uint32 value)"
    )
