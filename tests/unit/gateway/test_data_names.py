"""A client-domain gateway's data channel, sans-I/O: each client's aliases and ACLs renamed apart upstream, answers
renamed back and filtered (RFC 8783 §3.3, RFC 8811 §2.3, RFC 9132 §4.4.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from opendots.data.core.errors import RestconfError
from opendots.gateway.data_names import (
    ClearOwn,
    Forward,
    Names,
    Register,
    ReplaceOwn,
    Unregister,
    derive_prefix,
    downstream_body,
    downstream_errors,
    own_names,
    plan,
    renamed_inbound,
    signal_down,
    signal_up,
)
from opendots.model import decode_signal, encode_signal

MODULE = "ietf-dots-data-channel"
JSON = "application/yang-data+json"
GW = "gateway-cuid"
ALICE = Names("alice-cuid", derive_prefix("alice-cuid"), GW)
BOB = Names("bob-cuid", derive_prefix("bob-cuid"), GW)
DATA = f"/{MODULE}:dots-data"


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def forward(method: str, path: str, document: object = None, names: Names = ALICE, **query: str) -> Forward:
    raw = body(document) if document is not None else b""
    step = plan(method, path, list(query.items()), raw, JSON if raw else None, names, True)
    assert isinstance(step, Forward)
    return step


def test_prefixes_are_stable_per_cuid_distinct_between_clients_and_leave_room_in_a_64_character_acl_name() -> None:
    assert derive_prefix("alice-cuid") == ALICE.prefix
    assert ALICE.prefix != BOB.prefix
    assert derive_prefix("alice-cuid", 1) != ALICE.prefix  # the store's next choice on a collision
    assert len(ALICE.prefix) == 9 and ALICE.longest_acl_name == 55


def test_two_clients_creating_the_same_alias_name_create_two_names_upstream_under_the_gateways_cuid() -> None:
    created = {f"{MODULE}:aliases": {"alias": [{"name": "web", "target-prefix": ["203.0.113.0/28"]}]}}
    steps = [forward("POST", f"{DATA}/dots-client={names.cuid}", created, names) for names in (ALICE, BOB)]
    assert [step.path for step in steps] == [f"{DATA}/dots-client={GW}"] * 2
    upstream = [json.loads(step.body or b"")[f"{MODULE}:aliases"]["alias"][0]["name"] for step in steps]
    assert upstream == [ALICE.prefix + "web", BOB.prefix + "web"]


def test_an_entry_path_and_its_body_are_renamed_and_percent_encoded() -> None:
    step = forward("PUT", f"{DATA}/dots-client=alice-cuid/acls/acl=a%2Fb", {f"{MODULE}:acl": [{"name": "a/b"}]})
    assert step.path == f"{DATA}/dots-client={GW}/acls/acl={ALICE.prefix}a%2Fb"
    assert json.loads(step.body or b"") == {f"{MODULE}:acl": [{"name": ALICE.prefix + "a/b"}]}
    inner = forward("GET", f"{DATA}/dots-client=alice-cuid/acls/acl=x/aces/ace=r1")
    assert inner.path == f"{DATA}/dots-client={GW}/acls/acl={ALICE.prefix}x/aces/ace=r1"  # ACE names are per ACL


def test_an_acl_name_that_would_exceed_64_characters_upstream_is_refused_400_as_the_server_would() -> None:
    forward("POST", f"{DATA}/dots-client=alice-cuid", {f"{MODULE}:acls": {"acl": [{"name": "a" * 55}]}})
    with pytest.raises(RestconfError) as refused:
        forward("POST", f"{DATA}/dots-client=alice-cuid", {f"{MODULE}:acls": {"acl": [{"name": "a" * 56}]}})
    assert (refused.value.status, refused.value.error_tag) == (400, "invalid-value")


def test_the_point_of_an_ordered_insert_names_the_renamed_acl_rfc8040_s4_8_6() -> None:
    step = forward("POST", f"{DATA}/dots-client=alice-cuid", {f"{MODULE}:acls": {"acl": [{"name": "b"}]}},
                   insert="before", point="acl=a")  # fmt: skip
    assert step.query == [("insert", "before"), ("point", f"acl={ALICE.prefix}a")]


def test_another_clients_data_does_not_exist_for_a_client_404_as_directly() -> None:
    with pytest.raises(RestconfError) as refused:
        forward("GET", f"{DATA}/dots-client=bob-cuid/aliases")
    assert refused.value.status == 404
    with pytest.raises(RestconfError) as unregistered:
        plan("GET", f"{DATA}/dots-client=alice-cuid", [], b"", None, ALICE, False)
    assert unregistered.value.status == 404


def test_registration_is_the_gateways_and_a_second_one_is_409_rfc8783_s5_1() -> None:
    registration = body({f"{MODULE}:dots-client": [{"cuid": "alice-cuid"}]})
    assert plan("POST", DATA, [], registration, JSON, ALICE, False) == Register(created=True)
    with pytest.raises(RestconfError) as again:
        plan("POST", DATA, [], registration, JSON, ALICE, True)
    assert (again.value.status, again.value.error_tag) == (409, "data-exists")
    put = f"{DATA}/dots-client=alice-cuid"
    # RFC 8040 §4.5: a PUT of the registration replaces it, i.e. leaves the client no alias and no ACL.
    assert plan("PUT", put, [], registration, JSON, ALICE, True) == ReplaceOwn(
        {"aliases": [], "acls": []}, register=True, created=False
    )
    with pytest.raises(RestconfError) as other:
        plan("POST", DATA, [], body({f"{MODULE}:dots-client": [{"cuid": "bob-cuid"}]}), JSON, ALICE, False)
    assert other.value.status == 403
    with pytest.raises(RestconfError) as not_json:
        plan("POST", DATA, [], b"{", JSON, ALICE, False)
    assert (not_json.value.status, not_json.value.error_tag) == (400, "malformed-message")


def test_deletes_of_a_whole_list_or_registration_touch_the_clients_own_entries() -> None:
    client = f"{DATA}/dots-client=alice-cuid"
    assert plan("DELETE", client, [], b"", None, ALICE, True) == Unregister()
    assert plan("DELETE", f"{client}/acls", [], b"", None, ALICE, True) == ClearOwn("acls")
    with pytest.raises(RestconfError) as mapping:
        plan("GET", f"{client}/ietf-dots-mapping:vendor-mapping", [], b"", None, ALICE, True)
    assert mapping.value.status == 405


def test_a_put_of_a_whole_registration_or_list_replaces_the_clients_own_entries_renamed_rfc8040_s4_5() -> None:
    """Upstream the lists hold every client's entries: the PUT becomes the client's entries one by one."""
    client = f"{DATA}/dots-client=alice-cuid"
    web = {"name": "web", "target-prefix": ["203.0.113.0/28"]}
    acl = {"name": "a1", "aces": {"ace": []}}
    registration = {f"{MODULE}:dots-client": [{"cuid": "alice-cuid", "aliases": {"alias": [web]}}]}
    step = plan("PUT", client, [], body(registration), JSON, ALICE, False)
    renamed_web = {**web, "name": ALICE.prefix + "web"}
    assert step == ReplaceOwn({"aliases": [renamed_web], "acls": []}, register=True, created=True)
    step = plan("PUT", f"{client}/acls", [], body({f"{MODULE}:acls": {"acl": [acl]}}), JSON, ALICE, True)
    assert step == ReplaceOwn({"acls": [{**acl, "name": ALICE.prefix + "a1"}]}, register=False, created=False)
    emptied = plan("PUT", f"{client}/aliases", [], body({f"{MODULE}:aliases": {}}), JSON, ALICE, True)
    assert emptied == ReplaceOwn({"aliases": []}, register=False, created=False)
    refusals = [
        (client, {f"{MODULE}:dots-client": [{"cuid": "alice-cuid", "cdid": "x"}]}, 405),
        (f"{client}/aliases", {f"{MODULE}:aliases": {"alias": [web, web]}}, 400),
        (f"{client}/aliases", {f"{MODULE}:acls": {"acl": []}}, 400),
        (f"{client}/acls", {f"{MODULE}:acls": {"acl": [{**acl, "name": "x" * 60}]}}, 400),
    ]
    for path, document, status in refusals:
        with pytest.raises(RestconfError) as refused:
            plan("PUT", path, [], body(document), JSON, ALICE, True)
        assert refused.value.status == status, (path, refused.value)
    with pytest.raises(RestconfError) as unregistered:
        plan("PUT", f"{client}/aliases", [], body({f"{MODULE}:aliases": {}}), JSON, ALICE, False)
    assert unregistered.value.status == 404


def test_answers_show_a_client_only_its_own_entries_with_its_own_names_and_cuid() -> None:
    upstream = {
        f"{MODULE}:dots-data": {
            "dots-client": [
                {
                    "cuid": GW,
                    "aliases": {"alias": [{"name": ALICE.prefix + "web"}, {"name": BOB.prefix + "web"}]},
                    "acls": {"acl": [{"name": BOB.prefix + "x"}, {"name": ALICE.prefix + "y"}, {"name": "own"}]},
                },
                {"cuid": "someone-else"},
            ]
        }
    }
    shown = downstream_body(upstream, ALICE)
    alice = {"cuid": "alice-cuid", "aliases": {"alias": [{"name": "web"}]}, "acls": {"acl": [{"name": "y"}]}}
    assert shown == {f"{MODULE}:dots-data": {"dots-client": [alice]}}
    aliases = {f"{MODULE}:aliases": {"alias": [{"name": ALICE.prefix + "web"}, {"name": BOB.prefix + "web"}]}}
    # Nothing of Carol's: rendered as the server renders a client without any (no empty list, no container).
    carol = Names("carol-cuid", derive_prefix("carol-cuid"), GW)
    assert downstream_body(aliases, carol) == {f"{MODULE}:aliases": {}}
    assert downstream_body(upstream, carol) == {f"{MODULE}:dots-data": {"dots-client": [{"cuid": "carol-cuid"}]}}
    assert own_names(aliases, "aliases", BOB) == [BOB.prefix + "web"]
    error = {"ietf-restconf:errors": {"error": [{"error-path": f"/dots-client={GW}/aliases/alias={ALICE.prefix}w"}]}}
    assert downstream_errors(error, ALICE)["ietf-restconf:errors"]["error"][0]["error-path"] == (
        "/dots-client=alice-cuid/aliases/alias=w"
    )


@dataclass(frozen=True)
class Request:
    payload: bytes | None
    query: tuple[str, ...] = ()


def test_a_mitigation_names_the_clients_aliases_and_acls_as_upstream_and_its_answer_names_them_back_rfc9133() -> None:
    scope = "ietf-dots-signal-channel:mitigation-scope"
    request = {scope: {"scope": [{"alias-name": ["web"], "lifetime": 60,
                                  "ietf-dots-signal-control:acl-list": [{"acl-name": "y"}]}]}}  # fmt: skip
    relayed = renamed_inbound(Request(encode_signal(request), ("alias-name=web,db", "c=a")), ALICE.prefix)
    entry = decode_signal(relayed.payload or b"")[scope]["scope"][0]
    assert entry["alias-name"] == [ALICE.prefix + "web"]
    assert entry["ietf-dots-signal-control:acl-list"] == [{"acl-name": ALICE.prefix + "y"}]
    assert relayed.query == (f"alias-name={ALICE.prefix}web,{ALICE.prefix}db", "c=a")
    answer = {scope: {"scope": [{**entry, "alias-name": [ALICE.prefix + "web", BOB.prefix + "db"]}]}}
    back = signal_down(answer, ALICE.prefix)[scope]["scope"][0]
    assert back["alias-name"] == ["web"]
    assert back["ietf-dots-signal-control:acl-list"] == [{"acl-name": "y"}]
    assert signal_up({scope: {"scope": []}}, ALICE.prefix) == {scope: {"scope": []}}


def test_a_body_nested_too_deeply_to_rename_is_refused_400_not_a_crash() -> None:
    deep = b'{"ietf-dots-data-channel:aliases":' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    with pytest.raises(RestconfError) as refused:
        plan("POST", f"{DATA}/dots-client=alice-cuid", [], deep, JSON, ALICE, True)
    assert (refused.value.status, refused.value.error_tag) == (400, "malformed-message")
