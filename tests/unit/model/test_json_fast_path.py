"""JSON → CBOR: the path-free conversion (convert._plain_json_map, the encoding of every answer the server builds)
gives what the full converter (convert._json_map) gives, the same CBOR or the same refusal with the same diagnostic,
on the RFC examples and mutations of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opendots.model import ModelError, json_to_cbor
from opendots.model.convert import _json_map
from tests.helpers import FIXTURES
from tests.helpers.body_mutations import mutate

EXAMPLES = sorted(path for path in FIXTURES.glob("rfc*/*.json") if "verbatim-invalid" not in path.stem)
SCOPE = "ietf-dots-signal-channel:mitigation-scope"


def _full(obj: Any) -> tuple[str, Any]:
    try:
        return "ok", _json_map(None, obj, "", top_level=True)
    except ModelError as error:
        return "error", (error.code, error.diagnostic)


def _converted(obj: Any) -> tuple[str, Any]:
    try:
        return "ok", json_to_cbor(obj)
    except ModelError as error:
        return "error", (error.code, error.diagnostic)


_NAMES = ["mid", "lifetime", "status", "target-prefix", "target-protocol", "bytes-dropped", "no-such-member", "cuid"]
_SCALARS = st.sampled_from(
    [0, 1, -1, 3600, 2**64, True, None, "x", "80", "2001:db8::/32", "attack-mitigation-in-progress", 1.5]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_NAMES), inner, max_size=3),
    max_leaves=5,
)


def _example(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_path_free_encoding_agrees_with_the_full_converter(data: st.DataObject) -> None:
    obj = _example(data.draw(st.sampled_from(EXAMPLES)))
    mutate(data, obj, st.sampled_from(_NAMES), _VALUES)
    expected = _full(copy.deepcopy(obj))
    assert _converted(obj) == expected
    assert _converted(obj) == expected  # again, now that every member it has met has a plan


def test_a_value_refused_after_good_ones_gets_the_full_diagnostic() -> None:
    good = {SCOPE: {"scope": [{"mid": 1, "lifetime": 3600}]}}
    assert json_to_cbor(good) == json_to_cbor(copy.deepcopy(good))  # every member now has a plan
    outcome = _converted({SCOPE: {"scope": [{"mid": 1, "lifetime": "soon"}]}})
    assert outcome == ("error", ("4.00", outcome[1][1]))
    assert "/ietf-dots-signal-channel:mitigation-scope/scope[0]/lifetime" in outcome[1][1]
