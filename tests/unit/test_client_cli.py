"""`opendots client` argument handling that fails before any network traffic."""

from __future__ import annotations

from pathlib import Path

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
    assert result.exit_code == 1 and "no such file" in result.output
