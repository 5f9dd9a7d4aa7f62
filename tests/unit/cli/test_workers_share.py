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
    assert config.max_handshakes_per_address == 2  # 8 for the node (each source port may hash to another worker)


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


def test_one_address_holds_no_more_unfinished_handshakes_on_the_node_than_max_handshakes_per_address(pki_dir: Path):
    """The kernel hashes each of an address's source ports to a worker (SO_REUSEPORT), so one address opening
    handshakes from many ports reaches all N: the workers' per-address limits together are the node's."""
    for node_limit, count in ((8, 2), (8, 3), (9, 4), (100, 7)):
        config = ServerConfig.load(pki_dir / "server.toml")
        config.max_handshakes_per_address = node_limit
        share_caps(config, count)
        assert 1 <= config.max_handshakes_per_address * count <= node_limit, (node_limit, count)

    tiny = ServerConfig.load(pki_dir / "server.toml")
    tiny.max_handshakes_per_address = 1
    share_caps(tiny, 4)
    assert tiny.max_handshakes_per_address == 1  # a peer still gets through its own worker
