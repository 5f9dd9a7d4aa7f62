"""Pure parsing of RESTCONF paths and query parameters (no sockets)."""

from __future__ import annotations

import pytest

from opendots.data.core.errors import RestconfError
from opendots.data.core.paths import Step, parse_data_path
from opendots.data.core.query import parse_fields, parse_query, prune_depth, select_fields


def test_fields_grammar():
    assert parse_fields("name;aces/ace(name;actions/forwarding)") == {
        "name": None,
        "aces": {"ace": {"name": None, "actions": {"forwarding": None}}},
    }
    assert parse_fields("ietf-dots-data-channel:acl(name)") == {"acl": {"name": None}}
    for bad in ("", "a(b", "a;;b", "a)"):
        with pytest.raises(RestconfError):
            parse_fields(bad)


def test_depth_matches_rfc8040_appendix_b_3_2():
    jukebox = {
        "library": {"artist": [{"name": "Foo"}]},
        "playlist": [{"name": "One", "song": [{"index": 1}]}],
        "player": {"gap": 0.5},
    }
    assert prune_depth(jukebox, 1) == {}
    # Appendix B.3.2 prints the cut lists as {}; RFC 7951 §5.4 (normative) encodes a list as an array.
    assert prune_depth(jukebox, 3) == {
        "library": {"artist": []},
        "playlist": [{"name": "One", "song": []}],
        "player": {"gap": 0.5},
    }


def test_select_fields_on_list_entries():
    acls = {"acl": [{"name": "a", "type": "t", "aces": {"ace": [{"name": "r", "matches": {}}]}}]}
    assert select_fields(acls, parse_fields("acl(name;aces/ace(name))"), None) == {
        "acl": [{"name": "a", "aces": {"ace": [{"name": "r"}]}}]
    }


def test_query_rules():
    assert parse_query("GET", [("depth", "unbounded")]).depth is None
    assert parse_query("POST", [("insert", "before"), ("point", "acl=x")]).point == "acl=x"
    for method, pairs in (
        ("GET", [("depth", "65536")]),
        ("GET", [("content", "everything")]),
        ("GET", [("insert", "first")]),
        ("PUT", [("insert", "after")]),
        ("DELETE", [("depth", "1")]),
    ):
        with pytest.raises(RestconfError) as error:
            parse_query(method, pairs)
        assert error.value.status == 400


def test_data_paths():
    path = parse_data_path("/ietf-dots-data-channel:dots-data/dots-client=a%2Cb/acls/acl=x%2Fy/aces/ace=r1")
    assert (path.kind, path.cuid, path.name, path.inner) == ("acl", "a,b", "x/y", (Step("aces"), Step("ace", ("r1",))))
    assert parse_data_path("").kind == "datastore"
    assert parse_data_path("/ietf-dots-data-channel:dots-data/capabilities").kind == "capabilities"
    for bad in (
        "/dots-data",
        "/other-module:x",
        "/ietf-dots-data-channel:dots-data/dots-client",
        "/ietf-dots-data-channel:dots-data/dots-client=a/acls/alias=x",
    ):
        with pytest.raises(RestconfError):
            parse_data_path(bad)
