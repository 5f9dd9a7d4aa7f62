"""Interop: libcoap 4.3.1's coap-client (Debian's) configures RFC 9362 robust-transmission attributes on our
signal server over DTLS and reads them back; the server's ranges come from server.toml's [signal] table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal
from opendots.signal.server.shell.run import start_signal_server
from tests.conftest import free_port
from tests.helpers import FIXTURES
from tests.helpers.libcoap import CoapClient

CONFIG = "ietf-dots-signal-channel:signal-config"
ROBUST = "ietf-dots-robust-trans"


@pytest.fixture
async def server(pki_dir: Path, tmp_path: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.db = tmp_path / "signal.db"
    config.signal = {"max_payloads_limits": [1, 30], "non_partial_timeout_limits": [20, 300]}
    running = await start_signal_server(config, bind=[("127.0.0.1", free_port())], tls=False)
    yield running
    await running.stop()


async def test_libcoap_puts_rfc9362_figure2_and_gets_the_attributes_back(pki_dir: Path, tmp_path: Path, server):
    host, port = server.endpoint.dtls_addresses[0][:2]
    base = f"coaps://{host}:{port}/.well-known/dots/config"
    body = json.loads((FIXTURES / "rfc9362" / "fig02-config-put-robust-transmission.json").read_text())
    body[CONFIG]["idle-config"][f"{ROBUST}:non-partial-timeout"] = {"current-value-decimal": "120.00"}
    client = CoapClient(pki_dir, tmp_path)

    _, printed = await client.run("-m", "put", f"{base}/sid=5", payload=body)
    assert printed == "", printed  # 2.01: coap-client prints nothing for a success without a body
    assert len(server.store.dump()["signal_session_configs"]) == 1

    response, _ = await client.run("-m", "get", f"{base}/sid=5")
    got = decode_signal(response)[CONFIG]  # validated against ietf-dots-robust-trans
    for set_name in ("mitigating-config", "idle-config"):
        assert got[set_name][f"{ROBUST}:max-payloads"] == {"max-value": 30, "min-value": 1, "current-value": 15}
        assert got[set_name][f"{ROBUST}:non-receive-timeout"]["current-value-decimal"] == "4.00"
    assert got["idle-config"][f"{ROBUST}:non-partial-timeout"] == {
        "max-value-decimal": "300.00",
        "min-value-decimal": "20.00",
        "current-value-decimal": "120.00",
    }
    assert got["mitigating-config"][f"{ROBUST}:non-partial-timeout"]["current-value-decimal"] == "223.00"


async def test_libcoap_gets_4_22_naming_an_out_of_range_attribute(pki_dir: Path, tmp_path: Path, server):
    host, port = server.endpoint.dtls_addresses[0][:2]
    body = {CONFIG: {"mitigating-config": {f"{ROBUST}:max-payloads": {"current-value": 31}}}}
    uri = f"coaps://{host}:{port}/.well-known/dots/config/sid=6"
    _, printed = await CoapClient(pki_dir, tmp_path).run("-m", "put", uri, payload=body)
    assert printed.startswith("4.22 "), printed  # libcoap prints error responses with their diagnostic
    assert f"mitigating-config/{ROBUST}:max-payloads=31" in printed
    assert server.store.dump()["signal_session_configs"] == []
