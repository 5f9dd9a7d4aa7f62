"""[dashboard] of server.toml: off unless listen is given, never without a token file, every key checked; the token
file read with a clear error; the page escapes what clients send and never invents a counter."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from opendots.app import start_server
from opendots.config import ConfigError, DashboardConfig, ServerConfig
from opendots.console.page import dashboard_page, mitigation_rows
from opendots.console.server import read_token
from opendots.console.views import targets_text


@pytest.fixture
def own_pki(pki_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's PKI directory: these tests rewrite its server.toml."""
    return Path(shutil.copytree(pki_dir, tmp_path / "pki"))


def test_no_dashboard_table_means_no_dashboard(pki_dir: Path) -> None:
    assert ServerConfig.load(pki_dir / "server.toml").dashboard is None


def test_a_dashboard_table_is_read_and_saved_back(own_pki: Path) -> None:
    pki_dir = own_pki
    config = ServerConfig.load(pki_dir / "server.toml")
    config.dashboard = DashboardConfig("127.0.0.1:9647", pki_dir / "dashboard.token")
    config.save(pki_dir / "server.toml")
    loaded = ServerConfig.load(pki_dir / "server.toml").dashboard
    assert loaded == DashboardConfig("127.0.0.1:9647", pki_dir / "dashboard.token")
    assert loaded.host_port() == ("127.0.0.1", 9647)
    assert DashboardConfig("[::1]:9647", pki_dir / "t").host_port() == ("::1", 9647)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('listen = "127.0.0.1:9647"\ntoken = "x"\n', "unknown key 'token'"),
        ('listen = "127.0.0.1:9647"\n', "token_file is required"),
        ('token_file = "dashboard.token"\n', "listen (host:port) is required"),
        ('listen = "9647"\ntoken_file = "t"\n', "listen must be host:port"),
        ('listen = "127.0.0.1:96470"\ntoken_file = "t"\n', "from 1 to 65535"),
        ("listen = 9647\ntoken_file = 't'\n", "listen must be a string"),
    ],
)
def test_a_dashboard_table_that_would_serve_without_a_token_or_has_a_bad_key_is_refused(
    own_pki: Path, table: str, message: str
) -> None:
    path = own_pki / "server.toml"
    path.write_text(path.read_text() + "\n[dashboard]\n" + table)
    with pytest.raises(ConfigError, match="dashboard") as raised:
        ServerConfig.load(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_the_token_file_must_exist_and_hold_a_long_enough_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_token(tmp_path / "absent.token")
    (tmp_path / "short.token").write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        read_token(tmp_path / "short.token")
    (tmp_path / "good.token").write_text("0123456789abcdef0123\n")
    assert read_token(tmp_path / "good.token") == "0123456789abcdef0123"


def _mitigation(**changes: object) -> dict:
    entry = {
        "client": "client",
        "cuid": "c1",
        "mid": 1,
        "status": "attack-mitigation-in-progress",
        "lifetime": 60,
        "targets": "203.0.113.0/28",
        "pkts-dropped": None,
        "bytes-dropped": None,
        "enforced-by": "not enforced",
        "pkt-rate": None,
        "bit-rate": None,
        "chart": [],
    }
    return {**entry, **changes}


def test_text_a_client_sent_is_escaped_and_an_unmeasured_counter_is_shown_as_a_dash() -> None:
    html = mitigation_rows({"mitigations": [_mitigation(targets="<script>alert(1)</script>", **{"pkts-dropped": 0})]})
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<td class=n>0</td><td class=n>-</td>" in html  # measured zero packets; bytes never measured


def test_the_page_warns_when_nothing_is_enforced_and_loads_nothing_from_elsewhere() -> None:
    state = {
        "enforced": False,
        "clients": [],
        "mitigations": [_mitigation(chart=[1.0, 2.0])],
        "audit": [],
        **{key: [] for key in ("data-channel", "telemetry-setups", "telemetry-reports")},
    }
    html = dashboard_page(state)
    assert "id=not-enforced" in html and "<svg" in html
    # Nothing fetched from elsewhere (the SVG namespace's name, http://www.w3.org/2000/svg, is only a name).
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//|url\(|@import|fetch\(['"]https?:""", html)
    assert "id=not-enforced" not in dashboard_page({**state, "enforced": True})


def test_targets_are_written_as_an_operator_writes_them() -> None:
    entry = {
        "target-prefix": ["203.0.113.0/24"],
        "target-port-range": [{"lower-port": 53}, {"lower-port": 8000, "upper-port": 8080}],
        "target-protocol": [17],
        "target-fqdn": ["www.example.com"],
        "alias-name": ["web"],
    }
    assert targets_text(entry) == "203.0.113.0/24 port 53 ports 8000-8080 udp www.example.com alias web"
    assert targets_text({}) == "-"


async def test_a_missing_token_file_stops_the_server_before_anything_listens(own_pki: Path) -> None:
    # In tests/unit a bind raises UnitTestBoundaryError: a ConfigError proves the token was read first.
    config = ServerConfig.load(own_pki / "server.toml")
    config.db = own_pki / "never.db"
    config.dashboard = DashboardConfig("127.0.0.1:9647", own_pki / "absent.token")
    with pytest.raises(ConfigError, match=r"absent\.token"):
        await start_server(config)
    assert not config.db.exists()
