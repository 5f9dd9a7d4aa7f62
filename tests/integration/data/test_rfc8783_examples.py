"""Every request/response figure of RFC 8783 (§5–§7, Appendices A and B) against a real server over mutual TLS.

The figures' example CUIDs are replaced by the test certificate's CUID: the server binds a cuid to the
certificate that presents it (RFC 9132 §4.4.1).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from opendots.data.core import DataChannelSettings
from tests.helpers import data_harness as support
from tests.helpers.data_harness import (
    ROOT,
    bare_identities,
    cuid_of,
    load_figure,
    make_harness,
    register,
    with_cuid,
    without,
)

harness = support.harness  # the fixture, shared


async def send_figure(peer, number: int, body=None):
    figure = load_figure(number)
    payload = figure.body if body is None else body
    if payload is not None:
        payload = copy.deepcopy(payload)
        for entry in payload.get("ietf-dots-data-channel:dots-client", []):
            entry["cuid"] = peer.cuid
    return await peer.request(figure.method, with_cuid(figure.path, peer.cuid), payload)


async def test_figure_11_register_then_409_on_repeat(harness):
    reply = await send_figure(harness.client, 11)
    assert reply.status == 201, reply.text
    assert reply.headers["Location"].endswith(f"/dots-client={harness.client.cuid}")
    again = await send_figure(harness.client, 11)
    assert again.status == 409
    assert again.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "resource-denied"


async def test_figure_11_without_cuid_is_missing_attribute(harness):
    reply = await harness.client.request("POST", ROOT, {"ietf-dots-data-channel:dots-client": [{}]})
    assert reply.status == 400
    assert reply.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "missing-attribute"


@pytest.mark.parametrize("declared", ["[data] gateways", "[[clients]] gateway = true"])
async def test_figures_12_13_gateway_registers_with_cdid(pki_dir, server_config, tmp_path, declared):
    if declared == "[data] gateways":
        settings = DataChannelSettings(gateways=frozenset({cuid_of(pki_dir, "other")}))
    else:
        settings = DataChannelSettings()
        server_config.clients = [replace(c, gateway=c.name == "other") for c in server_config.clients]
    harness, close = await make_harness(pki_dir, server_config, tmp_path, settings)
    try:
        figure = load_figure(13)
        relayed_cuid = figure.body["ietf-dots-data-channel:dots-client"][0]["cuid"]
        reply = await harness.other.request(figure.method, figure.path, figure.body)
        assert reply.status == 201, reply.text
        client_path = f"{ROOT}/dots-client={relayed_cuid}"
        got = await harness.other.request("GET", client_path)
        assert got.body["ietf-dots-data-channel:dots-client"][0]["cdid"] == "7eeaf349529eb55ed50113"
        # Figure 12 from a plain client: a cdid it asserts itself is ignored (RFC 9132 §4.4.1).
        plain = load_figure(12).body
        plain["ietf-dots-data-channel:dots-client"][0].update(cuid=harness.client.cuid)
        assert (await harness.client.request("POST", ROOT, plain)).status == 201
        mine = await harness.client.request("GET", f"{ROOT}/dots-client={harness.client.cuid}")
        assert "cdid" not in mine.body["ietf-dots-data-channel:dots-client"][0]
        # The gateway relays aliases for the client it registered; a client registered without cdid is refused.
        alias = {"ietf-dots-data-channel:aliases": {"alias": [{"name": "a", "target-prefix": ["192.0.2.1/32"]}]}}
        assert (await harness.other.request("POST", client_path, alias)).status == 201
        denied = await harness.other.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", alias)
        assert denied.status == 403
        assert denied.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "access-denied"
    finally:
        await close()


async def test_figure_14_put_registers_then_replaces(harness):
    assert (await send_figure(harness.client, 14)).status == 201
    assert (await send_figure(harness.client, 14)).status == 204


async def test_figure_15_deregister_removes_everything(harness):
    await register(harness.client)
    assert (await send_figure(harness.client, 17)).status == 201
    assert (await send_figure(harness.client, 15)).status == 204
    assert (await harness.client.request("GET", f"{ROOT}/dots-client={harness.client.cuid}")).status == 404
    assert harness.store.dump() == ""


async def test_figure_17_create_alias(harness):
    await register(harness.client)
    reply = await send_figure(harness.client, 17)
    assert reply.status == 201, reply.text
    assert reply.headers["Location"].endswith("/aliases/alias=https1")
    again = await send_figure(harness.client, 17)
    assert again.status == 409
    assert again.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "resource-denied"


async def _install_figure_19_aliases(harness):
    await register(harness.client)
    aliases = without(load_figure(19).body, "pending-lifetime")
    path = f"{ROOT}/dots-client={harness.client.cuid}"
    assert (await harness.client.request("POST", path, aliases)).status == 201
    return aliases


async def test_figures_18_19_get_all_aliases(harness):
    await _install_figure_19_aliases(harness)
    harness.clock.now += 60 * 60  # one hour later
    reply = await send_figure(harness.client, 18)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"] == "application/yang-data+json"
    expected = load_figure(19).body
    assert without(reply.body, "pending-lifetime") == without(expected, "pending-lifetime")
    lifetimes = [alias["pending-lifetime"] for alias in reply.body["ietf-dots-data-channel:aliases"]["alias"]]
    assert lifetimes == [10080 - 60, 10080 - 60]


async def test_figure_20_get_one_alias(harness):
    await _install_figure_19_aliases(harness)
    reply = await send_figure(harness.client, 20)
    assert reply.status == 200
    assert [a["name"] for a in reply.body["ietf-dots-data-channel:aliases"]["alias"]] == ["Server2"]
    missing = await harness.client.request("GET", f"{ROOT}/dots-client={harness.client.cuid}/aliases/alias=nope")
    assert missing.status == 404


async def test_figure_21_delete_alias(harness):
    await _install_figure_19_aliases(harness)
    assert (await send_figure(harness.client, 21)).status == 204
    assert (await send_figure(harness.client, 21)).status == 404
    remaining = await send_figure(harness.client, 18)
    assert [a["name"] for a in remaining.body["ietf-dots-data-channel:aliases"]["alias"]] == ["Server2"]


async def test_figures_22_23_capabilities(pki_dir, server_config, tmp_path):
    published = load_figure(23).body["ietf-dots-data-channel:capabilities"]
    harness, close = await make_harness(pki_dir, server_config, tmp_path, DataChannelSettings(capabilities=published))
    try:
        reply = await send_figure(harness.client, 22)
        assert reply.status == 200
        assert bare_identities(reply.body) == load_figure(23).body
    finally:
        await close()


async def test_default_capabilities_cover_table_1(harness):
    reply = await harness.client.request("GET", f"{ROOT}/capabilities")
    capabilities = reply.body["ietf-dots-data-channel:capabilities"]
    for layer, fields in {
        "ipv4": ["length", "protocol", "destination-prefix", "source-prefix", "fragment"],
        "ipv6": ["length", "protocol", "destination-prefix", "source-prefix", "fragment"],
        "tcp": ["flags-bitmask", "source-port", "destination-port", "port-range"],
        "udp": ["length", "source-port", "destination-port", "port-range"],
        "icmp": ["type", "code"],
    }.items():
        assert all(capabilities[layer][name] is True for name in fields), layer


async def test_figure_24_install_acl_and_figures_32_33_remove_it(harness):
    await register(harness.client)
    reply = await send_figure(harness.client, 24)
    assert reply.status == 201, reply.text
    assert reply.headers["Location"].endswith("/acls/acl=sample-ipv4-acl")
    deleted = await send_figure(harness.client, 32)
    assert deleted.status == 204  # Figure 33
    assert deleted.text == ""
    assert (await send_figure(harness.client, 32)).status == 404


async def test_figures_25_to_31_put_then_get_with_content(harness):
    await register(harness.client)
    created = await send_figure(harness.client, 25)
    assert created.status == 201, created.text
    harness.clock.now += 1000 * 60
    everything = await send_figure(harness.client, 26)
    assert everything.status == 200
    assert bare_identities(without(everything.body, "pending-lifetime")) == without(
        load_figure(27).body, "pending-lifetime"
    )
    assert everything.body["ietf-dots-data-channel:acls"]["acl"][0]["pending-lifetime"] == 9080
    config = await send_figure(harness.client, 28)
    assert bare_identities(config.body) == load_figure(29).body
    state = await send_figure(harness.client, 30)
    assert without(state.body, "pending-lifetime") == without(load_figure(31).body, "pending-lifetime")
    assert state.body["ietf-dots-data-channel:acls"]["acl"][0]["pending-lifetime"] == 9080
    refreshed = await send_figure(harness.client, 25)  # a PUT refreshes the lifetime (§7.2)
    assert refreshed.status == 204
    again = await send_figure(harness.client, 30)
    assert again.body["ietf-dots-data-channel:acls"]["acl"][0]["pending-lifetime"] == 10080


async def test_figure_34_as_printed_is_rejected_and_corrected_is_accepted(harness):
    """Figure 34 puts the second ACE's "actions" inside "matches" (a typo in the RFC): 400 unknown-element."""
    await register(harness.client)
    printed = await send_figure(harness.client, 34)
    assert printed.status == 400
    assert printed.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "unknown-element"
    corrected = copy.deepcopy(load_figure(34).body)
    ace = corrected["ietf-dots-data-channel:acls"]["acl"][0]["aces"]["ace"][1]
    ace["actions"] = ace["matches"].pop("actions")
    reply = await send_figure(harness.client, 34, corrected)
    assert reply.status == 201, reply.text


async def test_figure_35_ipv6_fragments(harness):
    await register(harness.client)
    reply = await send_figure(harness.client, 35)
    assert reply.status == 201, reply.text
    acls = await harness.client.request("GET", f"{ROOT}/dots-client={harness.client.cuid}/acls/acl=dns-fragments")
    aces = acls.body["ietf-dots-data-channel:acls"]["acl"][0]["aces"]["ace"]
    assert [ace["name"] for ace in aces] == ["drop-all-fragments", "allow-dns-packets"]


async def test_figures_36_37_38_tcp_flags(harness):
    await register(harness.client)
    assert (await send_figure(harness.client, 36)).status == 201
    assert (await send_figure(harness.client, 37)).status == 204
    assert (await send_figure(harness.client, 38)).status == 204
    reply = await harness.client.request(
        "GET", f"{ROOT}/dots-client={harness.client.cuid}/acls/acl=tcp-flags-example?content=config"
    )
    acl = reply.body["ietf-dots-data-channel:acls"]["acl"][0]
    # decimal64 comes back in its canonical form (RFC 7950 §9.3.2): "20.00" → "20.0"
    assert acl["aces"]["ace"][0]["actions"] == {"forwarding": "ietf-access-control-list:accept", "rate-limit": "20.0"}
    assert acl["activation-type"] == "activate-when-mitigating"
