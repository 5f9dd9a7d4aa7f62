"""The data channel (RFC 8783, RESTCONF over HTTPS) on PostgreSQL, as two nodes of one database serve it: what a
client stores through one node is read, changed and deleted through the other, and the other client sees none of
it (§7.2)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp

from opendots.config import ServerConfig
from opendots.data.core import DataChannelSettings
from opendots.data.shell.server import start_data_server
from opendots.store.postgres_data import PostgresDataChannelStore
from tests.conftest import free_port
from tests.helpers.data_harness import ROOT, Peer, client_ssl, cuid_of, register


async def test_aliases_and_acls_written_through_one_node_are_served_by_the_other(
    pki_dir: Path, server_config: ServerConfig, postgres_url: str
):
    stores, runners, sessions = [], [], []
    try:
        bases = []
        for _ in range(2):
            store = await asyncio.to_thread(PostgresDataChannelStore.open, postgres_url)
            stores.append(store)
            port = free_port(socket.SOCK_STREAM)
            runners.append(await start_data_server(server_config, store, "127.0.0.1", port, DataChannelSettings()))
            bases.append(f"https://127.0.0.1:{port}")

        def peer(base: str, name: str) -> Peer:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(pki_dir, name)))
            sessions.append(session)
            return Peer(base, session, cuid_of(pki_dir, name))

        on_a, on_b, other_on_b = peer(bases[0], "client"), peer(bases[1], "client"), peer(bases[1], "other")
        await register(on_a)
        client = f"{ROOT}/dots-client={on_a.cuid}"
        alias = {"ietf-dots-data-channel:alias": [{"name": "web", "target-prefix": ["192.0.2.1/32"]}]}
        assert (await on_a.request("PUT", client + "/aliases/alias=web", alias)).status == 201
        acl = {
            "ietf-dots-data-channel:acl": [
                {
                    "name": "drop-udp",
                    "type": "ipv4-acl-type",
                    "activation-type": "deactivate",
                    "aces": {
                        "ace": [
                            {
                                "name": "r1",
                                "matches": {"ipv4": {"destination-ipv4-network": "192.0.2.0/24", "protocol": 17}},
                                "actions": {"forwarding": "drop"},
                            }
                        ]
                    },
                }
            ]
        }
        assert (await on_a.request("PUT", client + "/acls/acl=drop-udp", acl)).status == 201

        got = await on_b.request("GET", client + "/aliases/alias=web")
        assert got.status == 200, got.text
        assert got.body["ietf-dots-data-channel:aliases"]["alias"][0]["target-prefix"] == ["192.0.2.1/32"]
        patch = {"ietf-dots-data-channel:acl": [{"name": "drop-udp", "activation-type": "immediate"}]}
        assert (await on_b.request("PATCH", client + "/acls/acl=drop-udp", patch)).status == 204
        [stored] = (await on_a.request("GET", client + "/acls/acl=drop-udp")).body["ietf-dots-data-channel:acls"]["acl"]
        assert stored["activation-type"] == "immediate"
        assert (await other_on_b.request("GET", client + "/aliases/alias=web")).status in (403, 404)
        assert (await on_b.request("DELETE", client + "/aliases/alias=web")).status == 204
        assert (await on_a.request("GET", client + "/aliases/alias=web")).status == 404
    finally:
        for session in sessions:
            await session.close()
        for runner in runners:
            await runner.cleanup()
        for store in stores:
            await asyncio.to_thread(store.close)
