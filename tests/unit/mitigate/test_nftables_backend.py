"""Choosing how the nftables mitigator reaches the kernel: libnftables in-process, or an nft process per change."""

from __future__ import annotations

import pytest

from opendots.config import ConfigError
from opendots.mitigate import libnftables
from opendots.mitigate.router import build_actuator


def test_the_backend_key_selects_the_nft_process_or_the_library():
    by_process = build_actuator({"type": "nftables", "interface": "lan0", "backend": "process"})
    assert not by_process.in_process
    automatic = build_actuator({"type": "nftables", "interface": "lan0"})
    assert automatic.in_process == (libnftables.load() is None)


def test_an_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="auto, library or process"):
        build_actuator({"type": "nftables", "interface": "lan0", "backend": "netlink"})


def test_a_custom_nft_binary_is_run_as_a_process_unless_the_library_is_asked_for():
    assert not libnftables.chosen("auto", "/opt/nft/bin/nft")
    assert not libnftables.chosen("process", "nft")
