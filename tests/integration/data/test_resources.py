"""RESTCONF behaviour of the data channel resources: ordering, merge, sub-resources, query parameters, expiry."""

from __future__ import annotations

import ipaddress
import json
from decimal import Decimal

from opendots.data.records import DataChannelQuery, PortMatch
from opendots.mitigate.base import PortRange
from tests.helpers import data_harness as support
from tests.helpers.data_harness import ROOT, register

harness = support.harness


def ace(name: str, destination: str = "198.51.100.0/24", forwarding: str = "drop") -> dict:
    return {
        "name": name,
        "matches": {"ipv4": {"destination-ipv4-network": destination}},
        "actions": {"forwarding": forwarding},
    }


def acl_body(name: str, *aces: dict, **extra) -> dict:
    return {"ietf-dots-data-channel:acl": [{"name": name, **extra, "aces": {"ace": list(aces or [ace("r1")])}}]}


async def status(harness, method, path, body) -> int:
    return (await harness.client.request(method, path, body)).status


async def names(harness) -> list[str]:
    reply = await harness.client.request("GET", f"{ROOT}/dots-client={harness.client.cuid}/acls?fields=acl(name)")
    return [acl["name"] for acl in reply.body["ietf-dots-data-channel:acls"]["acl"]]


async def test_acl_insert_and_point_ordering(harness):
    await register(harness.client)
    acls = f"{ROOT}/dots-client={harness.client.cuid}/acls"
    for name in ("b", "d"):
        assert (await harness.client.request("POST", acls, acl_body(name))).status == 201
    assert (await harness.client.request("POST", acls + "?insert=first", acl_body("a"))).status == 201
    assert (await harness.client.request("POST", acls + "?insert=after&point=acl%3Db", acl_body("c"))).status == 201
    point = f"{ROOT}/dots-client={harness.client.cuid}/acls/acl=a".replace("=", "%3D").replace("/", "%2F")
    assert (await harness.client.request("POST", acls + f"?insert=before&point={point}", acl_body("0"))).status == 201
    assert await names(harness) == ["0", "a", "b", "c", "d"]
    # PUT with insert moves an existing ACL; without insert it keeps its place.
    move = await harness.client.request("PUT", acls + "/acl=0?insert=last", acl_body("0"))
    assert move.status == 204
    assert (await harness.client.request("PUT", acls + "/acl=b", acl_body("b"))).status == 204
    assert await names(harness) == ["a", "b", "c", "d", "0"]
    query = DataChannelQuery(harness.store, harness.clock)
    assert [acl.name for acl in query.acls_for(harness.client.cuid)] == ["a", "b", "c", "d", "0"]


async def test_ace_insert_in_an_acl_and_sub_resource_edits(harness):
    await register(harness.client)
    acl = f"{ROOT}/dots-client={harness.client.cuid}/acls/acl=x"
    assert (await harness.client.request("PUT", acl, acl_body("x", ace("r2")))).status == 201
    created = await harness.client.request(
        "POST", acl + "/aces?insert=first", {"ietf-dots-data-channel:ace": [ace("r1", "198.51.100.128/25")]}
    )
    assert created.status == 201, created.text
    assert created.headers["Location"].endswith("/acls/acl=x/aces/ace=r1")
    reply = await harness.client.request("GET", acl + "/aces/ace=r1")
    assert reply.body == {
        "ietf-dots-data-channel:ace": [
            ace("r1", "198.51.100.128/25") | {"actions": {"forwarding": "ietf-access-control-list:drop"}}
        ]
    }
    # Replace one leaf deep inside, then delete the ACE.
    leaf = acl + "/aces/ace=r1/matches/ipv4/destination-ipv4-network"
    assert (
        await harness.client.request(
            "PUT", leaf, {"ietf-dots-data-channel:destination-ipv4-network": "198.51.100.7/32"}
        )
    ).status == 204
    got = await harness.client.request("GET", leaf)
    assert got.body == {"ietf-dots-data-channel:destination-ipv4-network": "198.51.100.7/32"}
    out_of_scope = await harness.client.request(
        "PUT", leaf, {"ietf-dots-data-channel:destination-ipv4-network": "10.0.0.0/8"}
    )
    assert out_of_scope.status == 403
    assert (await harness.client.request("DELETE", acl + "/aces/ace=r1")).status == 204
    aces = await harness.client.request("GET", acl + "?fields=aces/ace(name)")
    assert aces.body["ietf-dots-data-channel:acls"]["acl"][0]["aces"]["ace"] == [{"name": "r2"}]


async def test_patch_merges_activation_type_and_alias_targets(harness):
    await register(harness.client)
    base = f"{ROOT}/dots-client={harness.client.cuid}"
    assert await status(harness, "PUT", base + "/acls/acl=x", acl_body("x", **{"activation-type": "deactivate"})) == 201
    query = DataChannelQuery(harness.store, harness.clock)
    assert [a.name for a in query.acls_for(harness.client.cuid, "deactivate")] == ["x"]
    patch = {"ietf-dots-data-channel:acl": [{"name": "x", "activation-type": "immediate"}]}
    assert (await harness.client.request("PATCH", base + "/acls/acl=x", patch)).status == 204
    assert query.acls_for(harness.client.cuid, "deactivate") == []
    [acl] = query.acls_for(harness.client.cuid, "immediate")
    assert acl.aces[0].match.destination == ipaddress.ip_network("198.51.100.0/24")
    alias = {"ietf-dots-data-channel:alias": [{"name": "w", "target-prefix": ["192.0.2.1/32"]}]}
    assert (await harness.client.request("PUT", base + "/aliases/alias=w", alias)).status == 201
    more = {
        "ietf-dots-data-channel:alias": [
            {
                "name": "w",
                "target-prefix": ["192.0.2.2/32"],
                "target-port-range": [{"lower-port": 80, "upper-port": 81}],
            }
        ]
    }
    assert (await harness.client.request("PATCH", base + "/aliases/alias=w", more)).status == 204
    resolved = query.resolve_alias(harness.client.cuid, "w")
    assert resolved.target_prefixes == (ipaddress.ip_network("192.0.2.1/32"), ipaddress.ip_network("192.0.2.2/32"))
    assert resolved.target_ports == (PortRange(80, 81),)
    assert query.resolve_alias(harness.client.cuid, "nope") is None
    assert query.resolve_alias(harness.other.cuid, "w") is None


async def test_typed_acl_records(harness):
    await register(harness.client)
    entry = {
        "name": "syn",
        "matches": {
            "ipv6": {"destination-ipv6-network": "2001:db8::/64", "fragment": {"operator": "not match", "type": "isf"}},
            "tcp": {
                "flags-bitmask": {"bitmask": 2},
                "destination-port-range-or-operator": {"operator": "lte", "port": 1023},
            },
        },
        "actions": {"forwarding": "accept", "rate-limit": "125000.50"},
    }
    body = acl_body("t", entry, type="ipv6-acl-type", **{"activation-type": "immediate"})
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}/acls", body)
    assert reply.status == 201, reply.text
    [acl] = DataChannelQuery(harness.store, harness.clock).acls_for(harness.client.cuid, "immediate")
    match, action = acl.aces[0].match, acl.aces[0].action
    assert (acl.type, match.family, match.transport) == ("ipv6-acl-type", 6, "tcp")
    assert match.fragment.operator == {"not", "match"} and match.fragment.value == {"isf"}
    assert match.tcp_flags.operator == {"match"} and match.tcp_flags.value == 2
    assert match.destination_port == PortMatch("lte", 1023)
    assert (action.forwarding, action.rate_limit) == ("accept", Decimal("125000.5"))


async def test_depth_fields_and_content(harness):
    await register(harness.client)
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    await harness.client.request("PUT", client + "/acls/acl=x", acl_body("x"))
    one = await harness.client.request("GET", client + "/acls?depth=1")
    assert one.body == {"ietf-dots-data-channel:acls": {}}
    three = await harness.client.request("GET", client + "/acls?depth=3")
    [entry] = three.body["ietf-dots-data-channel:acls"]["acl"]
    assert entry["name"] == "x" and entry["aces"] == {} and entry["pending-lifetime"] == 10080
    fields = await harness.client.request("GET", client + "/acls/acl=x?fields=name;activation-type")
    assert fields.body == {"ietf-dots-data-channel:acls": {"acl": [{"name": "x"}]}}  # default not stored
    nonconfig = await harness.client.request("GET", client + "?content=nonconfig")
    stripped = nonconfig.body["ietf-dots-data-channel:dots-client"][0]
    assert stripped["acls"]["acl"][0] == {"name": "x", "pending-lifetime": 10080, "aces": {"ace": [{"name": "r1"}]}}
    config = await harness.client.request("GET", ROOT + "?content=config")
    assert "capabilities" not in config.body["ietf-dots-data-channel:dots-data"]
    state = await harness.client.request("GET", ROOT + "/capabilities/ipv4?content=nonconfig")
    assert state.body["ietf-dots-data-channel:ipv4"]["fragment"] is True
    head = await harness.client.request("HEAD", client)
    assert head.status == 200 and head.text == ""


async def test_stale_entries_expire_and_refresh(harness):
    """§3.5: without a refresh, aliases and ACLs disappear after their lifetime (one week by default)."""
    await register(harness.client)
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    await harness.client.request("PUT", client + "/acls/acl=old", acl_body("old"))
    await harness.client.request(
        "PUT",
        client + "/aliases/alias=a",
        {"ietf-dots-data-channel:alias": [{"name": "a", "target-fqdn": ["example.com"]}]},
    )
    harness.clock.now += 10079 * 60
    await harness.client.request("PUT", client + "/acls/acl=fresh", acl_body("fresh"))
    refresh = await harness.client.request("PUT", client + "/acls/acl=old", acl_body("old"))
    assert refresh.status == 204
    harness.clock.now += 2 * 60
    assert (await harness.client.request("GET", client + "/aliases/alias=a")).status == 404
    assert await names(harness) == ["old", "fresh"]
    assert harness.store.purge_expired(harness.clock.now) == 1
    # An expired name can be created again.
    again = {"ietf-dots-data-channel:aliases": {"alias": [{"name": "a", "target-uri": ["https://www.example.com/x"]}]}}
    assert (await harness.client.request("POST", client, again)).status == 201


async def test_put_client_replaces_its_entries_and_patch_merges(harness):
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    entry = {"cuid": harness.client.cuid, "acls": {"acl": [{"name": "a", "aces": {"ace": [ace("r")]}}]}}
    assert (await harness.client.request("PUT", client, {"ietf-dots-data-channel:dots-client": [entry]})).status == 201
    merge = {"cuid": harness.client.cuid, "aliases": {"alias": [{"name": "w", "target-prefix": ["203.0.113.0/24"]}]}}
    assert (
        await harness.client.request("PATCH", client, {"ietf-dots-data-channel:dots-client": [merge]})
    ).status == 204
    got = await harness.client.request("GET", client + "?content=config")
    body = got.body["ietf-dots-data-channel:dots-client"][0]
    assert [a["name"] for a in body["aliases"]["alias"]] == ["w"] and [a["name"] for a in body["acls"]["acl"]] == ["a"]
    only = {"cuid": harness.client.cuid}
    assert (await harness.client.request("PUT", client, {"ietf-dots-data-channel:dots-client": [only]})).status == 204
    got = await harness.client.request("GET", client)
    assert got.body == {"ietf-dots-data-channel:dots-client": [only]}


async def test_host_meta_and_options(harness):
    xrd = await harness.client.request("GET", "/.well-known/host-meta")
    assert "<Link rel='restconf' href='/restconf'/>" in xrd.text
    assert xrd.headers["Content-Type"].startswith("application/xrd+xml")
    js = await harness.client.request("GET", "/.well-known/host-meta.json")
    assert js.body == {"links": [{"rel": "restconf", "href": "/restconf"}]}
    options = await harness.client.request("OPTIONS", ROOT)
    assert options.status == 200 and options.headers["Accept-Patch"] == "application/yang-data+json"


async def test_yang_library_and_too_large_body(harness):
    library = await harness.client.request("GET", "/restconf/data/ietf-yang-library:modules-state")
    modules = {m["name"]: m for m in library.body["ietf-yang-library:modules-state"]["module"]}
    assert modules["ietf-interfaces"]["conformance-type"] == "implement"
    assert "mixed-eth-ipv4-ipv6" not in modules["ietf-access-control-list"].get("feature", [])
    await register(harness.client)
    huge = b'{"ietf-dots-data-channel:aliases": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", raw=huge)
    assert reply.status == 413
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "too-big"


def test_listeners_hear_about_successful_writes_only(tmp_path, server_config):
    from opendots.data.core import DataChannelCore, RestconfRequest
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.sqlite import SqliteDatabase

    cuid = server_config.clients[0].cuid
    service = DataChannelCore(
        SqliteDataChannelStore(SqliteDatabase(tmp_path / "l.sqlite")), server_config.client_by_cuid
    )
    heard: list[str] = []
    service.subscribe(heard.append)

    def send(method: str, path: str, body: bytes = b"") -> int:
        request = RestconfRequest(method, path, cuid, body=body, content_type="application/yang-data+json")
        return service.handle(request, now=0.0).status

    register_body = b'{"ietf-dots-data-channel:dots-client": [{"cuid": "%s"}]}' % cuid.encode()
    assert send("POST", "/ietf-dots-data-channel:dots-data", register_body) == 201
    assert send("POST", "/ietf-dots-data-channel:dots-data", register_body) == 409
    assert send("GET", f"/ietf-dots-data-channel:dots-data/dots-client={cuid}") == 200
    assert send("DELETE", f"/ietf-dots-data-channel:dots-data/dots-client={cuid}") == 204
    assert heard == [cuid, cuid]


async def test_conflicting_filters_within_a_client_domain(pki_dir, server_config, tmp_path):
    """§7.2: absent a local policy, a filter opposite to another domain client's one is refused with 409."""
    from opendots.data.core import DataChannelSettings
    from tests.helpers.data_harness import cuid_of, make_harness

    for policy, expected in (("reject", 409), ("allow", 201)):
        settings = DataChannelSettings(gateways=frozenset({cuid_of(pki_dir, "other")}), domain_conflicts=policy)
        (tmp_path / policy).mkdir()
        harness, close = await make_harness(pki_dir, server_config, tmp_path / policy, settings)
        try:
            gateway = harness.other
            for cuid in ("client-one", "client-two"):
                body = {"ietf-dots-data-channel:dots-client": [{"cuid": cuid, "cdid": "domain-7"}]}
                assert (await gateway.request("POST", ROOT, body)).status == 201
            drop = acl_body("deny", ace("r", "198.51.100.0/25", "drop"))
            accept = acl_body("allow", ace("r", "198.51.100.0/25", "accept"))
            assert (await gateway.request("POST", f"{ROOT}/dots-client=client-one/acls", drop)).status == 201
            reply = await gateway.request("POST", f"{ROOT}/dots-client=client-two/acls", accept)
            assert reply.status == expected, reply.text
            # The same filter with the same action is no conflict.
            same = acl_body("deny-too", ace("r", "198.51.100.0/25", "drop"))
            assert (await gateway.request("POST", f"{ROOT}/dots-client=client-two/acls", same)).status == 201
        finally:
            await close()


def test_signal_channel_can_switch_an_acl_activation(tmp_path, server_config):
    from opendots.data.core import DataChannelCore, RestconfRequest
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.sqlite import SqliteDatabase

    cuid = server_config.clients[0].cuid
    store = SqliteDataChannelStore(SqliteDatabase(tmp_path / "a.sqlite"))
    service = DataChannelCore(store, server_config.client_by_cuid)
    heard: list[str] = []
    service.subscribe(heard.append)
    register_body = b'{"ietf-dots-data-channel:dots-client": [{"cuid": "%s"}]}' % cuid.encode()
    rule = {"name": "r", "actions": {"forwarding": "drop"}}
    acl = json.dumps({"ietf-dots-data-channel:acl": [{"name": "x", "aces": {"ace": [rule]}}]}).encode()
    for method, path, body in (
        ("POST", "/ietf-dots-data-channel:dots-data", register_body),
        ("POST", f"/ietf-dots-data-channel:dots-data/dots-client={cuid}/acls", acl),
    ):
        assert (
            service.handle(
                RestconfRequest(method, path, cuid, body=body, content_type="application/yang-data+json"), 0.0
            ).status
            == 201
        )
    assert service.set_acl_activation(cuid, "x", "immediate", now=1.0)
    assert not service.set_acl_activation(cuid, "nope", "immediate", now=1.0)
    [acl_record] = DataChannelQuery(store, lambda: 2.0).acls_for(cuid, "immediate")
    assert acl_record.name == "x" and acl_record.activation_type == "immediate"
    assert heard[-1] == cuid


async def test_icmp_and_udp_matches_become_typed_records(harness):
    await register(harness.client)
    icmp = {
        "name": "ping",
        "matches": {"ipv4": {"protocol": 1, "length": 1500}, "icmp": {"type": 8, "code": 0}},
        "actions": {"forwarding": "accept", "rate-limit": "1000.00"},
    }
    udp = {
        "name": "dns",
        "matches": {
            "ipv6": {"destination-ipv6-network": "2001:db8::53/128"},
            "udp": {"length": 512, "source-port-range-or-operator": {"operator": "gte", "port": 1024}},
        },
        "actions": {"forwarding": "drop"},
    }
    for entry, kind in ((icmp, "ipv4-acl-type"), (udp, "ipv6-acl-type")):
        body = acl_body(entry["name"], entry, type=kind)
        reply = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}/acls", body)
        assert reply.status == 201, reply.text
    ping, dns = DataChannelQuery(harness.store, harness.clock).acls_for(harness.client.cuid)
    assert (ping.aces[0].match.icmp_type, ping.aces[0].match.icmp_code, ping.aces[0].match.protocol) == (8, 0, 1)
    assert ping.aces[0].match.destination is None  # §7.2: the whole client domain
    assert ping.aces[0].action.rate_limit == Decimal("1000")
    assert dns.aces[0].match.source_port == PortMatch("gte", 1024) and dns.aces[0].match.udp_length == 512


async def test_empty_collections_have_no_list_member(harness):
    await register(harness.client)
    reply = await harness.client.request("GET", f"{ROOT}/dots-client={harness.client.cuid}/acls")
    assert reply.status == 200 and reply.body == {"ietf-dots-data-channel:acls": {}}
