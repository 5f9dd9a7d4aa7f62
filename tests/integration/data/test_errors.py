"""Bad input gets the RFC 8040 error (status, error-tag, `ietf-restconf:errors` body) and changes nothing stored."""

from __future__ import annotations

import pytest

from opendots.pki.certs import TestPki
from tests.helpers import data_harness as support
from tests.helpers.data_harness import ROOT, client_ssl, cuid_of, register

harness = support.harness

ALIAS = {"ietf-dots-data-channel:aliases": {"alias": [{"name": "web", "target-prefix": ["192.0.2.0/28"]}]}}


def acl(name: str, ace: dict) -> dict:
    return {"ietf-dots-data-channel:acls": {"acl": [{"name": name, "aces": {"ace": [ace]}}]}}


DROP = {"forwarding": "drop"}
GOOD_ACE = {"name": "r1", "matches": {"ipv4": {"destination-ipv4-network": "198.51.100.0/24"}}, "actions": DROP}


def ace(matches: dict, actions: dict | None = None) -> dict:
    return {"name": "r1", "matches": matches, "actions": actions or DROP}


def client_path(harness) -> str:
    return f"{ROOT}/dots-client={harness.client.cuid}"


# (case id, method, path suffix below the client, body or raw bytes, headers, expected status, expected error-tag)
CASES = [
    ("malformed-json", "POST", "", b'{"ietf-dots-data-channel:aliases": {', {}, 400, "malformed-message"),
    ("json-not-object", "POST", "", b"[1, 2]", {}, 400, "malformed-message"),
    (
        "duplicate-member",
        "POST",
        "",
        b'{"ietf-dots-data-channel:aliases": {}, "ietf-dots-data-channel:aliases": {}}',
        {},
        400,
        "malformed-message",
    ),
    ("nan", "POST", "", b'{"ietf-dots-data-channel:acls": {"acl": [{"name": NaN}]}}', {}, 400, "malformed-message"),
    ("deep-nesting", "POST", "", b"[" * 100000 + b"]" * 100000, {}, 400, "malformed-message"),
    ("text-plain", "POST", "", ALIAS, {"Content-Type": "text/plain"}, 415, "invalid-value"),
    ("plain-json-media-type", "POST", "", ALIAS, {"Content-Type": "application/json"}, 415, "invalid-value"),
    ("xml-only-accept", "GET", "", None, {"Accept": "application/yang-data+xml"}, 406, "invalid-value"),
    (
        "yang-patch-media",
        "PATCH",
        "/aliases/alias=web",
        ALIAS,
        {"Content-Type": "application/yang-patch+json"},
        415,
        "invalid-value",
    ),
    ("empty-body", "POST", "", b"", {"Content-Type": "application/yang-data+json"}, 400, "invalid-value"),
    (
        "port-70000",
        "POST",
        "",
        acl("a", ace({"tcp": {"destination-port-range-or-operator": {"port": 70000}}})),
        {},
        400,
        "invalid-value",
    ),
    (
        "lower-above-upper",
        "POST",
        "",
        acl("a", ace({"udp": {"source-port-range-or-operator": {"lower-port": 90, "upper-port": 80}}})),
        {},
        400,
        "invalid-value",
    ),
    ("unknown-acl-field", "POST", "", acl("a", ace({"tcp": {"colour": "red"}})), {}, 400, "unknown-element"),
    ("unknown-top-member", "POST", "", {"ietf-dots-data-channel:nonsense": {}}, {}, 400, "unknown-element"),
    ("unqualified-top-member", "POST", "", {"aliases": {"alias": []}}, {}, 400, "unknown-element"),
    ("missing-forwarding", "POST", "", acl("a", {"name": "r1", "actions": {}}), {}, 400, "missing-attribute"),
    (
        "rate-limit-with-drop",
        "POST",
        "",
        acl("a", ace({}, {"forwarding": "drop", "rate-limit": "10.00"})),
        {},
        400,
        "unknown-element",
    ),
    (
        "bad-prefix",
        "POST",
        "",
        acl("a", ace({"ipv4": {"destination-ipv4-network": "198.51.100.0/33"}})),
        {},
        400,
        "invalid-value",
    ),
    (
        "ipv4-match-in-ipv6-acl",
        "POST",
        "",
        {"ietf-dots-data-channel:acls": {"acl": [{"name": "a", "type": "ipv6-acl-type", "aces": {"ace": [GOOD_ACE]}}]}},
        {},
        400,
        "unknown-element",
    ),
    ("reject-action", "POST", "", acl("a", ace({}, {"forwarding": "reject"})), {}, 400, "unknown-element"),
    ("unsupported-ttl", "POST", "", acl("a", ace({"ipv4": {"ttl": 3}})), {}, 400, "unknown-element"),
    (
        "fragment-and-flags",
        "POST",
        "",
        acl("a", ace({"ipv4": {"flags": "more", "fragment": {"type": "isf"}}})),
        {},
        400,
        "unknown-element",
    ),
    (
        "acl-out-of-scope",
        "POST",
        "",
        acl("a", ace({"ipv4": {"destination-ipv4-network": "10.1.0.0/16"}})),
        {},
        403,
        "access-denied",
    ),
    (
        "alias-out-of-scope",
        "POST",
        "",
        {"ietf-dots-data-channel:aliases": {"alias": [{"name": "x", "target-prefix": ["10.0.0.0/8"]}]}},
        {},
        403,
        "access-denied",
    ),
    (
        "alias-fqdn-out-of-scope",
        "POST",
        "",
        {"ietf-dots-data-channel:aliases": {"alias": [{"name": "x", "target-fqdn": ["www.example.net"]}]}},
        {},
        403,
        "access-denied",
    ),
    (
        "alias-loopback",
        "POST",
        "",
        {"ietf-dots-data-channel:aliases": {"alias": [{"name": "x", "target-prefix": ["127.0.0.1/32"]}]}},
        {},
        400,
        "invalid-value",
    ),
    (
        "alias-multicast",
        "POST",
        "",
        {"ietf-dots-data-channel:aliases": {"alias": [{"name": "x", "target-prefix": ["ff02::1/128"]}]}},
        {},
        400,
        "invalid-value",
    ),
    (
        "alias-without-target",
        "POST",
        "",
        {"ietf-dots-data-channel:aliases": {"alias": [{"name": "x", "target-protocol": [6]}]}},
        {},
        400,
        "missing-attribute",
    ),
    ("alias-name-conflict", "POST", "", ALIAS, {}, 409, "resource-denied"),
    ("acl-name-conflict", "POST", "", acl("base", GOOD_ACE), {}, 409, "resource-denied"),
    (
        "same-name-twice",
        "POST",
        "",
        {"ietf-dots-data-channel:acls": {"acl": [{"name": "n", "aces": {"ace": [GOOD_ACE]}}] * 2}},
        {},
        400,
        "invalid-value",
    ),
    (
        "second-acl-invalid",
        "POST",
        "",
        {
            "ietf-dots-data-channel:acls": {
                "acl": [
                    {"name": "ok", "aces": {"ace": [GOOD_ACE]}},
                    {"name": "bad", "aces": {"ace": [ace({"tcp": {"colour": 1}})]}},
                ]
            }
        },
        {},
        400,
        "unknown-element",
    ),
    ("put-key-mismatch", "PUT", "/acls/acl=base", acl("other-name", GOOD_ACE), {}, 400, "invalid-value"),
    (
        "put-without-body",
        "PUT",
        "/acls/acl=base",
        b"",
        {"Content-Type": "application/yang-data+json"},
        400,
        "invalid-value",
    ),
    (
        "patch-missing-alias",
        "PATCH",
        "/aliases/alias=nope",
        {"ietf-dots-data-channel:alias": [{"name": "nope", "target-prefix": ["192.0.2.1/32"]}]},
        {},
        404,
        "invalid-value",
    ),
    ("delete-missing-acl", "DELETE", "/acls/acl=nope", None, {}, 404, "invalid-value"),
    (
        "delete-with-body",
        "DELETE",
        "/acls/acl=base",
        b"{}",
        {"Content-Type": "application/yang-data+json"},
        400,
        "invalid-value",
    ),
    ("duplicate-query", "GET", "?depth=1&depth=2", None, {}, 400, "invalid-value"),
    ("unknown-query", "GET", "?colour=red", None, {}, 400, "invalid-value"),
    ("content-on-post", "POST", "?content=config", ALIAS, {}, 400, "invalid-value"),
    ("bad-depth", "GET", "?depth=0", None, {}, 400, "invalid-value"),
    (
        "insert-on-aliases",
        "POST",
        "/aliases?insert=first",
        {"ietf-dots-data-channel:alias": [{"name": "x", "target-prefix": ["192.0.2.1/32"]}]},
        {},
        400,
        "invalid-value",
    ),
    ("point-without-before", "POST", "?insert=first&point=acl%3Dbase", acl("z", GOOD_ACE), {}, 400, "invalid-value"),
    ("point-missing", "POST", "?insert=before&point=acl%3Dnope", acl("z", GOOD_ACE), {}, 400, "invalid-value"),
    ("unknown-node", "GET", "/colour", None, {}, 400, "invalid-value"),
    (
        "put-on-capabilities",
        "PUT",
        "/../capabilities",
        {"ietf-dots-data-channel:capabilities": {}},
        {},
        405,
        "operation-not-supported",
    ),
    ("loop-detected", "GET", "", None, {"Via": "1.1 gw.example, 1.1 opendots-data"}, 508, "operation-failed"),
]


async def _prepare(harness) -> None:
    await register(harness.client)
    await register(harness.other)
    assert (await harness.client.request("POST", client_path(harness), ALIAS)).status == 201
    assert (await harness.client.request("POST", client_path(harness), acl("base", GOOD_ACE))).status == 201


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
async def test_bad_input_gets_restconf_error_and_store_is_unchanged(harness, case):
    _, method, suffix, body, headers, status, tag = case
    await _prepare(harness)
    before = harness.store.dump()
    path = client_path(harness) + suffix if not suffix.startswith("/..") else f"{ROOT}{suffix[3:]}"
    headers = dict(headers)
    content_type = headers.pop("Content-Type", "application/yang-data+json")
    if isinstance(body, bytes):
        reply = await harness.client.request(method, path, raw=body, content_type=content_type, headers=headers)
    else:
        reply = await harness.client.request(method, path, body, content_type=content_type, headers=headers)
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"] == "application/yang-data+json"
    errors = reply.body["ietf-restconf:errors"]["error"]
    assert len(errors) == 1 and errors[0]["error-tag"] == tag, errors
    assert errors[0]["error-type"] in ("transport", "rpc", "protocol", "application")
    assert errors[0]["error-message"]
    assert harness.store.dump() == before
    # The server keeps serving after the refusal.
    assert (await harness.client.request("GET", client_path(harness))).status == 200


async def test_loop_detected_error_carries_the_via_header(harness):
    reply = await harness.client.request("GET", ROOT, headers={"Via": "1.1 opendots-data"})
    error = reply.body["ietf-restconf:errors"]["error"][0]
    assert (reply.status, error["error-app-tag"], error["error-info"]) == (
        508,
        "loop-detected",
        {"via-header": "1.1 opendots-data"},
    )


async def test_two_dots_clients_in_one_registration_are_refused(harness):
    body = {"ietf-dots-data-channel:dots-client": [{"cuid": harness.client.cuid}, {"cuid": "x"}]}
    reply = await harness.client.request("POST", ROOT, body)
    assert reply.status == 400
    assert harness.store.dump() == ""


async def test_unknown_member_in_registration_is_refused(harness):
    body = {"ietf-dots-data-channel:dots-client": [{"cuid": harness.client.cuid, "colour": "red"}]}
    reply = await harness.client.request("POST", ROOT, body)
    assert reply.status == 400
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "unknown-element"
    assert harness.store.dump() == ""


async def test_registering_another_cuid_is_refused(harness):
    reply = await harness.client.request("POST", ROOT, {"ietf-dots-data-channel:dots-client": [{"cuid": "abc"}]})
    assert reply.status == 403
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "access-denied"
    assert harness.store.dump() == ""


async def test_unregistered_client_cannot_create(harness):
    reply = await harness.client.request("POST", client_path(harness), ALIAS)
    assert reply.status == 404
    assert harness.store.dump() == ""


async def test_certificate_not_in_server_config_is_refused(harness, pki_dir):
    import aiohttp

    TestPki(pki_dir).issue_client("stranger")
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(pki_dir, "stranger")))
    stranger = support.Peer(harness.base, session, cuid_of(pki_dir, "stranger"))
    try:
        reply = await stranger.request("POST", ROOT, {"ietf-dots-data-channel:dots-client": [{"cuid": stranger.cuid}]})
        assert reply.status == 403
        assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "access-denied"
        assert (await stranger.request("GET", f"{ROOT}/capabilities")).status == 403
    finally:
        await session.close()
    assert harness.store.dump() == ""


async def test_tls_without_client_certificate_is_refused(harness, pki_dir):
    import ssl

    import aiohttp

    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(harness.base + ROOT) as response:
                await response.read()


async def test_unknown_api_resources_get_restconf_errors(harness):
    reply = await harness.client.request("GET", "/restconf/operations")
    assert reply.status == 404
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "invalid-value"
    other_module = await harness.client.request("GET", "/restconf/data/example-jukebox:jukebox")
    assert other_module.status == 400


async def test_invalid_utf8_body_is_malformed(harness):
    await register(harness.client)
    reply = await harness.client.request("POST", client_path(harness), raw=b'{"\xff": 1}')
    assert reply.status == 400
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "malformed-message"
