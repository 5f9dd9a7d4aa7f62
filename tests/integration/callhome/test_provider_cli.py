"""RFC 9066 Call Home as two operators' processes: `opendots callhome client run` (the provider) and `opendots
callhome server` (the CPE), configured by `opendots certs init --call-home`, driven by the provider's verbs over
real DTLS and TLS sessions on a free port."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from opendots.callhome.provider_config import ProviderConfig
from opendots.config import ServerConfig
from opendots.signal.client.shell.control import ControlClient, ControlError
from tests.helpers import tls_files
from tests.helpers.callhome import cuid_of
from tests.helpers.callhome_processes import PROVIDER_ONLY, CallHomePair, call_home_pair
from tests.helpers.cli import EX_DATAERR, invoke, one_line_error

EX_UNAVAILABLE = 69


@pytest.fixture(params=["dtls", "tls"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallHomePair]:
    yield from call_home_pair(tmp_path, request.param)


def _mitigate(pair: CallHomePair, source: str, *more: str) -> object:
    return pair.client(
        "mitigate", "--peer", "home", "--source-prefix", source, "--target-prefix", "203.0.113.9/32", *more
    )


def test_the_provider_asks_the_cpe_to_mitigate_sees_the_status_and_withdraws_rfc9066_5_3_1(
    pair: CallHomePair,
) -> None:
    pair.provider()
    pair.cpe()
    home = pair.wait_connected()
    assert home["transport"] == pair.transport
    result = _mitigate(pair, "192.0.2.66/32", "--source-port", "1024-2047", "--protocol", "udp", "--lifetime", "600")
    assert result.exit_code == 0 and "home mid 1: 2.01 (lifetime 600 s)" in result.output, result.output
    status = pair.client("status")
    assert status.exit_code == 0, status.output
    (row,) = [line for line in status.output.splitlines() if line.startswith("home")]
    assert row.split()[:6] == ["home", "1", "attack-mitigation-in-progress", "192.0.2.66/32", "203.0.113.9/32", "udp"]
    assert "from 192.0.2.66/32 source ports 1024-2047" in pair.log("cpe.log")  # the mitigator got the sources
    result = pair.client("withdraw", "--peer", "home", "--mid", "1")
    assert result.exit_code == 0 and "home mid 1: 2.02 withdrawn" in result.output, result.output
    status = pair.client("status", "--peer", "home", "--mid", "1")
    assert "dots-client-withdrawn-mitigation" in status.output or "no mitigations" in status.output, status.output


def test_sources_outside_what_the_provider_may_ask_are_refused_by_the_cli_and_by_the_cpe_rfc9066_5_3_1(
    pair: CallHomePair,
) -> None:
    pair.provider()
    pair.cpe()
    pair.wait_connected()
    early = _mitigate(pair, "203.0.113.1/32")  # not in provider.toml: refused before anything is sent
    assert early.exit_code == 2 and "outside what this provider may ask CPE 'home' about" in early.output, early.output
    assert "RFC 9066 §5.3.1" in early.output
    late = _mitigate(pair, PROVIDER_ONLY.replace("0/24", "7/32"))  # the provider may ask, the CPE refuses (4.00)
    one_line_error(late, EX_DATAERR, "CPE home answered 4.00", "source-prefix 198.51.100.7/32")
    status = pair.client("status")
    assert status.exit_code == 0 and "no mitigations" in status.output, status.output


def test_a_restarted_cpe_dials_again_and_keeps_its_mitigations(pair: CallHomePair) -> None:
    pair.provider()
    cpe = pair.cpe()
    first = pair.wait_connected()
    assert _mitigate(pair, "192.0.2.10/32").exit_code == 0
    cpe.send_signal(signal.SIGKILL)
    cpe.wait(10)
    pair.cpe()
    pair.wait_connected(since=first["since"])
    status = pair.client("status", "--peer", "home", "--mid", "1")
    assert status.exit_code == 0 and "attack-mitigation-in-progress" in status.output, status.output
    again = _mitigate(pair, "192.0.2.11/32")
    assert again.exit_code == 0 and "home mid 2: 2.01" in again.output, again.output  # mids keep growing


def test_a_cpe_whose_certificate_the_provider_does_not_know_gets_no_session(pair: CallHomePair) -> None:
    stranger = ServerConfig.load(pair.cpe_toml)
    stranger.tls = tls_files(pair.directory, "client")  # from the same CA, but not a CPE of provider.toml
    stranger.db = pair.directory / "stranger.db"
    stranger.save(pair.directory / "stranger.toml")
    pair.provider()
    pair.cpe(pair.directory / "stranger.toml", log="stranger.log")
    pair.wait_log("provider.log", "closing a session from an unknown CPE", count=2)  # refused, and after re-dialing
    assert "unknown CPE client (cuid " in pair.log("provider.log")  # named by its certificate's common name
    assert not any(peer["connected"] for peer in pair.peers())
    refused = _mitigate(pair, "192.0.2.10/32")
    one_line_error(refused, EX_UNAVAILABLE, "CPE 'home' has no session")


def test_the_verbs_say_when_no_provider_runs(tmp_path: Path) -> None:
    for pair in call_home_pair(tmp_path, "dtls"):
        result = invoke("callhome", "client", "peers", "-c", str(pair.provider_toml))
        one_line_error(result, EX_UNAVAILABLE, "no Call Home DOTS client answers on", "opendots callhome client run")


def test_the_provider_redirects_the_cpe_to_an_alternate_provider_rfc9066_5_2_2(pair: CallHomePair) -> None:
    cpe = ServerConfig.load(pair.cpe_toml)  # the alternate (certificate `client`) may ask too
    alternate_cuid = cuid_of(pair.directory / "client.crt")
    cpe.clients.append(replace(cpe.clients[0], name="alternate", cuid=alternate_cuid))
    cpe.save(pair.cpe_toml)
    alternate = ProviderConfig.load(pair.provider_toml)
    alternate.tls = tls_files(pair.directory, "client")
    alternate.listen = ["127.0.0.2"]
    alternate.control_socket = pair.directory / "alternate.sock"
    alternate.state_file = pair.directory / "alternate.json"
    alternate.save(pair.directory / "alternate.toml")
    pair.provider()
    pair.start("callhome", "client", "run", "-c", str(pair.directory / "alternate.toml"), log="alternate.log")
    pair.wait_log("alternate.log", "DOTS Call Home client listening")
    pair.cpe()
    pair.wait_connected()
    result = pair.client("redirect", "--peer", "home", "--to", "client", "--address", "127.0.0.2", "--ttl", "600")
    assert result.exit_code == 0 and "home: 2.01 redirected to client" in result.output, result.output
    pair.wait_log("alternate.log", "CPE home connected")
    there = invoke("callhome", "client", "mitigate", "-c", str(pair.directory / "alternate.toml"), "--peer", "home",
                   "--source-prefix", "192.0.2.9/32", "--target-prefix", "203.0.113.9/32")  # fmt: skip
    assert there.exit_code == 0 and "home mid 1: 2.01" in there.output, there.output
    assert not any(peer["connected"] for peer in pair.peers())


def test_the_provider_process_answers_bad_control_requests_with_their_code_and_keeps_running(tmp_path: Path) -> None:
    for pair in call_home_pair(tmp_path, "dtls"):
        pair.provider()
        control = ControlClient(ProviderConfig.load(pair.provider_toml).control_socket)
        good = {"source-prefix": ["192.0.2.1/32"], "target-prefix": ["203.0.113.1/32"]}
        cases = [
            ({"op": "mitigate", "peer": "home", "scope": {**good, "source-prefix": "192.0.2.1/32"}}, "4.00"),
            ({"op": "mitigate", "peer": "home", "scope": {**good, "protocol": ["udp"]}}, "4.00"),
            ({"op": "mitigate", "peer": "home", "scope": {**good, "lifetime": 0}}, "4.00"),
            ({"op": "mitigate", "peer": "home", "scope": {**good, "source-icmp-type": ["300"]}}, "4.00"),
            ({"op": "mitigate", "peer": "home", "scope": {**good, "source-prefix": ["203.0.113.1/32"]}}, "4.00"),
            ({"op": "mitigate", "peer": "nobody", "scope": good}, "4.04"),
            ({"op": "withdraw", "peer": "home", "mid": "one"}, "4.00"),
            ({"op": "redirect", "peer": "home"}, "4.00"),
            ({"op": "shutdown"}, "4.00"),
            ({"op": "mitigate", "peer": "home", "scope": good}, "5.03"),  # valid, but the CPE has no session
        ]
        with control:
            for request, code in cases:
                with pytest.raises(ControlError) as refused:
                    control.call(**request)
                assert refused.value.code == code, (request, str(refused.value))
            assert control.ping()
        assert not (pair.directory / "opendots-provider.json").exists()  # no mid was spent on a refused request


def test_sighup_and_reload_read_the_cpes_again_and_a_removed_cpe_loses_its_session(pair: CallHomePair) -> None:
    provider = pair.provider()
    pair.cpe()
    first = pair.wait_connected()
    config = ProviderConfig.load(pair.provider_toml)
    home = config.cpes[0]
    config.cpes = [replace(home, prefixes=home.prefixes[:1])]  # PROVIDER_ONLY no longer askable
    config.save(pair.provider_toml)
    provider.send_signal(signal.SIGHUP)
    pair.wait_log("provider.log", "CPEs added none, removed none, changed ['home']")
    (peer,) = pair.peers()
    assert peer["connected"] and peer["since"] == first["since"]  # only the prefixes changed: same session
    assert peer["prefixes"] == [str(home.prefixes[0])]
    early = _mitigate(pair, PROVIDER_ONLY.replace("0/24", "7/32"))
    assert early.exit_code == 2 and "outside what this provider may ask CPE 'home' about" in early.output

    config.cpes, config.port = [], config.port + 1
    config.save(pair.provider_toml)
    result = pair.client("reload")
    assert result.exit_code == 0, result.output
    expected = ["added: -", "removed: home", "changed: -", "not applied until a restart: port"]
    assert result.output.splitlines() == expected
    pair.wait_log("provider.log", "closing the session of CPE home")
    pair.wait_log("provider.log", "closing a session from an unknown CPE")  # it dials again and is refused
    assert pair.peers() == []

    pair.provider_toml.write_text(pair.provider_toml.read_text() + "[[cpes]]\nname = 'x'\n")  # not TOML any more
    provider.send_signal(signal.SIGHUP)  # (the reload verb reads the file itself first, and would refuse it there)
    pair.wait_log("provider.log", "(nothing was changed)")

    config.cpes, config.port = [home], config.port - 1
    config.save(pair.provider_toml)
    result = pair.client("reload")
    assert result.exit_code == 0 and result.output.splitlines()[0] == "added: home", result.output
    pair.wait_connected(since=first["since"])  # the CPE's next dial is accepted again
    assert provider.poll() is None
