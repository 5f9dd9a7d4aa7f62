"""A server as `opendots server` builds it with its [dashboard] on, a client's signal channel to it, and a real
headless Chromium driven by Selenium (skipped, saying why, where Debian's chromium and chromium-driver are absent)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from pathlib import Path

import aiocoap
import pytest

from opendots.app import start_server
from opendots.config import DashboardConfig, TlsFiles
from opendots.model import encode_signal
from opendots.pki.setup import init_pki
from opendots.transport import create_client_context
from tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "console-test-token-0123456789abcdef"
SCOPE = "ietf-dots-signal-channel:mitigation-scope"


@pytest.fixture
async def console_server(tmp_path: Path):
    server_config, _ = init_pki(tmp_path)
    server_config.listen = ["127.0.0.1"]
    server_config.signal_port = free_port()
    server_config.data_port = free_port(socket.SOCK_STREAM)
    server_config.admin_socket = Path("/tmp") / f"od-console-{uuid.uuid4().hex[:10]}.sock"
    (tmp_path / "dashboard.token").write_text(TOKEN + "\n")
    server_config.dashboard = DashboardConfig(
        f"127.0.0.1:{free_port(socket.SOCK_STREAM)}", tmp_path / "dashboard.token"
    )
    server_config.audit_file = tmp_path / "audit.jsonl"
    server_config.save(tmp_path / "server.toml")
    running = await start_server(server_config, config_path=tmp_path / "server.toml")
    try:
        yield running, tmp_path
    finally:
        await running.stop()


class SignalClient:
    """The client of client.toml on a DTLS session to the server: PUTs mitigation requests (RFC 9132 §4.4.1)."""

    def __init__(self, context: aiocoap.Context, port: int, cuid: str) -> None:
        self.context, self.port, self.cuid = context, port, cuid

    async def request_mitigation(self, mid: int, prefix: str, lifetime: int = 3600) -> None:
        body = {SCOPE: {"scope": [{"target-prefix": [prefix], "lifetime": lifetime}]}}
        message = aiocoap.Message(
            code=aiocoap.PUT,
            uri=f"coaps://127.0.0.1:{self.port}/.well-known/dots/mitigate/cuid={self.cuid}/mid={mid}",
            payload=encode_signal(body),
            content_format=271,
        )
        response = await asyncio.wait_for(self.context.request(message).response, 15)
        assert response.code == aiocoap.CREATED, response


@pytest.fixture
async def signal_client(console_server):
    running, tmp_path = console_server
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")
    context = await create_client_context(tls, server_name="localhost")
    try:
        yield SignalClient(context, running.config.signal_port, running.config.clients[0].cuid)
    finally:
        await context.shutdown()


@pytest.fixture
def browser(tmp_path: Path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (./run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    user_data = tmp_path / "chromium-profile"
    options.add_argument(f"--user-data-dir={user_data}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(user_data, ignore_errors=True)
