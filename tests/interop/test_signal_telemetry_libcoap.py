"""libcoap's coap-client (4.3.1) sets up DOTS telemetry (RFC 9244 §7) on our server over DTLS and TLS: the RFC's
Figure 4 body is created (2.01) and read back, a percentile the server does not accept gets 4.22 and is not stored.
Real binaries, real sockets, real SQLite."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from opendots.config import ServerConfig
from opendots.model import decode_telemetry
from tests.helpers import FIXTURES
from tests.helpers.libcoap import CoapClient

pytestmark = pytest.mark.interop
SETUP = "ietf-dots-telemetry:telemetry-setup"
SCHEMES = ["coaps", "coaps+tcp"]
FIGURE4 = json.loads((FIXTURES / "rfc9244" / "fig04-telemetry-configuration.json").read_text())


def tm_setup_uri(running: Any, config: ServerConfig, scheme: str) -> str:
    """/tm-setup/cuid=… of the test client (the cuid its certificate gives) on the DTLS or the TLS endpoint."""
    addresses = running.endpoint.dtls_addresses if scheme == "coaps" else running.endpoint.tls_addresses
    host, port = addresses[0][:2]
    cuid = next(c.cuid for c in config.clients if c.name == "client")
    return f"{scheme}://{host}:{port}/.well-known/dots/tm-setup/cuid={cuid}"


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_rfc9244_figure4_telemetry_configuration_is_created_and_read_back(
    pki_dir: Path, tmp_path: Path, signal_server, scheme: str
):
    running, config = signal_server
    client = CoapClient(pki_dir, tmp_path)
    uri = tm_setup_uri(running, config, scheme)
    cuid = uri.rpartition("cuid=")[2]

    _, printed = await client.run("-m", "put", f"{uri}/tsid=123", payload=FIGURE4)
    assert running.resource.requests[("PUT", "tm-setup", "2.01")] == 1, printed  # §7.1.2: 2.01 (Created)

    response, _ = await client.run("-m", "get", f"{uri}/tsid=123")  # §7.1.3
    assert decode_telemetry(response) == {SETUP: {"telemetry": [{"tsid": 123, **FIGURE4[SETUP]["telemetry"][0]}]}}
    stored = running.store.dump()["signal_telemetry_setups"]
    assert [row[:3] for row in stored] == [(cuid, 123, "client")]

    too_high = copy.deepcopy(FIGURE4)
    too_high[SETUP]["telemetry"][0]["current-config"]["high-percentile"] = "100.00"  # above max-config-values
    _, printed = await client.run("-m", "put", f"{uri}/tsid=124", payload=too_high)
    assert printed.startswith("4.22"), printed  # §7.1.2: 4.22 (Unprocessable Entity)
    assert running.store.dump()["signal_telemetry_setups"] == stored
