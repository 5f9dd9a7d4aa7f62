"""RFC 9066 §4 coexistence on one box: a base DOTS client agent asking its upstream DOTS server for help with an
attack *toward* the network, and a Call Home DOTS server answering its provider about attacks *from* it, both from
the configuration `opendots certs init --call-home` writes into one directory, without mixing state: each keeps its
own file, each peer sees only its own mitigations, and withdrawing one leaves the other."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendots.callhome.provider_config import ProviderConfig
from opendots.config import ClientConfig, ServerConfig
from opendots.signal.client.shell.settings import AgentSettings
from tests.conftest import free_port
from tests.helpers.callhome_processes import CallHomePair, call_home_pair, wait_until
from tests.helpers.cli import invoke

SOURCE = "ietf-dots-call-home:source-prefix"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[CallHomePair]:
    for pair in call_home_pair(tmp_path, "dtls"):
        port = free_port()
        for path, kind in ((tmp_path / "server.toml", ServerConfig), (tmp_path / "client.toml", ClientConfig)):
            config = kind.load(path)
            config.signal_port = port
            config.save(path)
        yield pair


def _rows(database: Path, query: str) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def test_a_base_dots_client_agent_and_a_call_home_dots_server_on_one_box_keep_their_state_apart_rfc9066_4(
    box: CallHomePair,
) -> None:
    directory = box.directory
    client_toml = directory / "client.toml"
    agent_state = AgentSettings.from_config(ClientConfig.load(client_toml)).state_file
    cpe_db, provider_state = ServerConfig.load(box.cpe_toml).db, ProviderConfig.load(box.provider_toml).state_file
    upstream_db = ServerConfig.load(directory / "server.toml").db
    assert len({agent_state, cpe_db, provider_state, upstream_db}) == 4  # four files, none shared

    box.start("server", "-c", str(directory / "server.toml"), "--no-data", log="upstream.log")
    box.wait_log("upstream.log", "DOTS signal channel listening")
    box.start("client", "run", "-c", str(client_toml), log="agent.log")
    box.provider()
    box.cpe()
    box.wait_connected()

    upstream = invoke("client", "mitigate", "-c", str(client_toml), "--target-prefix", "203.0.113.0/24")
    assert upstream.exit_code == 0 and ": 2.01" in upstream.output, upstream.output
    home = box.client(
        "mitigate", "--peer", "home", "--source-prefix", "192.0.2.66/32", "--target-prefix", "198.51.100.9/32"
    )
    assert home.exit_code == 0 and "home mid 1: 2.01" in home.output, home.output

    # Each peer sees its own mitigation only.
    agent_view = invoke("client", "status", "-c", str(client_toml), "--refresh", "--json")
    assert agent_view.exit_code == 0, agent_view.output
    (entry,) = json.loads(agent_view.output)["ietf-dots-signal-channel:mitigation-scope"]["scope"]
    assert entry["target-prefix"] == ["203.0.113.0/24"] and SOURCE not in entry
    (answer,) = json.loads(box.client("status", "--json").output)
    (entry,) = answer["body"]["ietf-dots-signal-channel:mitigation-scope"]["scope"]
    assert entry[SOURCE] == ["192.0.2.66/32"] and entry["target-prefix"] == ["198.51.100.9/32"]

    # Each store holds its own.
    assert [row[0] for row in _rows(upstream_db, "SELECT client FROM signal_mitigations")] == ["client"]
    assert [row[0] for row in _rows(cpe_db, "SELECT client FROM signal_mitigations")] == ["provider"]
    assert len(_rows(agent_state, "SELECT mid FROM client_mitigations")) == 1
    assert json.loads(provider_state.read_text()) == {"last-mid": {"home": 1}}

    # Withdrawing the Call Home mitigation leaves the agent's upstream one in place.
    assert box.client("withdraw", "--peer", "home", "--mid", "1").exit_code == 0
    wait_until(lambda: not _rows(cpe_db, "SELECT mid FROM signal_mitigations"), 10, "the CPE to drop its mitigation")
    still = invoke("client", "status", "-c", str(client_toml), "--refresh")
    assert still.exit_code == 0 and "203.0.113.0/24" in still.output, still.output
    assert len(_rows(upstream_db, "SELECT mid FROM signal_mitigations")) == 1
