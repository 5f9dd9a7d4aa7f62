"""The data channel YANG model: the errata view is needed, minimal, and validation is yangson's."""

from __future__ import annotations

import json

import pytest
from yangson import DataModel
from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import YangsonException

from opendots.model.data_channel import (
    MODULE,
    ROOT,
    YANG_DIR,
    ModelError,
    errata_view_text,
    validate_client,
    yang_library,
)
from tests.helpers.data_figures import load_figure


def figure_acl(number: int) -> dict:
    return load_figure(number).body[f"{MODULE}:acls"]["acl"][0]


def prefixed(value):
    """RFC 7951 identityrefs, so the published module is judged on its own statements only."""
    if isinstance(value, dict):
        return {key: prefixed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [prefixed(item) for item in value]
    if value in ("drop", "accept", "ipv4-acl-type", "ipv6-acl-type"):
        return f"ietf-access-control-list:{value}"
    return value


@pytest.mark.parametrize("number", [24, 25, 37])
def test_published_module_rejects_the_rfc_examples_and_the_view_accepts_them(number):
    published = DataModel(json.dumps(yang_library()), [str(YANG_DIR)])
    instance = published.from_raw(
        {ROOT: {"dots-client": [{"cuid": "c", "acls": {"acl": [prefixed(figure_acl(number))]}}]}}
    )
    with pytest.raises(YangsonException):
        instance.validate(ValidationScope.all, ContentType.config)
    canonical = validate_client({"cuid": "c", "acls": {"acl": [figure_acl(number)]}})
    assert canonical["acls"]["acl"][0]["name"] == figure_acl(number)["name"]


def test_view_changes_only_the_three_statements():
    published = (YANG_DIR / f"{MODULE}@2020-05-28.yang").read_text().splitlines()
    view = errata_view_text().splitlines()
    changed = [line for line in view if line not in published]
    assert len(changed) == 6  # 2 L3 when, 2+1 presence, 1 rate-limit when
    assert all("derived-from-or-self" in line or "presence" in line for line in changed)


def test_identityrefs_are_qualified_and_errors_carry_a_tag():
    canonical = validate_client({"cuid": "c", "acls": {"acl": [figure_acl(24)]}})
    acl = canonical["acls"]["acl"][0]
    assert acl["type"] == "ietf-access-control-list:ipv4-acl-type"
    assert acl["aces"]["ace"][0]["actions"]["forwarding"] == "ietf-access-control-list:drop"
    with pytest.raises(ModelError) as error:
        validate_client({"cuid": "c", "aliases": {"alias": [{"name": "x", "target-prefix": ["300.0.0.0/8"]}]}})
    assert error.value.error_tag == "invalid-value" and "target-prefix" in error.value.path


def test_yang_library_lists_interfaces_and_no_mixed_eth_feature():
    modules = {m["name"]: m for m in yang_library()["ietf-yang-library:modules-state"]["module"]}
    assert modules["ietf-interfaces"]["conformance-type"] == "implement"
    assert not any(feature.startswith("mixed-eth") for feature in modules["ietf-access-control-list"]["feature"])
