"""RFC 8040 resources and encodings of the data channel that RFC 8783 relies on."""

from __future__ import annotations

from tests.helpers import data_harness as support
from tests.helpers.data_harness import ROOT, register

harness = support.harness

ALIASES = {"ietf-dots-data-channel:aliases": {"alias": [{"name": "web", "target-prefix": ["192.0.2.0/28"]}]}}
ACL = {
    "name": "a",
    "aces": {
        "ace": [
            {
                "name": "r1",
                "matches": {"ipv4": {"destination-ipv4-network": "192.0.2.0/28"}},
                "actions": {"forwarding": "drop"},
            }
        ]
    },
}


async def test_yang_library_version_is_a_resource_of_the_api_root_rfc8040_3_3_3(harness):
    reply = await harness.client.request("GET", "/restconf/yang-library-version")
    assert reply.status == 200
    assert reply.body == {"ietf-restconf:yang-library-version": "2016-06-21"}


async def test_get_of_the_datastore_is_the_ietf_restconf_data_node_with_an_etag_rfc8040_3_3_1_and_3_4_1_2(harness):
    await register(harness.client)
    first = await harness.client.request("GET", "/restconf/data")
    assert first.status == 200
    assert list(first.body) == ["ietf-restconf:data"]
    assert "ietf-dots-data-channel:dots-data" in first.body["ietf-restconf:data"]
    etag = first.headers["Etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert (await harness.client.request("GET", "/restconf/data")).headers["Etag"] == etag
    await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", ALIASES)
    assert (await harness.client.request("GET", "/restconf/data")).headers["Etag"] != etag
    assert "Etag" in (await harness.client.request("GET", ROOT)).headers


async def test_a_list_cut_short_by_depth_is_still_an_array_rfc7951_5_4(harness):
    await register(harness.client)
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    await harness.client.request("PUT", client + "/acls/acl=a", {"ietf-dots-data-channel:acl": [ACL]})
    reply = await harness.client.request("GET", client + "?depth=1")
    assert reply.body == {"ietf-dots-data-channel:dots-client": []}
    reply = await harness.client.request("GET", client + "/acls?depth=2")
    assert reply.body == {"ietf-dots-data-channel:acls": {"acl": []}}


async def test_a_post_holding_both_aliases_and_acls_is_refused_and_creates_nothing_rfc8040_4_4_1(harness):
    await register(harness.client)
    before = harness.store.dump()
    body = {**ALIASES, "ietf-dots-data-channel:acls": {"acl": [ACL]}}
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", body)
    assert reply.status == 400
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "invalid-value"
    assert harness.store.dump() == before
