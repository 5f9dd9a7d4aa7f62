"""gw.toml: the [gateway] table, and the two legs as a server.toml and a client.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendots.config import ConfigError
from opendots.gateway.config import GatewayConfig
from opendots.pki.setup import init_pki


@pytest.fixture(scope="module")
def legs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("gw")
    init_pki(directory)  # server.toml and client.toml serve as the downstream and upstream files
    return directory


def write(directory: Path, text: str) -> Path:
    path = directory / "gw.toml"
    path.write_text('[gateway]\ndownstream = "server.toml"\nupstream = "client.toml"\n' + text)
    return path


def test_a_gateway_reads_its_kind_identity_hop_limit_and_both_legs(legs: Path) -> None:
    config = GatewayConfig.load(write(legs, 'kind = "server-domain"\nidentity = "gw1.example.net"\nhop_limit = 8\n'))
    assert (config.kind, config.identity, config.hop_limit, config.insert_cdid) == (
        "server-domain",
        "gw1.example.net",
        8,
        True,
    )
    assert config.downstream.clients and config.upstream.server_name == "localhost"
    assert config.state == legs / "gateway.db"
    default = GatewayConfig.load(write(legs, 'kind = "client-domain"\nidentity = "gw1"\n'))
    assert default.hop_limit == 16  # RFC 8768 §3


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('kind = "proxy"\nidentity = "gw1"\n', "kind"),
        ('kind = "client-domain"\nidentity = "gw 1"\n', "identity"),  # RFC 8768 §4: no space
        ('kind = "client-domain"\nidentity = "gw1"\nhop_limit = 0\n', "hop_limit"),
        ('kind = "client-domain"\nidentity = "gw1"\nhop_limit = 256\n', "hop_limit"),
        ('kind = "client-domain"\nidentity = "gw1"\ninsert_cdid = "yes"\n', "insert_cdid"),
        ('kind = "client-domain"\nidentity = "gw1"\nretry = 3\n', "retry"),
        ('kind = "client-domain"\n', "identity"),
    ],
)
def test_a_bad_gateway_table_is_refused_naming_the_key(legs: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        GatewayConfig.load(write(legs, text))
