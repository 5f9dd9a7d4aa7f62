"""RFC 9244 §8.1.6 vendor attack mapping over the data channel (real HTTPS, real SQLite): the capability flag, the
server's mapping from [data] vendor_mapping (Figures 32-34), a client's own installed, read, changed and deleted
(Figures 30, 35), bodies checked against ietf-dots-mapping, and no client reaching another's."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from opendots.config import ConfigError, ServerConfig
from opendots.data.core import DataChannelSettings
from opendots.data.shell.settings import data_settings_from_table
from opendots.store.data_channel import SqliteDataChannelStore
from tests.helpers.data_harness import ROOT, make_harness, register
from tests.helpers.vendor_mapping import FIGURE_30, MAPPING

SERVERS = {
    "vendor": [
        {
            "vendor-id": 32473,
            "vendor-name": "mitigator-s",
            "last-updated": "1629898758",
            "attack-mapping": [
                {"attack-id": 77, "attack-description": "UDP flood"},
                {"attack-id": 78, "attack-description": "SYN flood"},
            ],
        }
    ]
}


@pytest.fixture
async def harness(pki_dir: Path, server_config: ServerConfig, tmp_path: Path):
    result, close = await make_harness(
        pki_dir, server_config, tmp_path, DataChannelSettings(vendor_mapping=SERVERS, max_attack_mappings=300)
    )
    yield result
    await close()


async def test_capabilities_say_vendor_mapping_is_enabled_rfc9244_8_1_6(harness):
    reply = await harness.client.request("GET", f"{ROOT}/capabilities")
    assert reply.status == 200
    assert reply.body["ietf-dots-data-channel:capabilities"]["ietf-dots-mapping:vendor-mapping-enabled"] is True


async def test_the_servers_mapping_and_its_vendor_list_at_depth_3_figures_32_34(harness):
    whole = await harness.client.request("GET", f"{ROOT}/{MAPPING}")
    assert whole.status == 200 and whole.body == {MAPPING: SERVERS}
    vendors = await harness.client.request("GET", f"{ROOT}/{MAPPING}?depth=3")
    assert vendors.body == {  # Figure 34
        MAPPING: {
            "vendor": [
                {"vendor-id": 32473, "vendor-name": "mitigator-s", "last-updated": "1629898758", "attack-mapping": []}
            ]
        }
    }
    one = await harness.client.request("GET", f"{ROOT}/{MAPPING}/vendor=32473")
    assert one.status == 200 and one.body == {"ietf-dots-mapping:vendor": SERVERS["vendor"]}
    missing = await harness.client.request("GET", f"{ROOT}/{MAPPING}/vendor=1")
    assert missing.status == 404
    refused = await harness.client.request("PUT", f"{ROOT}/{MAPPING}", {MAPPING: SERVERS})
    assert refused.status == 405
    datastore = await harness.client.request("GET", ROOT)
    assert datastore.body["ietf-dots-data-channel:dots-data"][MAPPING] == SERVERS


async def test_a_client_installs_reads_changes_and_deletes_its_mapping_figures_30_35(harness):
    await register(harness.client)
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    assert (await harness.client.request("GET", f"{client}/{MAPPING}")).status == 404
    created = await harness.client.request("POST", client, FIGURE_30)
    assert created.status == 201, created.text
    assert created.headers["Location"].endswith(f"/dots-client={harness.client.cuid}/{MAPPING}")
    again = await harness.client.request("POST", client, FIGURE_30)
    assert again.status == 409 and again.body["ietf-restconf:errors"]["error"][0]["error-tag"] == "data-exists"
    read = await harness.client.request("GET", f"{client}/{MAPPING}?content=all")  # Figure 35
    assert read.status == 200 and read.body == FIGURE_30
    assert harness.store.get_vendor_mapping(harness.client.cuid) == FIGURE_30[MAPPING]

    vendor = {
        "vendor-id": 9,
        "last-updated": "1700000000",
        "attack-mapping": [{"attack-id": 5, "attack-description": "x"}],
    }
    added = await harness.client.request("PUT", f"{client}/{MAPPING}/vendor=9", {"ietf-dots-mapping:vendor": [vendor]})
    assert added.status == 201, added.text
    vendor["vendor-name"] = "renamed"
    changed = await harness.client.request(
        "PUT", f"{client}/{MAPPING}/vendor=9", {"ietf-dots-mapping:vendor": [vendor]}
    )
    assert changed.status == 204
    held = harness.store.get_vendor_mapping(harness.client.cuid)
    assert [v["vendor-id"] for v in held["vendor"]] == [345, 9] and held["vendor"][1]["vendor-name"] == "renamed"
    whole = await harness.client.request("GET", client)
    assert whole.body["ietf-dots-data-channel:dots-client"][0][MAPPING] == held

    assert (await harness.client.request("DELETE", f"{client}/{MAPPING}/vendor=345")).status == 204
    assert [v["vendor-id"] for v in harness.store.get_vendor_mapping(harness.client.cuid)["vendor"]] == [9]
    assert (await harness.client.request("DELETE", f"{client}/{MAPPING}/vendor=345")).status == 404
    replaced = await harness.client.request("PUT", f"{client}/{MAPPING}", FIGURE_30)
    assert replaced.status == 204
    assert harness.store.get_vendor_mapping(harness.client.cuid) == FIGURE_30[MAPPING]
    assert (await harness.client.request("DELETE", f"{client}/{MAPPING}")).status == 204
    assert harness.store.get_vendor_mapping(harness.client.cuid) is None


@pytest.mark.parametrize(
    ("vendor", "tag"),
    [
        ({"vendor-id": 1, "attack-mapping": []}, "missing-attribute"),  # last-updated is mandatory
        ({"vendor-id": 1, "last-updated": "1", "colour": "red"}, "unknown-element"),
        ({"vendor-id": -1, "last-updated": "1"}, "invalid-value"),
        ({"vendor-id": 1, "last-updated": "1", "attack-mapping": [{"attack-id": 1}]}, "missing-attribute"),
        ({"vendor-id": 1, "last-updated": "1", "description-lang": "not a tag!"}, "invalid-value"),
    ],
)
async def test_bad_mappings_get_400_with_the_error_tag_and_nothing_stored_rfc9244_8_1_6(harness, vendor, tag):
    await register(harness.client)
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    refused = await harness.client.request("POST", client, {MAPPING: {"vendor": [vendor]}})
    assert refused.status == 400, refused.text
    assert refused.body["ietf-restconf:errors"]["error"][0]["error-tag"] == tag
    assert harness.store.get_vendor_mapping(harness.client.cuid) is None


async def test_repeated_keys_and_too_many_attack_mappings_are_refused(harness):
    await register(harness.client)
    client = f"{ROOT}/dots-client={harness.client.cuid}"
    twice = {"vendor-id": 1, "last-updated": "1"}
    repeated = await harness.client.request("POST", client, {MAPPING: {"vendor": [twice, twice]}})
    assert repeated.status == 400
    attacks = [{"attack-id": i, "attack-description": "d"} for i in range(301)]
    many = await harness.client.request(
        "POST", client, {MAPPING: {"vendor": [{"vendor-id": 1, "last-updated": "1", "attack-mapping": attacks}]}}
    )
    assert many.status == 413
    fits = await harness.client.request(
        "POST", client, {MAPPING: {"vendor": [{"vendor-id": 1, "last-updated": "1", "attack-mapping": attacks[:300]}]}}
    )
    assert fits.status == 201  # 300 entries: validated 128 at a time
    assert len(harness.store.get_vendor_mapping(harness.client.cuid)["vendor"][0]["attack-mapping"]) == 300


async def test_a_client_never_reaches_another_clients_mapping(harness):
    await register(harness.client)
    await register(harness.other)
    other = f"{ROOT}/dots-client={harness.other.cuid}/{MAPPING}"
    assert (await harness.other.request("POST", f"{ROOT}/dots-client={harness.other.cuid}", FIGURE_30)).status == 201
    for method, body in (("GET", None), ("PUT", FIGURE_30), ("DELETE", None)):
        reply = await harness.client.request(method, other, body)
        assert reply.status == 404, (method, reply.text)
    assert harness.store.get_vendor_mapping(harness.other.cuid) == FIGURE_30[MAPPING]
    assert harness.store.get_vendor_mapping(harness.client.cuid) is None
    # Unregistering takes the client's mapping with it.
    assert (await harness.other.request("DELETE", f"{ROOT}/dots-client={harness.other.cuid}")).status == 204
    assert harness.store.get_vendor_mapping(harness.other.cuid) is None


def test_the_servers_mapping_file_is_checked_at_start(tmp_path: Path):
    good = tmp_path / "mapping.json"
    good.write_text(json.dumps({MAPPING: SERVERS}))
    assert data_settings_from_table([], {"vendor_mapping": str(good)}).vendor_mapping == SERVERS
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({MAPPING: {"vendor": [{"vendor-id": 1}]}}))
    with pytest.raises(ConfigError, match="last-updated"):
        data_settings_from_table([], {"vendor_mapping": str(bad)})
    with pytest.raises(ConfigError, match="vendor_mapping"):
        data_settings_from_table([], {"vendor_mapping": str(tmp_path / "absent.json")})


async def test_a_large_mapping_is_validated_and_committed_off_the_event_loop(
    pki_dir: Path, server_config: ServerConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A body past 16 KiB is decided in a worker thread (opendots.data.shell.runner): 2,000 attack mappings, ~0.1 s
    of YANG validation, never on the loop."""
    threads: list[str] = []
    original = SqliteDataChannelStore.apply

    def recording(self, changes, now):
        threads.append(threading.current_thread().name)
        return original(self, changes, now)

    monkeypatch.setattr(SqliteDataChannelStore, "apply", recording)
    harness, close = await make_harness(pki_dir, server_config, tmp_path)
    try:
        await register(harness.client)
        attacks = [{"attack-id": i, "attack-description": f"attack number {i}"} for i in range(2000)]
        body = {MAPPING: {"vendor": [{"vendor-id": 7, "last-updated": "1", "attack-mapping": attacks}]}}
        created = await harness.client.request("POST", f"{ROOT}/dots-client={harness.client.cuid}", body)
        assert created.status == 201, created.text
        assert threads[-1] != threading.main_thread().name
        stored = harness.store.get_vendor_mapping(harness.client.cuid)
        assert [a["attack-id"] for a in stored["vendor"][0]["attack-mapping"]] == list(range(2000))
    finally:
        await close()
