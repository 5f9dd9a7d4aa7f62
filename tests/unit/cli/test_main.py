"""The `opendots` command as an operator meets it (opendots.cli.main, in-process through click's runner): one `-c`
convention, ports checked, one-line errors with an exit status per kind (opendots.cli.common)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.config import ClientConfig, ServerConfig
from tests.helpers.cli import EX_CONFIG, EX_USAGE_CLICK, invoke, one_line_error


@pytest.mark.parametrize(
    "arguments",
    [
        ["client", "status", "-c", "{missing}"],
        ["client", "-c", "{missing}", "status"],
        ["client", "status", "--config", "{missing}"],
        ["admin", "status", "-c", "{missing}"],
        ["admin", "-c", "{missing}", "status"],
        ["data", "register", "-c", "{missing}"],
        ["data", "-c", "{missing}", "register"],
        ["data", "alias", "list", "-c", "{missing}"],
        ["server", "-c", "{missing}"],
    ],
)
def test_every_group_takes_dash_c_after_the_verb_and_before_it(tmp_path: Path, arguments: list[str]) -> None:
    missing = tmp_path / "absent.toml"
    result = invoke(*(part.replace("{missing}", str(missing)) for part in arguments))
    one_line_error(result, EX_CONFIG, str(missing), "no such file")


@pytest.mark.parametrize("value", ["70000", "0", "-1"])
@pytest.mark.parametrize(
    "command", [["server", "--signal-port"], ["server", "--data-port"], ["client", "status", "--signal-port"]]
)
def test_a_port_outside_1_to_65535_is_refused_by_name(command: list[str], value: str) -> None:
    result = invoke(*command, value)
    assert result.exit_code == EX_USAGE_CLICK and "1<=x<=65535" in result.output, result.output


def test_the_server_refuses_a_database_in_a_missing_directory_and_a_foreign_key_in_one_line(
    pki_dir: Path, tmp_path: Path
) -> None:
    config = str(pki_dir / "server.toml")
    nowhere = tmp_path / "nowhere" / "x.db"
    one_line_error(invoke("server", "-c", config, "--db", str(nowhere), "--no-data"), EX_CONFIG, "does not exist")
    loaded = ServerConfig.load(pki_dir / "server.toml")
    loaded.tls = loaded.tls.__class__(loaded.tls.ca, loaded.tls.cert, pki_dir / "other.key")
    loaded.save(tmp_path / "server.toml")
    result = invoke("server", "-c", str(tmp_path / "server.toml"), "--no-data")
    one_line_error(result, EX_CONFIG, f"key {pki_dir / 'other.key'} does not match the certificate")


def test_certs_init_names_the_configuration_written_for_each_client(tmp_path: Path) -> None:
    result = invoke("certs", "init", str(tmp_path), "--client", "branch1")
    assert result.exit_code == 0, result.output
    assert f"configuration {tmp_path / 'client-branch1.toml'}" in result.output
    assert ClientConfig.load(tmp_path / "client-branch1.toml").tls.cert == tmp_path / "branch1.crt"
