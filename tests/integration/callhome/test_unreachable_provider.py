"""RFC 9066 Call Home: a CPE dialing a provider that never answers over DTLS (a silent UDP socket: the handshake
times out) or refuses (a closed port: ICMP port unreachable) keeps re-dialing, says why in a warning, and leaves no
asyncio future whose exception nobody retrieved ("Future exception was never retrieved", logged when such a future
is collected) once the handshake deadline has passed and the session given up."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from pathlib import Path

import pytest

from opendots.callhome.cpe import ProviderAddress, start_cpe
from opendots.transport.dtls_client import DtlsClientInterface
from tests.conftest import free_port
from tests.helpers.callhome import FAST, cpe_config

pytestmark = pytest.mark.timeout(60)


async def test_dialing_a_provider_that_never_answers_over_dtls_leaves_no_unretrieved_future(
    pki_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(DtlsClientInterface, "handshake_timeout", 2.0)  # past FAST's dial timeout (1 s)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    providers = [
        ProviderAddress("127.0.0.1", "client", silent.getsockname()[1], "dtls"),
        ProviderAddress("127.0.0.1", "client", free_port(), "dtls"),  # nothing bound: refused
    ]
    caplog.set_level(logging.WARNING)
    cpe = await start_cpe(cpe_config(pki_dir, tmp_path), providers, policy=FAST)
    try:
        for _ in range(6):  # several dials, each handshake given up (2 s) after its dial timed out (1 s)
            await asyncio.sleep(1)
            gc.collect()
        assert any("DTLS handshake" in r.getMessage() for r in caplog.records), "no handshake was given up"
        assert sum(dialer.failures for dialer in cpe.dialers) >= 4
    finally:
        await cpe.stop()
        silent.close()
    gc.collect()
    await asyncio.sleep(0.1)
    problems = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert problems == []
