"""`opendots certs init --call-home`: the RFC 9066 configuration pair, each side knowing the other's certificate."""

from __future__ import annotations

from pathlib import Path

from opendots.callhome.provider_config import ProviderConfig
from opendots.config import ServerConfig
from opendots.pki.cuid import cuid_from_certificate
from opendots.pki.setup import CALL_HOME_PREFIXES
from tests.helpers.cli import invoke


def cuid_of(path: Path) -> str:
    return cuid_from_certificate(path.read_bytes())


def test_certs_init_call_home_writes_a_cpe_and_a_provider_that_know_each_other(tmp_path: Path) -> None:
    result = invoke("certs", "init", str(tmp_path), "--call-home")
    assert result.exit_code == 0, result.output
    assert f"opendots callhome server -c {tmp_path / 'cpe.toml'}" in result.output
    assert f"opendots callhome client run -c {tmp_path / 'provider.toml'}" in result.output
    cpe, provider = ServerConfig.load(tmp_path / "cpe.toml"), ProviderConfig.load(tmp_path / "provider.toml")
    (allowed,) = cpe.clients
    assert allowed.cuid == cuid_of(tmp_path / "provider.crt")
    assert [str(prefix) for prefix in allowed.prefixes] == list(CALL_HOME_PREFIXES)
    assert cpe.providers == [{"name": "provider", "address": "127.0.0.1", "port": 4647, "transport": "dtls"}]
    (home,) = provider.cpes
    assert home.name == "home" and home.cuid == cuid_of(tmp_path / "cpe.crt")
    assert home.prefixes == allowed.prefixes  # the provider asks about what the CPE accepts
    assert provider.port == 4647 and provider.listen == ["127.0.0.1"] and provider.transports == ["dtls", "tls"]
    assert cpe.db == tmp_path / "cpe.db" and provider.control_socket == tmp_path / "opendots-provider.sock"
    assert cpe.tls.cert == tmp_path / "cpe.crt" and provider.tls.cert == tmp_path / "provider.crt"


def test_a_provider_toml_with_a_bad_cpe_entry_names_it(tmp_path: Path) -> None:
    invoke("certs", "init", str(tmp_path), "--call-home")
    path = tmp_path / "provider.toml"
    path.write_text(path.read_text().replace('name = "home"', 'name = "home"\ncolour = "blue"'))
    result = invoke("callhome", "client", "peers", "-c", str(path))
    assert result.exit_code == 78 and "[[cpes]] home: unknown key 'colour'" in result.output, result.output
