"""The Python data channel client and the `opendots data` CLI against a real server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from opendots.config import ClientConfig, TlsFiles
from opendots.data.client import DataChannelClient, DataChannelError
from tests.helpers import REPOSITORY
from tests.helpers import data_harness as support

harness = support.harness


def tls(pki_dir: Path, name: str = "client") -> TlsFiles:
    return TlsFiles(pki_dir / "ca.crt", pki_dir / f"{name}.crt", pki_dir / f"{name}.key")


async def test_client_discovers_root_and_manages_everything(harness, pki_dir):
    async with DataChannelClient(harness.base, tls(pki_dir)) as client:
        assert await client.discover() == "/restconf"
        await client.register()
        with pytest.raises(DataChannelError) as conflict:
            await client.register()
        assert conflict.value.status == 409 and conflict.value.error["error-tag"] == "resource-denied"
        assert (await client.capabilities())["rate-limit"] is True
        created = await client.create_alias({"name": "web", "target-prefix": ["203.0.113.0/24"]})
        assert created.location.endswith("/aliases/alias=web")
        await client.put_alias({"name": "dns", "target-fqdn": ["ns.example.com"], "target-protocol": [17]})
        assert [a["name"] for a in await client.aliases()] == ["web", "dns"]
        rule = {
            "name": "r",
            "matches": {"ipv6": {"destination-ipv6-network": "2001:db8::/48"}},
            "actions": {"forwarding": "drop"},
        }
        await client.create_acls([{"name": "b", "aces": {"ace": [rule]}}])
        await client.create_acls([{"name": "a", "aces": {"ace": [rule]}}], insert="first")
        assert [a["name"] for a in await client.acls(content="config")] == ["a", "b"]
        await client.set_activation("b", "immediate")
        assert (await client.acls("b"))[0]["activation-type"] == "immediate"
        await client.delete_acl("a")
        await client.delete_alias("web")
        with pytest.raises(DataChannelError) as missing:
            await client.delete_alias("web")
        assert missing.value.status == 404
        await client.unregister()
    assert harness.store.dump() == ""


async def run_cli(config: Path, *arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from opendots.cli.data import data; data()",
        "--config",
        str(config),
        *arguments,
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_cli_register_alias_acl_commands(harness, pki_dir, tmp_path):
    port = urlsplit(harness.base).port
    config = tmp_path / "client.toml"
    ClientConfig(tls=tls(pki_dir), server_name="localhost", server_addresses=["127.0.0.1"], data_port=port).save(config)

    assert (await run_cli(config, "register"))[0] == 0
    code, out, err = await run_cli(
        config,
        "alias",
        "add",
        "web",
        "--prefix",
        "192.0.2.0/28",
        "--port",
        "443",
        "--port",
        "8000-8080",
        "--protocol",
        "tcp",
    )
    assert code == 0, err
    code, out, _ = await run_cli(config, "alias", "list", "--json")
    [alias] = json.loads(out)
    assert alias["target-port-range"] == [{"lower-port": 443}, {"lower-port": 8000, "upper-port": 8080}]
    assert alias["target-protocol"] == [6]

    code, _, err = await run_cli(
        config,
        "acl",
        "add",
        "syn",
        "--destination",
        "198.51.100.0/24",
        "--protocol",
        "tcp",
        "--tcp-flags",
        "2",
        "--rate-limit",
        "1000",
        "--dst-port",
        "80",
    )
    assert code == 0, err
    acl_file = tmp_path / "acl.json"
    acl_file.write_text(json.dumps(support.load_figure(24).body))
    code, _, err = await run_cli(config, "acl", "add", "--file", str(acl_file), "--insert", "first")
    assert code == 0, err
    code, out, _ = await run_cli(config, "acl", "list", "--content", "config", "--json")
    acls = json.loads(out)
    assert [a["name"] for a in acls] == ["sample-ipv4-acl", "syn"]
    syn = acls[1]["aces"]["ace"][0]
    assert syn["matches"]["tcp"] == {
        "flags-bitmask": {"operator": "match", "bitmask": 2},
        "destination-port-range-or-operator": {"operator": "eq", "port": 80},
    }
    assert syn["actions"] == {"forwarding": "ietf-access-control-list:accept", "rate-limit": "1000.0"}
    assert (await run_cli(config, "acl", "activate", "syn"))[0] == 0
    code, out, _ = await run_cli(config, "acl", "list", "syn", "--json")
    assert json.loads(out)[0]["activation-type"] == "immediate"

    code, _, err = await run_cli(config, "acl", "add", "bad", "--destination", "10.0.0.0/8")
    assert code == 65 and "403 access-denied" in err  # refused: EX_DATAERR (opendots.cli.common)
    assert (await run_cli(config, "acl", "delete", "syn"))[0] == 0
    assert (await run_cli(config, "alias", "delete", "web"))[0] == 0
    code, out, _ = await run_cli(config, "capabilities", "--json")
    assert json.loads(out)["address-family"] == ["ipv4", "ipv6"]
    assert (await run_cli(config, "unregister"))[0] == 0
    assert harness.store.dump() == ""


async def test_server_defaults_to_config_listen_and_data_port(pki_dir, server_config, tmp_path):
    import dataclasses
    import socket

    from opendots.data.shell.server import CORE_KEY, start_data_server
    from opendots.store.data_channel import SqliteDataChannelStore
    from opendots.store.sqlite import SqliteDatabase
    from tests.conftest import free_port

    port = free_port(socket.SOCK_STREAM)
    config = dataclasses.replace(server_config, listen=["127.0.0.1"], data_port=port)
    database = SqliteDatabase(tmp_path / "d.sqlite")
    runner = await start_data_server(config, SqliteDataChannelStore(database))
    try:
        assert runner.app[CORE_KEY].settings.lifetime == 10080 * 60
        client_config = ClientConfig(tls=tls(pki_dir), server_addresses=["127.0.0.1"], data_port=port)
        async with DataChannelClient.from_config(client_config) as client:
            assert (await client.register()).status == 201
    finally:
        await runner.cleanup()
        database.close()
