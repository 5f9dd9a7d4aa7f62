"""`opendots server` as a real process serves both channels: the data channel (HTTPS) and the signal channel (DTLS)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiocoap

from opendots.cli.certs import init_pki
from opendots.config import ServerConfig, TlsFiles
from opendots.data.client import DataChannelClient
from opendots.model import decode_signal, encode_signal
from opendots.store.data_channel import SqliteDataChannelStore
from opendots.store.sqlite import SqliteDatabase
from opendots.transport import create_client_context
from tests.conftest import free_port
from tests.helpers import REPOSITORY

ROOT = REPOSITORY
SCOPE = "ietf-dots-signal-channel:mitigation-scope"


async def test_server_process_answers_the_data_and_the_signal_channel(tmp_path: Path):
    signal_port, data_port = free_port(), free_port(socket.SOCK_STREAM)
    init_pki(tmp_path, signal_port=signal_port)
    config = ServerConfig.load(tmp_path / "server.toml")
    config.listen = ["127.0.0.1"]
    config.save(tmp_path / "server.toml")
    command = "from opendots.cli.server import server; server()"
    arguments = ["-c", str(tmp_path / "server.toml"), "--no-tls", "--data-port", str(data_port)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        command,
        *arguments,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert "signal channel listening" in line and "data channel listening" in line, line
        async with DataChannelClient(f"https://127.0.0.1:{data_port}", tls, "localhost") as data:
            await data.register()
            acl = {"name": "web", "activation-type": "deactivate", "aces": {"ace": [drop_all()]}}
            await data.create_acls([acl])
            assert [a["name"] for a in await data.acls()] == ["web"]
            cuid = data.cuid
        coap = await create_client_context(tls, server_name="localhost")
        try:
            body = {SCOPE: {"scope": [{"target-prefix": ["203.0.113.0/28"], "lifetime": 60}]}}
            message = aiocoap.Message(
                code=aiocoap.PUT,
                uri=f"coaps://127.0.0.1:{signal_port}/.well-known/dots/mitigate/cuid={cuid}/mid=1",
                payload=encode_signal(body),
                content_format=271,
            )
            response = await asyncio.wait_for(coap.request(message).response, 15)
            assert response.code == aiocoap.CREATED
            assert decode_signal(response.payload) == {SCOPE: {"scope": [{"mid": 1, "lifetime": 60}]}}
        finally:
            await coap.shutdown()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0
    # One database file holds both channels' state.
    stored = SqliteDataChannelStore(SqliteDatabase(config.db)).list_acls(cuid, 0.0)
    assert [entry.body["name"] for entry in stored] == ["web"]


def drop_all() -> dict:
    return {
        "name": "all",
        "matches": {"ipv4": {"destination-ipv4-network": "203.0.113.0/24"}},
        "actions": {"forwarding": "drop"},
    }
