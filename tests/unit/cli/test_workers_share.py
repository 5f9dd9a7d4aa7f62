"""`opendots server --workers N`: the node's caps are shared among its workers, so N workers never hold more
unfinished DTLS handshakes (or sessions) than the operator allowed the node (RFC 9132 §7: a server bounds the state
it keeps for peers that have not authenticated)."""

from __future__ import annotations

from pathlib import Path

from opendots.cli.workers import share_caps
from opendots.config import ServerConfig


def test_each_of_n_workers_gets_a_nth_of_the_nodes_max_handshakes_and_max_sessions(pki_dir: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.max_sessions, config.max_handshakes = 10_000, 300
    share_caps(config, 4)
    assert (config.max_sessions, config.max_handshakes) == (2_500, 75)
    assert config.max_handshakes_per_address == 8  # per worker: a NAT's clients still get through a busy worker


def test_the_default_max_handshakes_is_the_nodes_default_shared_not_each_workers_own(pki_dir: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.max_sessions, config.max_handshakes = 10_000, 0  # 0: max(64, max_sessions / 10) for the node: 1000
    share_caps(config, 4)
    assert config.max_handshakes == 250

    small = ServerConfig.load(pki_dir / "server.toml")
    small.max_sessions, small.max_handshakes = 100, 0  # the node's default: 64
    share_caps(small, 3)
    assert small.max_handshakes == 21


def test_a_cap_smaller_than_the_worker_count_still_leaves_each_worker_one(pki_dir: Path):
    config = ServerConfig.load(pki_dir / "server.toml")
    config.max_sessions, config.max_handshakes = 2, 3
    share_caps(config, 4)
    assert (config.max_sessions, config.max_handshakes) == (1, 1)
