"""A client never reads or changes another client's registration, aliases or ACLs, nor learns they exist."""

from __future__ import annotations

import pytest

from tests.helpers import data_harness as support
from tests.helpers.data_harness import ROOT, register

harness = support.harness

ALIAS = {"ietf-dots-data-channel:aliases": {"alias": [{"name": "web", "target-prefix": ["192.0.2.0/28"]}]}}
ACE = {
    "name": "r1",
    "matches": {"ipv4": {"destination-ipv4-network": "198.51.100.0/24"}},
    "actions": {"forwarding": "drop"},
}
ACL = {"ietf-dots-data-channel:acls": {"acl": [{"name": "base", "aces": {"ace": [ACE]}}]}}

# (method, path below dots-client=<cuid>, body)
REQUESTS = [
    ("GET", "", None),
    ("GET", "/aliases", None),
    ("GET", "/aliases/alias=web", None),
    ("GET", "/acls", None),
    ("GET", "/acls/acl=base", None),
    ("GET", "/acls/acl=base/aces/ace=r1", None),
    ("GET", "/cuid", None),
    ("POST", "", {"ietf-dots-data-channel:aliases": {"alias": [{"name": "new", "target-prefix": ["192.0.2.9/32"]}]}}),
    ("POST", "/acls", {"ietf-dots-data-channel:acl": [{"name": "new", "aces": {"ace": [ACE]}}]}),
    (
        "PUT",
        "/aliases/alias=web",
        {"ietf-dots-data-channel:alias": [{"name": "web", "target-prefix": ["192.0.2.1/32"]}]},
    ),
    ("PUT", "/acls/acl=base", {"ietf-dots-data-channel:acl": [{"name": "base", "aces": {"ace": [ACE]}}]}),
    ("PATCH", "/acls/acl=base", {"ietf-dots-data-channel:acl": [{"name": "base", "activation-type": "immediate"}]}),
    ("PATCH", "", {"ietf-dots-data-channel:dots-client": [{"cuid": "CUID"}]}),
    ("PUT", "", {"ietf-dots-data-channel:dots-client": [{"cuid": "CUID"}]}),
    ("DELETE", "/aliases/alias=web", None),
    ("DELETE", "/acls/acl=base", None),
    ("DELETE", "/acls/acl=base/aces/ace=r1", None),
    ("DELETE", "/acls", None),
    ("DELETE", "", None),
]


def _body(body, cuid):
    if body is None:
        return None
    return {
        key: ([{**value[0], "cuid": cuid}] if key.endswith("dots-client") else value) for key, value in body.items()
    }


@pytest.mark.parametrize("request_", REQUESTS, ids=[f"{m} {p or '/'}" for m, p, _ in REQUESTS])
async def test_foreign_resources_look_exactly_like_missing_ones(harness, request_):
    method, suffix, body = request_
    await register(harness.other)
    other_path = f"{ROOT}/dots-client={harness.other.cuid}"
    assert (await harness.other.request("POST", other_path, ALIAS)).status == 201
    assert (await harness.other.request("POST", other_path, ACL)).status == 201
    await register(harness.client)
    before = harness.store.dump()

    foreign = await harness.client.request(method, other_path + suffix, _body(body, harness.other.cuid))
    missing_cuid = "A" * 22
    missing = await harness.client.request(
        method, f"{ROOT}/dots-client={missing_cuid}{suffix}", _body(body, missing_cuid)
    )
    assert foreign.status == missing.status == 404, (foreign.text, missing.text)
    assert foreign.text.replace(harness.other.cuid, missing_cuid) == missing.text
    assert harness.store.dump() == before


async def test_datastore_view_holds_only_the_callers_client(harness):
    await register(harness.other)
    await harness.other.request("POST", f"{ROOT}/dots-client={harness.other.cuid}", ALIAS)
    await register(harness.client)
    reply = await harness.client.request("GET", ROOT)
    clients = reply.body["ietf-dots-data-channel:dots-data"]["dots-client"]
    assert [client["cuid"] for client in clients] == [harness.client.cuid]
    assert harness.other.cuid not in reply.text
    whole = await harness.client.request("GET", "/restconf/data")
    assert harness.other.cuid not in whole.text


async def test_same_alias_name_in_two_clients_is_independent(harness):
    await register(harness.client)
    await register(harness.other)
    for peer in (harness.client, harness.other):
        assert (await peer.request("POST", f"{ROOT}/dots-client={peer.cuid}", ALIAS)).status == 201
    assert (
        await harness.client.request("DELETE", f"{ROOT}/dots-client={harness.client.cuid}/aliases/alias=web")
    ).status == 204
    still = await harness.other.request("GET", f"{ROOT}/dots-client={harness.other.cuid}/aliases/alias=web")
    assert still.status == 200


async def test_a_gateway_cannot_touch_a_directly_registered_client(pki_dir, server_config, tmp_path):
    from opendots.data.core import DataChannelSettings
    from tests.helpers.data_harness import cuid_of, make_harness

    settings = DataChannelSettings(gateways=frozenset({cuid_of(pki_dir, "other")}))
    harness, close = await make_harness(pki_dir, server_config, tmp_path, settings)
    try:
        await register(harness.client)
        await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", ALIAS)
        before = harness.store.dump()
        path = f"{ROOT}/dots-client={harness.client.cuid}"
        replace = {"ietf-dots-data-channel:dots-client": [{"cuid": harness.client.cuid, "cdid": "evil"}]}
        for method, suffix, body in (
            ("GET", "", None),
            ("DELETE", "", None),
            ("PUT", "", replace),
            ("GET", "/aliases", None),
            ("DELETE", "/aliases/alias=web", None),
        ):
            reply = await harness.other.request(method, path + suffix, body)
            assert reply.status == 403, (method, suffix, reply.text)
        assert harness.store.dump() == before
    finally:
        await close()
