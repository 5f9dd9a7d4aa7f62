"""Data-channel ACLs enforced when their activation type says so, through the whole server (skips without lab).

The client talks to the real data channel (HTTPS, mutual TLS) and the real signal channel (DTLS); the server's
router drives a real nftables table in the lab's router namespace; floods cross it and the victim counts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiohttp import web

from opendots.config import ServerConfig, TlsFiles
from opendots.data.client import DataChannelClient
from opendots.data.core import DataChannelSettings
from opendots.data.shell.server import CORE_KEY, start_data_server
from opendots.lab.flood import VictimTally, flood
from opendots.lab.netns import Lab
from opendots.mitigate.nftables_acl import ace_counter_name
from opendots.model import decode_signal, encode_signal
from opendots.signal.server.core import ServerSettings
from opendots.signal.server.shell.run import RunningSignalServer, start_signal_server
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from opendots.transport import create_client_context
from tests.conftest import free_port

pytestmark = pytest.mark.lab

PORT = 5007  # the ACL drops UDP to this port
OTHER_PORT = 6007  # ... and not to this one
PACKETS = 600
PPS = 15_000
SCOPE = "ietf-dots-signal-channel:mitigation-scope"
ACL_LIST = "ietf-dots-signal-control:acl-list"


@pytest.fixture(scope="module")
def tally(lab: Lab) -> VictimTally:
    return VictimTally(lab.victim, [PORT, OTHER_PORT], table="acltally")


@dataclass
class Stack:
    lab: Lab
    table: str
    config: ServerConfig
    signal: RunningSignalServer
    data: web.AppRunner
    data_client: DataChannelClient
    coap_client: Any
    signal_uri: str

    @property
    def cuid(self) -> str:
        return self.data_client.cuid

    def nft_listing(self) -> str:
        result = self.lab.router.run(["nft", "list", "table", "netdev", self.table], check=False)
        return result.stdout if result.returncode == 0 else ""

    def acl_installed(self, acl: str, ace: str) -> bool:
        return ace_counter_name(f"{self.cuid}/{acl}", ace) in self.nft_listing()

    async def settle(self) -> None:
        await self.signal.service.idle()
        assert self.signal.acls is not None
        await self.signal.acls.idle()

    async def signal_request(
        self, method: aiocoap.Code, mid: int, body: dict[str, Any] | None = None
    ) -> aiocoap.Message:
        message = aiocoap.Message(code=method, uri=f"{self.signal_uri}/mitigate/cuid={self.cuid}/mid={mid}")
        if body is not None:
            message.payload = encode_signal(body)
            message.opt.content_format = 271
        response = await asyncio.wait_for(self.coap_client.request(message).response, 10)
        await self.settle()
        return response


def drop_udp_acl(lab: Lab, name: str, activation: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "ipv4-acl-type",
        "activation-type": activation,
        "aces": {
            "ace": [
                {
                    "name": "drop-udp",
                    "matches": {
                        "ipv4": {"destination-ipv4-network": f"{lab.victim_v4[0]}/32"},
                        "udp": {"destination-port-range-or-operator": {"operator": "eq", "port": PORT}},
                    },
                    "actions": {"forwarding": "drop"},
                }
            ]
        },
    }


def mitigation_body(lab: Lab, **extra: Any) -> dict[str, Any]:
    # The mitigation protects the victim's second address: the ACL's effect on the first one stays visible.
    return {SCOPE: {"scope": [{"target-prefix": [f"{lab.victim_v4[1]}/32"], "lifetime": 3600, **extra}]}}


def delivered(lab: Lab, tally: VictimTally, port: int) -> int:
    before = tally.count(port)
    result = flood(lab.attacker, str(lab.victim_v4[0]), port, count=PACKETS, duration=10.0, pps=PPS)
    assert result.sent == PACKETS
    return tally.count(port) - before


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def files(directory: Path, stem: str) -> TlsFiles:
    return TlsFiles(directory / "ca.crt", directory / f"{stem}.crt", directory / f"{stem}.key")


async def build_stack(
    lab: Lab, table: str, pki_dir: Path, tmp_path: Path, data_settings: DataChannelSettings | None = None
) -> Stack:
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "server.db"
    config.mitigators = [
        {"type": "nftables", "interface": lab.router_ingress, "table": table, "netns": lab.router.name}
    ]
    data_store = SqliteDataChannelStore(SqliteDatabase(config.db))
    data = await start_data_server(config, data_store, "127.0.0.1", free_port(socket.SOCK_STREAM), data_settings)
    settings = ServerSettings(clients=config.clients, active_but_terminating=1)  # DELETE ends after 1 s
    signal = await start_signal_server(
        config, bind=[("127.0.0.1", free_port())], settings=settings, data_channel=data.app[CORE_KEY]
    )
    host, port = signal.endpoint.dtls_addresses[0][:2]
    data_host, data_port = data.addresses[0][:2]
    data_client = DataChannelClient(f"https://{data_host}:{data_port}", files(pki_dir, "client"), "localhost")
    await data_client.__aenter__()
    coap = await create_client_context(files(pki_dir, "client"), server_name="localhost")
    stack = Stack(lab, table, config, signal, data, data_client, coap, f"coaps://{host}:{port}/.well-known/dots")
    await data_client.register()
    return stack


async def close_stack(stack: Stack) -> None:
    await stack.coap_client.shutdown()
    await stack.data_client.__aexit__(None, None, None)
    await stack.signal.stop()
    await stack.data.cleanup()
    stack.lab.router.run(["nft", "delete", "table", "netdev", stack.table], check=False)


@pytest.fixture
async def stack(lab: Lab, table_name: str, pki_dir: Path, tmp_path: Path) -> AsyncIterator[Stack]:
    built = await build_stack(lab, table_name, pki_dir, tmp_path)
    yield built
    await close_stack(built)


async def test_when_mitigating_acl_follows_the_clients_mitigation(stack: Stack, tally: VictimTally):
    lab = stack.lab
    await stack.data_client.create_acls([drop_udp_acl(lab, "udp-x", "activate-when-mitigating")])
    await stack.settle()
    assert not stack.acl_installed("udp-x", "drop-udp")
    assert delivered(lab, tally, PORT) == PACKETS

    created = await stack.signal_request(aiocoap.PUT, 1, mitigation_body(lab))
    assert created.code == aiocoap.CREATED
    assert stack.acl_installed("udp-x", "drop-udp")
    assert delivered(lab, tally, PORT) == 0
    assert delivered(lab, tally, OTHER_PORT) == PACKETS

    deleted = await stack.signal_request(aiocoap.DELETE, 1)
    assert deleted.code == aiocoap.DELETED
    # Active-but-terminating for 1 s, then the mitigation ends: the client has none left, the ACL goes.
    await wait_until(lambda: not stack.signal.acls.enforced(stack.cuid), 10, "the ACL to be withdrawn")
    assert not stack.acl_installed("udp-x", "drop-udp")
    assert delivered(lab, tally, PORT) == PACKETS


async def test_immediate_acl_is_enforced_at_once_and_deleting_it_withdraws_it(stack: Stack, tally: VictimTally):
    lab = stack.lab
    await stack.data_client.create_acls([drop_udp_acl(lab, "udp-now", "immediate")])
    await stack.settle()
    assert stack.acl_installed("udp-now", "drop-udp")
    assert delivered(lab, tally, PORT) == 0
    assert delivered(lab, tally, OTHER_PORT) == PACKETS

    await stack.data_client.set_activation("udp-now", "deactivate")
    await stack.settle()
    assert not stack.acl_installed("udp-now", "drop-udp")

    await stack.data_client.set_activation("udp-now", "immediate")
    await stack.settle()
    assert stack.acl_installed("udp-now", "drop-udp")
    await stack.data_client.delete_acl("udp-now")
    await stack.settle()
    assert not stack.acl_installed("udp-now", "drop-udp")
    assert delivered(lab, tally, PORT) == PACKETS


async def test_stored_acls_are_enforced_after_a_restart(stack: Stack, lab: Lab, pki_dir: Path, tmp_path: Path):
    await stack.data_client.create_acls([drop_udp_acl(lab, "udp-now", "immediate")])
    await stack.settle()
    await stack.signal.stop()
    stack.lab.router.run(["nft", "delete", "table", "netdev", stack.table])  # actuators forget across restarts
    stack.signal = await start_signal_server(
        stack.config, bind=[("127.0.0.1", free_port())], data_channel=stack.data.app[CORE_KEY]
    )
    assert stack.signal.acls is not None and stack.signal.acls.enforced(stack.cuid) == [f"{stack.cuid}/udp-now"]
    assert stack.acl_installed("udp-now", "drop-udp")


async def test_expired_acl_is_withdrawn(lab: Lab, table_name: str, pki_dir: Path, tmp_path: Path):
    stack = await build_stack(lab, table_name, pki_dir, tmp_path, DataChannelSettings(lifetime=2.0))
    try:
        await stack.data_client.create_acls([drop_udp_acl(lab, "short", "immediate")])
        await stack.settle()
        assert stack.acl_installed("short", "drop-udp")
        # Nobody refreshes it: at the end of its lifetime (RFC 8783 §3.5) enforcement stops without any request.
        assert stack.signal.acls is not None
        await wait_until(lambda: not stack.signal.acls.enforced(stack.cuid), 10, "the expired ACL to go")
        await stack.settle()
        assert not stack.acl_installed("short", "drop-udp")
    finally:
        await close_stack(stack)


async def test_rfc9133_acl_list_switches_activation_over_the_signal_channel(stack: Stack, tally: VictimTally):
    lab = stack.lab
    await stack.data_client.create_acls([drop_udp_acl(lab, "udp-x", "deactivate")])
    assert (await stack.signal_request(aiocoap.PUT, 1, mitigation_body(lab))).code == aiocoap.CREATED
    assert not stack.acl_installed("udp-x", "drop-udp")  # deactivated: a mitigation does not enforce it

    immediate = [{"acl-name": "udp-x", "activation-type": "immediate"}]
    created = await stack.signal_request(aiocoap.PUT, 2, mitigation_body(lab, **{ACL_LIST: immediate}))
    assert created.code == aiocoap.CREATED
    assert decode_signal(created.payload) == {SCOPE: {"scope": [{"mid": 2, "lifetime": 3600}]}}
    assert stack.acl_installed("udp-x", "drop-udp")
    assert delivered(lab, tally, PORT) == 0
    assert delivered(lab, tally, OTHER_PORT) == PACKETS

    # §3.2.1: the new activation type outlives the mitigation request that carried it.
    assert (await stack.signal_request(aiocoap.DELETE, 2)).code == aiocoap.DELETED
    await wait_until(lambda: not stack.signal.service.core.mitigations(), 10, "the mitigation to end")
    await stack.settle()
    assert stack.acl_installed("udp-x", "drop-udp")

    deactivate = [{"acl-name": "udp-x", "activation-type": "deactivate"}]
    changed = await stack.signal_request(aiocoap.PUT, 3, mitigation_body(lab, **{ACL_LIST: deactivate}))
    assert changed.code == aiocoap.CREATED
    assert not stack.acl_installed("udp-x", "drop-udp")
    assert delivered(lab, tally, PORT) == PACKETS
    assert (await stack.data_client.acls("udp-x"))[0]["activation-type"] == "deactivate"

    # A data-channel change during the mitigation: enforced at once, and shown to the signal channel (§3.2.1).
    await stack.data_client.set_activation("udp-x", "activate-when-mitigating")
    await stack.settle()
    assert stack.acl_installed("udp-x", "drop-udp")
    shown = decode_signal((await stack.signal_request(aiocoap.GET, 3)).payload)[SCOPE]["scope"][0][ACL_LIST]
    assert shown == [{"acl-name": "udp-x", "activation-type": "activate-when-mitigating"}]

    unknown = [{"acl-name": "no-such-acl", "activation-type": "immediate"}]
    refused = await stack.signal_request(aiocoap.PUT, 4, mitigation_body(lab, **{ACL_LIST: unknown}))
    assert refused.code == aiocoap.NOT_FOUND
