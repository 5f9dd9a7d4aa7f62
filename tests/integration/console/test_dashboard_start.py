"""`opendots server` with a [dashboard] table: it serves the console only with a usable token file, says where it
listens, and an action takes a JSON body only (a cross-site form cannot post one)."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from opendots.app import start_server
from opendots.config import ConfigError, DashboardConfig
from opendots.pki.setup import init_pki
from tests.conftest import free_port
from tests.integration.console.conftest import TOKEN


async def test_without_a_usable_token_file_the_server_does_not_start_and_nothing_stays_listening(tmp_path: Path):
    config, _ = init_pki(tmp_path)
    config.listen = ["127.0.0.1"]
    config.signal_port = free_port()
    config.data_port = free_port(socket.SOCK_STREAM)
    console_port = free_port(socket.SOCK_STREAM)
    config.dashboard = DashboardConfig(f"127.0.0.1:{console_port}", tmp_path / "absent.token")
    with pytest.raises(ConfigError, match=r"token_file .*absent\.token"):
        await start_server(config)
    (tmp_path / "short.token").write_text("short\n")
    config.dashboard = DashboardConfig(f"127.0.0.1:{console_port}", tmp_path / "short.token")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        await start_server(config)
    for port, kind in ((config.data_port, socket.SOCK_STREAM), (console_port, socket.SOCK_STREAM)):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind(("127.0.0.1", port))  # free again: what had started was stopped


async def test_the_console_says_where_it_listens_and_takes_actions_as_json_only(console_server):
    running, _ = console_server
    host, port = running.console.addresses[0][:2]
    assert f"dashboard on http://{host}:{port}/" in running.describe()
    url = f"http://{host}:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/login", data={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 303
            cookie = response.cookies["opendots_console"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        headers = {"Cookie": f"opendots_console={cookie.value}"}
        form = {"cuid": running.config.clients[0].cuid, "mid": "1", "status": "attack-stopped"}
        async with http.post(url + "/action/report-status", data=form, headers=headers) as response:
            assert response.status == 415
        body = {"cuid": running.config.clients[0].cuid, "mid": 1, "status": "attack-stopped"}
        async with http.post(url + "/action/report-status", json=body, headers=headers) as response:
            assert response.status == 404  # authenticated, well-formed: no such mitigation (the admin socket's 4.04)
            assert "no mitigation" in (await response.json())["error"]
        async with http.post(url + "/action/report-status", json={**body, "status": "x"}, headers=headers) as r:
            assert r.status == 400 and "'status' must be one of" in (await r.json())["error"]
