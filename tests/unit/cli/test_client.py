"""`opendots client` argument handling that fails before any network traffic."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from opendots.cli.client import client


def test_bad_scope_is_refused_locally(pki_dir: Path) -> None:
    runner = CliRunner()
    config = str(pki_dir / "client.toml")
    result = runner.invoke(client, ["mitigate", "--config", config, "--target-prefix", "127.0.0.1"])
    assert result.exit_code == 2 and "loopback" in result.output
    result = runner.invoke(client, ["mitigate", "--config", config, "--target-prefix", "192.0.2.1", "--lifetime", "0"])
    assert result.exit_code == 2 and "lifetime" in result.output
    result = runner.invoke(client, ["mitigate", "--config", config, "--target-port", "99999", "--fqdn", "example.com"])
    assert result.exit_code == 2 and "65535" in result.output
    result = runner.invoke(client, ["config", "set", "--config", config])
    assert result.exit_code == 2 and "at least one parameter" in result.output


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(client, ["status", "--config", str(tmp_path / "absent.toml")])
    assert result.exit_code == 78 and "no such file" in result.output  # EX_CONFIG (opendots.cli.common)


def test_agent_settings_from_the_agent_table(pki_dir: Path, tmp_path: Path) -> None:
    from opendots.config import ClientConfig, ConfigError
    from opendots.signal.client.shell.settings import AgentSettings

    path = tmp_path / "client.toml"
    text = (pki_dir / "client.toml").read_text()
    path.write_text(text)
    config = ClientConfig.load(path)
    defaults = AgentSettings.from_config(ClientConfig.load(path))
    assert defaults.state_file == config.control_socket.with_name("opendots-client-state.db")
    assert (defaults.reconnect_min, defaults.reconnect_max) == (60.0, 300.0)  # RFC 9132 §4.7
    path.write_text(text + '\n[agent]\nstate_file = "s.db"\nreconnect_min = 1\nreconnect_max = 2.5\n')
    tuned = AgentSettings.from_config(ClientConfig.load(path))
    assert tuned.state_file == tmp_path / "s.db" and (tuned.reconnect_min, tuned.reconnect_max) == (1.0, 2.5)
    for bad in ('reconnect_min = "soon"', "reconnect_min = 10\nreconnect_max = 5"):
        path.write_text(text + f"\n[agent]\n{bad}\n")
        with pytest.raises(ConfigError, match=r"\[agent\]"):
            AgentSettings.from_config(ClientConfig.load(path))


def test_help_lists_every_verb() -> None:
    result = CliRunner().invoke(client, ["--help"])
    for verb in ("run", "mitigate", "status", "withdraw", "efficacy", "config", "session"):
        assert f"  {verb}" in result.output


def test_a_prefix_with_host_bits_is_cleared_and_the_user_is_told(pki_dir: Path) -> None:
    """The wire and the server refuse host bits (inet:ip-prefix canonical form); the command line clears them and
    says so. The lifetime of 0 stops the command before it sends anything."""
    config = str(pki_dir / "client.toml")
    args = ["mitigate", "--config", config, "--target-prefix", "203.0.113.5/24", "--lifetime", "0"]
    result = CliRunner().invoke(client, args)
    assert result.exit_code == 2 and "lifetime" in result.output
    assert "203.0.113.5/24 has host bits set: asking for 203.0.113.0/24" in result.output
