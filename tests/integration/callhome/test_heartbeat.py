"""RFC 9066 §5.2.1 over real (D)TLS sessions: the CPE keeps its session while it hears the provider, however many of
its own keepalives go unanswered (an outgoing attack may saturate its uplink), concludes it lost only after a
whole missing-heartbeat window without traffic, then dials a new one; and it offers a heartbeat-interval that keeps
NAT bindings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiocoap
import pytest

from opendots.callhome.cpe import start_cpe
from opendots.mitigate.base import LoggingMitigator
from tests.helpers.callhome import FAST, cpe_config, start_provider, until

pytestmark = pytest.mark.parametrize("transport", ["tls", "dtls"])
CONFIG = "ietf-dots-signal-channel:signal-config"


async def test_unanswered_keepalives_do_not_end_a_session_the_provider_keeps_talking_over_rfc9066_5_2_1(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    # Every keepalive "times out" (no answer can come within 1 µs): only the provider's own traffic is heard.
    deaf = replace(FAST, ping_timeout=1e-6, loss_after=1.5)
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), [address], mitigator=LoggingMitigator(), policy=deaf)
    dialer = cpe.dialers[0]
    try:
        session = await provider.wait_for("home")
        for _ in range(12):  # 3.6 s of requests: more than twice the window
            assert (await provider.status("home")).code in ("2.05", "4.04")
            await asyncio.sleep(0.3)
        assert dialer.missed_pings >= 5
        assert dialer.sessions == 1 and provider.sessions.get("home") is session  # the same session throughout
        await provider.wait_for("home", timeout=15, previous=session)  # quiet: lost after the window, re-dialed
        await until(lambda: dialer.sessions == 2)  # the CPE's side of that new session
        assert "nothing from the provider" in (dialer.last_error or ""), dialer.last_error
    finally:
        await cpe.stop()
        await provider.stop()


async def test_the_cpe_offers_a_heartbeat_interval_within_half_its_nat_binding_timeout_rfc9066_5_2_1(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    config = cpe_config(pki_dir, tmp_path)
    config.signal["nat_binding_timeout"] = 20
    cpe = await start_cpe(config, [address], policy=FAST)
    try:
        await provider.wait_for("home")
        answer = await provider.request("home", aiocoap.GET, ("config",))
        assert answer.code == "2.05", answer
        for kind in ("idle-config", "mitigating-config"):
            interval = answer.body[CONFIG][kind]["heartbeat-interval"]
            assert interval["current-value"] == 10 and interval["max-value"] == 10, interval
        too_long = {"heartbeat-interval": {"current-value": 60}}
        body = {CONFIG: {"mitigating-config": too_long, "idle-config": too_long}}
        refused = await provider.request("home", aiocoap.PUT, ("config", "sid=1"), body)
        assert refused.code == "4.22", refused  # RFC 9132 §4.5.2: outside the acceptable range
    finally:
        await cpe.stop()
        await provider.stop()


async def test_after_a_restart_of_the_provider_the_cpe_dials_again(
    pki_dir: Path, tmp_path: Path, transport: str
) -> None:
    provider, address = await start_provider(pki_dir, transport)
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), [address], policy=FAST)
    dialer = cpe.dialers[0]
    try:
        await cpe.wait_connected()
        await provider.stop()
        provider, _ = await start_provider(pki_dir, transport, port=address.port)
        await until(lambda: dialer.sessions >= 2 and dialer.remote is not None, timeout=15)
        await provider.wait_for("home", timeout=15)
        assert (await provider.status("home")).code == "4.04"  # the new session carries requests: nothing held
    finally:
        await cpe.stop()
        await provider.stop()
