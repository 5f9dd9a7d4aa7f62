"""libcoap's coap-client (4.3.1) sends RFC 9244 §8.2 pre-or-ongoing-mitigation telemetry to our server over DTLS
and TLS: the RFC's Figure 36 body is accepted (2.04) and read back, an observer of the client's /tm resource hears
a newer tmid replace it and the DELETE of Figure 38 end it (another client sees and hears none of it), thousands of
top talkers get 4.22 and nothing is stored. Real binaries, real sockets, real SQLite."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from opendots.config import ServerConfig
from opendots.model import decode_telemetry
from tests.helpers import FIXTURES
from tests.helpers.libcoap import CoapClient

pytestmark = pytest.mark.interop
TM = "ietf-dots-telemetry:telemetry"
PRE = "pre-or-ongoing-mitigation"
SCHEMES = ["coaps", "coaps+tcp"]
FIGURE36 = json.loads((FIXTURES / "rfc9244" / "fig36-pre-or-ongoing-mitigation-telemetry.json").read_text())


def tm_uri(running: Any, config: ServerConfig, scheme: str, name: str = "client") -> str:
    """/tm/cuid=… of test client NAME (the cuid its certificate gives) on the DTLS or the TLS endpoint."""
    addresses = running.endpoint.dtls_addresses if scheme == "coaps" else running.endpoint.tls_addresses
    host, port = addresses[0][:2]
    cuid = next(c.cuid for c in config.clients if c.name == name)
    return f"{scheme}://{host}:{port}/.well-known/dots/tm/cuid={cuid}"


def bodies(data: bytes) -> list[dict[str, Any]]:
    """Every CBOR item in DATA (coap-client -o appends each notification), each decoded and validated."""
    stream, items = io.BytesIO(data), []
    while stream.tell() < len(data):
        start = stream.tell()
        cbor2.CBORDecoder(stream).decode()
        items.append(decode_telemetry(data[start : stream.tell()]))
    return items


def with_tmid(body: dict[str, Any], tmid: int) -> dict[str, Any]:
    return {TM: {PRE: [{"tmid": tmid, **entry} for entry in body[TM][PRE]]}}


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_rfc9244_figure36_telemetry_is_accepted_read_back_observed_and_deleted(
    pki_dir: Path, tmp_path: Path, signal_server, scheme: str
):
    running, config = signal_server
    client = CoapClient(pki_dir, tmp_path)
    uri = tm_uri(running, config, scheme)
    cuid = uri.rpartition("cuid=")[2]

    _, printed = await client.run("-m", "put", f"{uri}/tmid=123", payload=FIGURE36)
    assert running.resource.requests[("PUT", "tm", "2.04")] == 1, printed  # §8.2: 2.04 (Changed)
    response, _ = await client.run("-m", "get", f"{uri}/tmid=123")
    assert bodies(response) == [with_tmid(FIGURE36, 123)]
    assert [row[:3] for row in running.store.dump()["signal_telemetry_reports"]] == [(cuid, 123, "client")]

    # Another client sees nothing of it, and observes its own /tm meanwhile.
    stranger = CoapClient(pki_dir, tmp_path / "other", stem="other")
    (tmp_path / "other").mkdir()
    _, printed = await stranger.run("-m", "get", uri)
    assert printed.startswith("4.04"), printed
    own_uri = tm_uri(running, config, scheme, "other")
    await stranger.run("-m", "put", f"{own_uri}/tmid=1", payload=FIGURE36)

    # Observe all the client's tmids (Figure 41); a newer tmid on the same target replaces 123, then Figure 38.
    observer, notifications = await client.start("-m", "get", "-s", "5", "-B", "10", uri)
    watcher, watched = await stranger.start("-m", "get", "-s", "5", "-B", "10", own_uri)
    for _ in range(100):  # until their sessions and registrations are up (slower on a loaded machine)
        if running.resource.observer_count("client") == 1 and running.resource.observer_count("other") == 1:
            break
        await asyncio.sleep(0.05)
    assert running.resource.observer_count("client") == 1
    assert running.resource.observer_count("other") == 1
    newer = json.loads(json.dumps(FIGURE36))
    newer[TM][PRE][0]["attack-detail"][0]["attack-severity"] = "medium"
    await client.run("-m", "put", f"{uri}/tmid=124", payload=newer)
    await client.run("-m", "delete", uri)
    stdout, stderr = await asyncio.wait_for(observer.communicate(), 30)
    assert observer.returncode == 0, stderr.decode(errors="replace")
    assert b"4.04" in stdout + stderr  # the last notification: nothing left to observe (RFC 7641 §3.2)
    seen = bodies(notifications.read_bytes())  # the 4.04 that ends the observation has no CBOR body
    assert seen == [with_tmid(FIGURE36, 123), with_tmid(newer, 124)]
    assert running.resource.observer_count("client") == 0
    await asyncio.wait_for(watcher.communicate(), 30)
    assert bodies(watched.read_bytes()) == [with_tmid(FIGURE36, 1)]  # its registration answer: nothing of the other's
    (kept,) = running.store.dump()["signal_telemetry_reports"]
    assert kept[2] == "other"

    listed = [{"source-prefix": f"10.{i // 256}.{i % 256}.0/24"} for i in range(2000)]
    flood = json.loads(json.dumps(FIGURE36))
    flood[TM][PRE][0]["attack-detail"][0]["top-talker"] = {"talker": listed}
    _, printed = await client.run("-m", "put", f"{uri}/tmid=200", payload=flood)
    assert printed.startswith("4.22"), printed  # more than max_telemetry_top_talkers
    assert running.store.dump()["signal_telemetry_reports"] == [kept]
