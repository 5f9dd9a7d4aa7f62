"""libcoap's coap-client (4.3.1, an independent CoAP stack) against our DOTS signal-channel server.

Over DTLS (coaps://) and TLS (coaps+tcp://), with the test client's certificate: a mitigation is created, read
back, observed while a second request withdraws it, and deleted; a session configuration is written and read
back; another client's certificate cannot see any of it. Real binaries, real sockets, real SQLite.
(test_signal_server_libcoap_basics.py covers PUT/GET/DELETE over DTLS and malformed CBOR; this extends it.)
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_signal
from tests.helpers.libcoap import CoapClient
from tests.helpers.signal_harness import CONFIG, SCOPE, figure

pytestmark = pytest.mark.interop
SCHEMES = ["coaps", "coaps+tcp"]


def bodies(data: bytes) -> list[dict[str, Any]]:
    """Every CBOR item in DATA (coap-client -o appends each notification), each decoded and validated."""
    stream, items = io.BytesIO(data), []
    while stream.tell() < len(data):
        start = stream.tell()
        cbor2.CBORDecoder(stream).decode()
        items.append(decode_signal(data[start : stream.tell()]))
    return items


def base_uri(running: Any, scheme: str) -> str:
    addresses = running.endpoint.dtls_addresses if scheme == "coaps" else running.endpoint.tls_addresses
    host, port = addresses[0][:2]
    return f"{scheme}://{host}:{port}/.well-known/dots"


def owner_cuid(config: ServerConfig, name: str = "client") -> str:
    return next(c.cuid for c in config.clients if c.name == name)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_mitigation_put_get_observe_delete(pki_dir: Path, tmp_path: Path, signal_server, scheme: str):
    running, config = signal_server
    client = CoapClient(pki_dir, tmp_path)
    uri = f"{base_uri(running, scheme)}/mitigate/cuid={owner_cuid(config)}/mid=123"

    response, _ = await client.run("-m", "put", uri, payload=figure("figure07"))
    assert bodies(response) == [figure("figure10")]  # RFC 9132 Figure 10: mid 123, lifetime 3600

    response, _ = await client.run("-m", "get", uri)
    (body,) = bodies(response)
    (entry,) = body[SCOPE]["scope"]
    assert entry["mid"] == 123 and entry["status"] == "attack-mitigation-in-progress"
    assert entry["target-prefix"] == ["2001:db8:6401::1/128", "2001:db8:6401::2/128"]
    assert 0 < entry["lifetime"] <= 3600

    # Observe the mitigation, then withdraw it with a second request: the observer gets the change.
    observer, notifications = await client.start("-m", "get", "-s", "5", "-B", "10", uri)
    for _ in range(100):  # until its session and registration are up (slower on a loaded machine)
        if running.resource.observer_count("client") == 1:
            break
        await asyncio.sleep(0.05)
    assert running.resource.observer_count("client") == 1
    await client.run("-m", "delete", uri)
    _, stderr = await asyncio.wait_for(observer.communicate(), 30)
    assert observer.returncode == 0, stderr.decode(errors="replace")
    seen = [item[SCOPE]["scope"][0] for item in bodies(notifications.read_bytes())]
    assert seen[0]["status"] == "attack-mitigation-in-progress"  # the answer to the registration
    assert "dots-client-withdrawn-mitigation" in [entry["status"] for entry in seen[1:]], seen

    # The withdrawn mitigation is kept for its active-but-terminating period (§4.4.4), then it is gone.
    (stored,) = running.store.dump()["signal_mitigations"]
    assert stored[:2] == (owner_cuid(config), 123)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_session_config_put_and_get(pki_dir: Path, tmp_path: Path, signal_server, scheme: str):
    running, _ = signal_server
    client = CoapClient(pki_dir, tmp_path)
    wanted = figure("figure23")
    wanted[CONFIG]["mitigating-config"]["heartbeat-interval"]["current-value"] = 45

    _, printed = await client.run("-m", "put", f"{base_uri(running, scheme)}/config/sid=77", payload=wanted)
    assert not printed.startswith(("4.", "5.")), printed

    response, _ = await client.run("-m", "get", f"{base_uri(running, scheme)}/config")
    (body,) = bodies(response)
    assert "sid" not in body[CONFIG]  # RFC 9132 Figure 20: the GET answer carries values, not the sid
    assert body[CONFIG]["mitigating-config"]["heartbeat-interval"]["current-value"] == 45
    assert [row[0] for row in running.store.dump()["signal_session_configs"]] == ["client"]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_another_client_cannot_see_the_mitigation(pki_dir: Path, tmp_path: Path, signal_server, scheme: str):
    running, config = signal_server
    uri = f"{base_uri(running, scheme)}/mitigate/cuid={owner_cuid(config)}/mid=7"
    await CoapClient(pki_dir, tmp_path).run("-m", "put", uri, payload=figure("figure07"))
    before = running.store.dump()

    stranger = CoapClient(pki_dir, tmp_path, stem="other")
    response, printed = await stranger.run("-m", "get", uri)
    assert printed.startswith("4.04"), (printed, response)
    await stranger.run("-m", "delete", uri)  # 2.02 (§4.4.4: another client's mitigation "does not exist")
    response, printed = await stranger.run("-m", "get", f"{base_uri(running, scheme)}/mitigate")
    assert b"2001:db8:6401" not in response and "2001:db8:6401" not in printed
    assert running.store.dump() == before
