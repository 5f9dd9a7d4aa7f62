"""What a new operator following the README tripped on (issue 13), each as a one-line error or a sentence in words:
credentials checked before any one-shot `client` or `data` verb connects (missing, mismatched, expired), the
data channel's certificate failure said as the signal channel says it, `-c` for the FastNetMon hook too,
connection failures and agent logs without Python reprs, and a mid replaced at the server forgotten by the
client (RFC 9132 §4.4.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import aiocoap.error
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from opendots.cli.main import cli
from opendots.config import ClientConfig
from opendots.pki.setup import init_pki
from opendots.signal.client.core import events as ev
from opendots.signal.client.core.events import describe_conflict
from opendots.signal.client.core.scope import MitigationScope
from opendots.signal.client.shell.connect import _reason
from opendots.store.client_state import ClientStateStore
from opendots.transport.dtls import DtlsError
from tests.helpers import REPOSITORY
from tests.helpers.cli import EX_CONFIG, one_line_error
from tests.helpers.client_core import CUID, T0, connected_core, events

ROOT = REPOSITORY
EX_UNAVAILABLE = 69


def _expired_copy(directory: Path, stem: str) -> Path:
    """STEM's certificate re-issued by the same CA, valid until yesterday."""
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    old = x509.load_pem_x509_certificate((directory / f"{stem}.crt").read_bytes())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca.subject)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10))
        .not_valid_after(now - dt.timedelta(days=1))
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    path = directory / f"{stem}-expired.crt"
    path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))  # type: ignore[arg-type]
    return path


def _client_toml(directory: Path, **tls: str) -> str:
    """client.toml of a `certs init` directory with some [tls] files changed and no agent to answer."""
    config = ClientConfig.load(directory / "client.toml")
    config.tls = dataclasses.replace(config.tls, **{role: directory / name for role, name in tls.items()})
    config.control_socket = directory / "no-agent.sock"
    path = directory / f"client-{'-'.join(tls) or 'plain'}.toml"
    config.save(path)
    return str(path)


@pytest.mark.parametrize(
    ("tls", "fragment"),
    [
        ({"key": "absent.key"}, "[tls] key: no such file"),
        ({"cert": "absent.crt"}, "[tls] cert: no such file"),
        ({"key": "other.key"}, "does not match the certificate"),
        ({"cert": "client-expired.crt"}, "expired on "),
    ],
)
@pytest.mark.parametrize("verb", [["client", "status"], ["data", "alias", "list"]])
def test_one_shot_verbs_check_their_credentials_first_and_say_which_file_is_wrong(
    tmp_path: Path, tls: dict[str, str], fragment: str, verb: list[str]
) -> None:
    """Before: an OpenSSL traceback (key), 'cannot reach the data channel: [Errno 2]' (69), 'Server
    disconnected' (an expired certificate on the data channel)."""
    init_pki(tmp_path, client_names=["other"])
    _expired_copy(tmp_path, "client")
    result = CliRunner().invoke(cli, [*verb, "-c", _client_toml(tmp_path, **tls)])
    one_line_error(result, EX_CONFIG, fragment)


def test_the_fastnetmon_hook_takes_dash_c_and_names_a_bad_key(tmp_path: Path) -> None:
    init_pki(tmp_path, client_names=["other"])
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "opendots",
            "fastnetmon-hook",
            "-c",
            _client_toml(tmp_path, key="other.key"),
            "203.0.113.5",
            "incoming",
            "1000",
            "ban",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert process.returncode == 64, process.stderr  # EX_USAGE: the hook's code for a configuration problem
    assert b"does not match the certificate" in process.stderr and b"arguments" not in process.stderr
    assert b"Traceback" not in process.stderr


async def test_a_data_channel_certificate_failure_says_which_names_it_holds_and_which_was_expected(
    app_server,
) -> None:
    """As the signal channel says it (opendots.pki.verify), not aiohttp's 'Cannot connect to host ... ssl:True'."""
    running, directory = app_server
    config = ClientConfig.load(directory / "client.toml")
    config.server_name = "dots.example.net"
    config.save(directory / "client-misnamed.toml")
    flags = ["-c", str(directory / "client-misnamed.toml"), "--data-port", str(running.config.data_port)]
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["data", "alias", "list", *flags])
    one_line_error(
        result,
        EX_UNAVAILABLE,
        "the server certificate 'localhost' names localhost, 127.0.0.1, ::1, not 'dots.example.net'",
        "server_name in client.toml",
    )
    assert "ssl:True" not in result.output


def test_connection_failures_and_conflicts_read_as_words_not_reprs() -> None:
    assert _reason(DtlsError("handshake failed: x")) == "handshake failed: x"
    assert _reason(aiocoap.error.NetworkError("Connection failed to '::1'")) == "Connection failed to '::1'"
    assert (_reason(TimeoutError()), _reason(ConnectionResetError())) == ("no answer in time", "ConnectionResetError")
    conflict = {
        "conflict-cause": "overlapping-targets",
        "conflict-scope": {"target-prefix": ["203.0.113.0/24"], "target-protocol": [17], "mid": 1},
    }
    assert describe_conflict(conflict) == "overlapping-targets with mid 1 on 203.0.113.0/24"


def test_a_mid_replaced_at_the_server_is_forgotten_by_the_client(tmp_path: Path) -> None:
    """RFC 9132 §4.4.1: a granted request deletes the client's overlapping requests with lower mids at the server.
    Kept by the client, the old mid was listed by `client status` and re-sent (4.09) after the agent's restart."""
    from opendots.signal.client.core.requests import DotsResponse

    store = ClientStateStore(tmp_path / "state.db", CUID)
    core = connected_core(store)
    granted = {}
    for name, prefixes in (("old", ("192.0.2.0/24",)), ("other", ("198.51.100.0/24",)), ("new", ("192.0.2.8/29",))):
        request = core.mitigate(MitigationScope(target_prefixes=prefixes, lifetime=600), T0)
        body = {"ietf-dots-signal-channel:mitigation-scope": {"scope": [{"mid": request.mid, "lifetime": 600}]}}
        core.handle_response(request, DotsResponse("2.01", body), T0)
        granted[name] = request.mid
    gone = [event for event in events(core) if isinstance(event, ev.MitigationGone)]
    assert gone == [ev.MitigationGone(granted["old"], f"replaced by mid {granted['new']} (RFC 9132 §4.4.1)")]
    assert sorted(core.mitigations) == sorted([granted["other"], granted["new"]])
    assert sorted(stored.mid for stored in store.load_mitigations()) == sorted(core.mitigations)


async def test_a_request_to_an_agent_still_connecting_says_so_at_once_then_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    """Before: `client mitigate` was silent for the whole connection attempt (issue 13: 'silent for 30 s')."""
    from opendots.app import build_client_agent
    from tests.conftest import free_port

    init_pki(tmp_path)
    config = ClientConfig.load(tmp_path / "client.toml")
    config.server_addresses, config.transport = ["127.0.0.1"], "dtls"
    config.signal_port = free_port()  # nothing answers: each DTLS attempt lasts connect_timeout
    config.control_socket = Path("/tmp") / f"od-walk-{uuid.uuid4().hex[:10]}.sock"
    config.agent = {"connect_timeout": 2.0, "reconnect_min": 30.0, "reconnect_max": 60.0}
    config.save(tmp_path / "client.toml")
    agent = build_client_agent(ClientConfig.load(tmp_path / "client.toml"))
    await agent.start()
    try:
        assert agent.activity().startswith("connecting")
        arguments = ["client", "mitigate", "-c", str(tmp_path / "client.toml"), "--target-prefix", "203.0.113.1"]
        result = await asyncio.to_thread(CliRunner().invoke, cli, arguments)
        session = await asyncio.to_thread(CliRunner().invoke, cli, ["client", "session", "-c", arguments[3]])
    finally:
        await agent.stop()
    rows = dict(line.split(None, 1) for line in session.stdout.splitlines()[1:] if not line.startswith("parameter"))
    assert rows["connected"] == "no" and rows["server"] == "-", session.stdout  # words, not True/None
    assert re.search(r"^parameter heartbeat-interval\s+\d+ s$", session.stdout, re.MULTILINE), session.stdout
    assert result.stderr.startswith("note: the agent has no session yet (connecting to localhost); waiting for it"), (
        result.output
    )
    assert result.exit_code == EX_UNAVAILABLE and "Error: no signal channel session" in result.stderr, result.output


def test_the_server_logs_a_handshake_a_client_ended_with_its_address_and_the_likely_cause(
    pki_dir: Path,
    listener,
    caplog,
    monkeypatch,
) -> None:
    """A client whose server_name is not among the server certificate's names ends the handshake with an alert
    ("internal error"); the server's log said only that, and not from where."""
    from opendots.pki import verify
    from tests.helpers.dtls_memory import PEER, connect

    monkeypatch.setattr(verify, "_refusals", verify._Refusals())  # no earlier refusal inside the interval
    with caplog.at_level(logging.WARNING, logger="opendots.pki.verify"):
        connect(pki_dir, listener, name="dots.example.net")
    [line] = [record.getMessage() for record in caplog.records if "DTLS handshake" in record.getMessage()]
    assert line.startswith(f"refused a DTLS handshake: from {verify.peer_label(PEER)}: the client ended it ("), line
    assert "server_name" in line
