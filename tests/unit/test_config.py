"""Configuration files as an operator writes them: every key checked by name, ports in range, gateways declared
once, credentials checked before anything listens, and what `certs init` and the README show still loads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from opendots.app import check_credentials, open_database, start_server
from opendots.config import ClientConfig, ConfigError, ServerConfig
from opendots.pki.setup import init_pki
from opendots.signal.client.shell.settings import AgentSettings
from tests.helpers import REPOSITORY

ROOT = REPOSITORY


def _copy(pki_dir: Path, tmp_path: Path, name: str, extra: str = "", replace: tuple[str, str] | None = None) -> Path:
    text = (pki_dir / name).read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / name
    path.write_text(text + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "replace", "where", "key"),
    [
        ("", ("signal_port =", "signal_prot ="), "[server]", "signal_prot"),
        ("", ('ca = "', 'cafile = "'), "[tls]", "cafile"),
        ("", ("fqdns = [", "fqnds = ["), "[[clients]] client", "fqnds"),
        ("\n[signal]\nmax_lifetim = 60\n", None, "[signal]", "max_lifetim"),
        ("\n[data]\nlifetime_days = 7\n", None, "[data]", "lifetime_days"),
        ("\n[mitigation]\ntop_talker_windw = 3\n", None, "[mitigation]", "top_talker_windw"),
        ("\n[sever]\nlisten = []\n", None, "server.toml", "sever"),
    ],
)
def test_an_unknown_key_in_any_table_of_server_toml_is_refused_with_its_name_and_the_file(
    pki_dir: Path, tmp_path: Path, extra: str, replace: tuple[str, str] | None, where: str, key: str
) -> None:
    path = _copy(pki_dir, tmp_path, "server.toml", extra, replace)
    with pytest.raises(ConfigError) as raised:
        ServerConfig.load(path)
    assert str(path) in str(raised.value) and repr(key) in str(raised.value) and where in str(raised.value)


@pytest.mark.parametrize(
    ("extra", "replace", "where", "key"),
    [
        ("", ("server_name =", "servername ="), "[client]", "servername"),
        ("", ('key = "', 'private_key = "'), "[tls]", "private_key"),
        ("\n[agent]\nreconnect_minimum = 1\n", None, "[agent]", "reconnect_minimum"),
        ("\n[clients]\nname = 'x'\n", None, "client.toml", "clients"),
    ],
)
def test_an_unknown_key_in_any_table_of_client_toml_is_refused_with_its_name_and_the_file(
    pki_dir: Path, tmp_path: Path, extra: str, replace: tuple[str, str] | None, where: str, key: str
) -> None:
    path = _copy(pki_dir, tmp_path, "client.toml", extra, replace)
    with pytest.raises(ConfigError) as raised:
        ClientConfig.load(path)
    assert str(path) in str(raised.value) and repr(key) in str(raised.value) and where in str(raised.value)


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("server.toml", ("signal_port = 4646", 'signal_port = "4646"'), "signal_port must be a port number"),
        ("server.toml", ("signal_port = 4646", "signal_port = 70000"), "from 1 to 65535, not 70000"),
        ("server.toml", ("data_port = 443", "data_port = -1"), "data_port must be a port number"),
        ("client.toml", ("signal_port = 4646", "signal_port = 4646.5"), "signal_port must be a port number"),
        ("client.toml", ('"::1"', '"dots.example.net"'), "'dots.example.net' is not an IP address"),
        ("server.toml", ('db = "opendots.db"', 'db = "mysql://dots@db/dots"'), "unsupported database"),
    ],
)
def test_a_value_of_the_wrong_kind_is_a_config_error_naming_the_key(
    pki_dir: Path, tmp_path: Path, file: str, text: tuple[str, str], message: str
) -> None:
    path = _copy(pki_dir, tmp_path, file, replace=text)
    loader = ServerConfig.load if file == "server.toml" else ClientConfig.load
    with pytest.raises(ConfigError, match=re.escape(message)):
        loader(path)


@pytest.mark.parametrize("channel", ["signal", "data"])
def test_per_channel_gateway_lists_are_refused_naming_the_one_declaration_that_replaces_them(
    pki_dir: Path, tmp_path: Path, channel: str
) -> None:
    path = _copy(pki_dir, tmp_path, "server.toml", f'\n[{channel}]\ngateways = ["other"]\n')
    with pytest.raises(ConfigError, match=rf"\[{channel}\] gateways .*`gateway = true` in its \[\[clients\]\] entry"):
        ServerConfig.load(path)
    declared = _copy(pki_dir, tmp_path, "server.toml", replace=('name = "other"', 'name = "other"\ngateway = true'))
    assert [c.name for c in ServerConfig.load(declared).clients if c.gateway] == ["other"]


def test_the_agent_table_is_read_with_client_toml_once(pki_dir: Path, tmp_path: Path) -> None:
    path = _copy(pki_dir, tmp_path, "client.toml", '\n[agent]\nstate_file = "s.db"\nreconnect_min = 1\n')
    config = ClientConfig.load(path)
    path.unlink()  # no second read: the settings come from what load() kept
    settings = AgentSettings.from_config(config)
    assert settings.state_file == tmp_path / "s.db" and settings.reconnect_min == 1.0


def test_what_certs_init_writes_loads_and_each_extra_client_gets_its_own_configuration(tmp_path: Path) -> None:
    init_pki(tmp_path, client_names=["branch1"])
    server = ServerConfig.load(tmp_path / "server.toml")
    own = ClientConfig.load(tmp_path / "client-branch1.toml")
    assert own.tls.cert == tmp_path / "branch1.crt" and own.tls.key == tmp_path / "branch1.key"
    assert own.control_socket != ClientConfig.load(tmp_path / "client.toml").control_socket
    check_credentials(own.tls)
    assert "branch1" in [c.name for c in server.clients]


def test_the_readme_configuration_examples_load(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = dict(re.findall(r"### `(server\.toml|client\.toml)`\n```toml\n(.*?)```", readme, re.S))
    assert set(blocks) == {"server.toml", "client.toml"}
    for name, text in blocks.items():
        (tmp_path / name).write_text(text)
    server = ServerConfig.load(tmp_path / "server.toml")
    assert server.mitigators[0]["type"] == "nftables"
    client = ClientConfig.load(tmp_path / "client.toml")
    assert AgentSettings.from_config(client).reconnect_min == 60.0


async def test_credentials_are_checked_by_file_name_before_anything_listens(pki_dir: Path, tmp_path: Path) -> None:
    config = ServerConfig.load(pki_dir / "server.toml")
    check_credentials(config.tls)
    for name in ("ca.crt", "server.crt", "server.key", "other.key"):
        shutil.copy(pki_dir / name, tmp_path / name)
    missing = config.tls.__class__(tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "absent.key")
    with pytest.raises(ConfigError, match=re.escape(f"[tls] key: no such file {tmp_path / 'absent.key'}")):
        check_credentials(missing)
    mismatched = config.tls.__class__(tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "other.key")
    with pytest.raises(ConfigError, match=re.escape(f"key {tmp_path / 'other.key'} does not match the certificate")):
        check_credentials(mismatched)
    (tmp_path / "garbled.crt").write_text("not a certificate")
    garbled = config.tls.__class__(tmp_path / "ca.crt", tmp_path / "garbled.crt", tmp_path / "server.key")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "garbled.crt"))):
        check_credentials(garbled)
    # The server as `opendots server` starts it: in tests/unit a bind or listen raises UnitTestBoundaryError
    # (tests/unit/conftest.py), so reaching the ConfigError proves the check ran before anything listened.
    config.tls = mismatched
    config.db = tmp_path / "never.db"
    with pytest.raises(ConfigError, match="does not match the certificate"):
        await start_server(config)
    assert not config.db.exists()  # nor was the database opened


def test_a_database_in_a_missing_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"directory {tmp_path / 'nowhere'} does not exist")):
        open_database(tmp_path / "nowhere" / "opendots.db")
    assert open_database(tmp_path / "here.db").path == str(tmp_path / "here.db")


def test_a_postgresql_db_url_selects_postgresql_for_the_signal_channel_and_keeps_sqlite_for_the_data_channel(
    pki_dir: Path, tmp_path: Path
):
    text = (pki_dir / "server.toml").read_text()
    path = tmp_path / "server.toml"
    path.write_text(text.replace('db = "opendots.db"', 'db = "postgresql://dots@db.example/dots"\ndata_db = "d.db"'))
    config = ServerConfig.load(path)
    assert config.db_url == "postgresql://dots@db.example/dots"
    assert config.db == tmp_path / "d.db"
    config.save(tmp_path / "again.toml")  # written back as it was read
    again = ServerConfig.load(tmp_path / "again.toml")
    assert (again.db_url, again.db) == (config.db_url, config.db)
    path.write_text(text.replace('db = "opendots.db"', 'db = "x.db"\ndata_db = "d.db"'))
    with pytest.raises(ConfigError, match="data_db is only for a PostgreSQL db"):
        ServerConfig.load(path)


# lean_coap (opendots.transport.coap_lean's lean path): on by default, off by the file, kept by save, a boolean only


def _with_server_line(pki_dir: Path, tmp_path: Path, line: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text((pki_dir / "server.toml").read_text().replace("[server]\n", f"[server]\n{line}\n", 1))
    return path


def test_lean_coap_is_on_unless_the_file_turns_it_off_and_save_keeps_it(pki_dir: Path, tmp_path: Path) -> None:
    assert ServerConfig.load(pki_dir / "server.toml").lean_coap is True
    off = ServerConfig.load(_with_server_line(pki_dir, tmp_path, "lean_coap = false"))
    assert off.lean_coap is False
    off.save(tmp_path / "saved.toml")
    assert ServerConfig.load(tmp_path / "saved.toml").lean_coap is False


def test_a_lean_coap_that_is_not_a_boolean_is_refused_with_the_file_and_the_key(pki_dir: Path, tmp_path: Path) -> None:
    path = _with_server_line(pki_dir, tmp_path, 'lean_coap = "no"')
    with pytest.raises(ConfigError, match="lean_coap must be true or false") as raised:
        ServerConfig.load(path)
    assert str(path) in str(raised.value)
