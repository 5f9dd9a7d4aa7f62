"""`opendots server` as a real process: it serves, answers libcoap, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from opendots.cli.certs import init_pki
from opendots.model import decode_signal, encode_signal
from opendots.store.signal import SqliteSignalStore
from tests.conftest import free_port, require_binary
from tests.helpers.processes import opendots_server
from tests.helpers.signal_harness import SCOPE

pytestmark = pytest.mark.interop


def test_server_command_serves_and_stops(tmp_path: Path):
    client_binary = require_binary("coap-client-openssl")
    port = free_port()
    config, _ = init_pki(
        tmp_path
    )  # the file keeps the default port 4646, listen "::" and opendots.db: flags override them
    flags = ["--signal-port", str(port), "--listen", "127.0.0.1", "--db", str(tmp_path / "flag.db"), "--no-data"]
    process = opendots_server(tmp_path / "server.toml", "--no-tls", *flags)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "listening" in line, line
        cuid = next(c.cuid for c in config.clients if c.name == "client")
        body = tmp_path / "put.cbor"
        body.write_bytes(encode_signal({SCOPE: {"scope": [{"target-prefix": ["203.0.113.0/28"], "lifetime": 60}]}}))
        output = tmp_path / "out.cbor"
        uri = f"coaps://127.0.0.1:{port}/.well-known/dots/mitigate/cuid={cuid}/mid=1"
        pki = ["-c", str(tmp_path / "client.crt"), "-j", str(tmp_path / "client.key"), "-C", str(tmp_path / "ca.crt")]
        result = subprocess.run(
            [client_binary, *pki, "-B", "10", "-m", "put", "-t", "271", "-f", str(body), "-o", str(output), uri],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert decode_signal(output.read_bytes()) == {SCOPE: {"scope": [{"mid": 1, "lifetime": 60}]}}
    finally:
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        process.wait(timeout=20)
    assert process.returncode == 0
    assert time.monotonic() - started < 20
    # The acknowledged mitigation is on disk for the next start.
    assert not (tmp_path / "opendots.db").exists()
    store = SqliteSignalStore.open(tmp_path / "flag.db")
    assert [(row[0], row[1]) for row in store.dump()["signal_mitigations"]] == [(cuid, 1)]
    store.close()
